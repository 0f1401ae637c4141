"""`GET /voice/sessions/{id}/audio`: the recording, to its owner and staff, with byte ranges."""

from __future__ import annotations

import os
import warnings

import pytest
from asgiref.sync import async_to_sync
from django.core.files.base import ContentFile
from django.test import AsyncClient
from rest_framework.authtoken.models import Token

from sessions.services import lifecycle
from voiceagent.ranged_files import BLOCK_SIZE, ByteRange, RangeNotSatisfiable, parse_byte_range

pytestmark = pytest.mark.django_db

SIZE = 200_003  # several blocks, and not a round number


@pytest.fixture
def recording() -> bytes:
    return os.urandom(SIZE)


@pytest.fixture
def recorded(alice, recording):
    """Alice's ended session with its recording stored the way the audio webhook stores it."""
    session = lifecycle.session_create(user=alice, customer_id="cust-audio")
    lifecycle.session_mark_connecting(session=session, agent_id="agent_x", connection_type="websocket", simulation=True)
    lifecycle.session_activate(session=session, conversation_id="conv_audio_1")
    lifecycle.session_end(session=session)
    return lifecycle.session_store_audio(
        session=session, content=ContentFile(recording), filename="conv_audio_1.mp3", size=len(recording)
    )


@pytest.fixture
def silent(alice):
    return lifecycle.session_create(user=alice, customer_id="cust-silent")


def audio_url(session) -> str:
    return f"/voice/sessions/{session.pk}/audio"


def body(response) -> bytes:
    return b"".join(response.streaming_content)


# --- who may fetch it ---------------------------------------------------------------------------


def test_the_owner_gets_the_stored_bytes_as_mpeg(alice_api, recorded, recording):
    response = alice_api.get(audio_url(recorded))

    assert response.status_code == 200
    assert body(response) == recording
    assert response["Content-Type"] == "audio/mpeg"
    assert response["Content-Length"] == str(SIZE)
    assert response["Accept-Ranges"] == "bytes"
    assert response["Content-Disposition"] == 'inline; filename="conv_audio_1.mp3"'
    assert response["Cache-Control"].startswith("private")
    assert "Content-Range" not in response


def test_staff_get_anyones_recording(staff_api, recorded, recording):
    response = staff_api.get(audio_url(recorded))
    assert response.status_code == 200
    assert body(response) == recording


def test_another_user_gets_404_as_for_a_session_that_does_not_exist(bob_api, recorded):
    response = bob_api.get(audio_url(recorded))
    missing = bob_api.get("/voice/sessions/00000000-0000-0000-0000-000000000000/audio")

    assert response.status_code == missing.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.json() == missing.json()


def test_anonymous_callers_are_refused(api, recorded):
    response = api.get(audio_url(recorded))
    assert response.status_code == 401
    assert "recording" not in response.text
    assert api.get(audio_url(recorded), HTTP_AUTHORIZATION="Token not-a-real-token").status_code == 401


def test_a_token_or_a_login_session_both_work(client, alice, recorded, recording):
    token = Token.objects.create(user=alice)
    by_token = client.get(audio_url(recorded), HTTP_AUTHORIZATION=f"Token {token.key}")
    assert by_token.status_code == 200 and body(by_token) == recording

    client.force_login(alice)  # the admin's and a browser's <audio> element send the session cookie
    by_cookie = client.get(audio_url(recorded))
    assert by_cookie.status_code == 200 and body(by_cookie) == recording


def test_asking_for_audio_in_accept_is_not_refused(alice_api, recorded, recording):
    response = alice_api.get(audio_url(recorded), HTTP_ACCEPT="audio/mpeg")
    assert response.status_code == 200 and body(response) == recording


def test_a_session_without_recording_answers_404_json(alice_api, silent):
    response = alice_api.get(audio_url(silent), HTTP_ACCEPT="audio/mpeg")

    assert response.status_code == 404
    assert response.json() == {"error": {"code": "no_recording", "message": "This session has no recording."}}


def test_a_recording_missing_from_storage_answers_404_json(alice_api, recorded):
    recorded.audio.storage.delete(recorded.audio.name)

    response = alice_api.get(audio_url(recorded))

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "recording_missing"


def test_the_media_url_serves_nothing(client, alice, recorded):
    client.force_login(alice)
    assert client.get(f"/media/{recorded.audio.name}").status_code == 404


# --- ranges -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "start", "end"),
    [
        ("bytes=0-99", 0, 99),
        ("bytes=1000-", 1000, SIZE - 1),
        ("bytes=-500", SIZE - 500, SIZE - 1),
        ("bytes=0-999999999", 0, SIZE - 1),  # past the end: up to the end
        ("bytes=-999999999", 0, SIZE - 1),  # a suffix longer than the file: all of it
        (f"bytes={SIZE - 1}-{SIZE - 1}", SIZE - 1, SIZE - 1),
        ("BYTES= 10-19", 10, 19),  # the unit is case-insensitive; whitespace may surround the range
    ],
)
def test_one_range_answers_206_with_those_bytes(alice_api, recorded, recording, header, start, end):
    response = alice_api.get(audio_url(recorded), HTTP_RANGE=header)

    assert response.status_code == 206
    assert response["Content-Range"] == f"bytes {start}-{end}/{SIZE}"
    assert response["Content-Length"] == str(end - start + 1)
    assert response["Accept-Ranges"] == "bytes"
    assert response["Content-Type"] == "audio/mpeg"
    assert body(response) == recording[start : end + 1]


@pytest.mark.parametrize("header", [f"bytes={SIZE}-", f"bytes={SIZE + 10}-{SIZE + 20}", "bytes=-0"])
def test_a_range_past_the_end_answers_416_with_the_size(alice_api, recorded, header):
    response = alice_api.get(audio_url(recorded), HTTP_RANGE=header)

    assert response.status_code == 416
    assert response["Content-Range"] == f"bytes */{SIZE}"
    assert response.json()["error"]["code"] == "range_not_satisfiable"


@pytest.mark.parametrize(
    "header",
    [
        "bytes=abc",
        "items=0-99",
        "bytes=99-10",
        "bytes=-",
        "bytes=0-1,5-9",
        "bytes=0-99 junk",
        "bytes=1 - 9",
        "bytes=" + "9" * 200,
    ],
)
def test_a_malformed_or_multi_range_header_is_ignored_and_the_whole_file_sent(alice_api, recorded, recording, header):
    response = alice_api.get(audio_url(recorded), HTTP_RANGE=header)

    assert response.status_code == 200
    assert "Content-Range" not in response
    assert response["Content-Length"] == str(SIZE)
    assert body(response) == recording


def test_if_range_with_the_current_etag_honours_the_range_and_another_sends_it_whole(alice_api, recorded, recording):
    etag = alice_api.get(audio_url(recorded))["ETag"]

    same = alice_api.get(audio_url(recorded), HTTP_RANGE="bytes=0-9", HTTP_IF_RANGE=etag)
    assert same.status_code == 206 and body(same) == recording[:10]
    changed = alice_api.get(audio_url(recorded), HTTP_RANGE="bytes=0-9", HTTP_IF_RANGE='"an-older-version"')
    assert changed.status_code == 200 and body(changed) == recording


def test_a_cached_copy_is_revalidated_with_304(alice_api, recorded):
    etag = alice_api.get(audio_url(recorded))["ETag"]

    response = alice_api.get(audio_url(recorded), HTTP_IF_NONE_MATCH=etag)

    assert response.status_code == 304
    assert response["ETag"] == etag and not response.content


def test_head_answers_the_headers_of_get_without_a_body(alice_api, recorded):
    whole = alice_api.head(audio_url(recorded))
    assert whole.status_code == 200
    assert whole["Content-Length"] == str(SIZE)
    assert whole["Content-Type"] == "audio/mpeg" and whole["Accept-Ranges"] == "bytes"
    assert not whole.content

    part = alice_api.head(audio_url(recorded), HTTP_RANGE="bytes=-100")
    assert part.status_code == 206
    assert part["Content-Range"] == f"bytes {SIZE - 100}-{SIZE - 1}/{SIZE}"
    assert part["Content-Length"] == "100"

    assert alice_api.head(audio_url(recorded), HTTP_RANGE=f"bytes={SIZE}-").status_code == 416


def test_under_asgi_the_file_is_streamed_block_by_block(alice, recorded, recording):
    """Django would read a synchronous iterator whole into memory under ASGI (and warn); ours is read by block."""
    client = AsyncClient()
    client.force_login(alice)

    async def fetch():
        response = await client.get(audio_url(recorded), headers={"Range": "bytes=100-"})
        blocks = [block async for block in response]  # as Django's ASGI handler consumes it
        response.close()  # and closes it, which closes the file
        return response, blocks

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "StreamingHttpResponse must consume synchronous iterators..."
        response, blocks = async_to_sync(fetch)()

    assert response.status_code == 206
    assert b"".join(blocks) == recording[100:]
    assert len(blocks) > 1 and max(len(block) for block in blocks) <= BLOCK_SIZE


@pytest.mark.parametrize(
    ("header", "size", "expected"),
    [
        (None, 10, None),
        ("", 10, None),
        ("bytes=0-0", 10, ByteRange(0, 0)),
        ("bytes=-3", 10, ByteRange(7, 9)),
        ("bytes=-3", 2, ByteRange(0, 1)),
        ("bytes=9-", 10, ByteRange(9, 9)),
        ("bytes=0-1, 3-4", 10, None),
        ("bytes=1-0", 10, None),
    ],
)
def test_parse_byte_range(header, size, expected):
    assert parse_byte_range(header, size) == expected


@pytest.mark.parametrize(("header", "size"), [("bytes=10-", 10), ("bytes=-0", 10), ("bytes=-5", 0), ("bytes=0-", 0)])
def test_parse_byte_range_refuses_what_lies_past_the_end(header, size):
    with pytest.raises(RangeNotSatisfiable):
        parse_byte_range(header, size)


# --- where it is linked -------------------------------------------------------------------------


def test_the_session_output_links_the_recording_or_says_null(alice_api, recorded, silent):
    detail = alice_api.get(f"/voice/sessions/{recorded.pk}").json()
    assert detail["audio_url"] == audio_url(recorded)
    assert detail["has_audio"] is True
    assert alice_api.get(f"/voice/sessions/{silent.pk}").json()["audio_url"] is None

    listed = {row["session_id"]: row["audio_url"] for row in alice_api.get("/voice/sessions").json()["results"]}
    assert listed == {str(recorded.pk): audio_url(recorded), str(silent.pk): None}


def test_the_admin_change_page_plays_it_through_the_endpoint(client, django_user_model, recorded, silent):
    client.force_login(django_user_model.objects.create_superuser("olivia", "olivia@example.com", "olivia-pass-1"))

    page = client.get(f"/admin/voice_sessions/voicesession/{recorded.pk}/change/")

    assert page.status_code == 200
    assert f'<audio controls preload="none" src="{audio_url(recorded)}">' in page.text
    assert f'<a href="{audio_url(recorded)}">conv_audio_1.mp3</a>' in page.text
    assert "/media/" not in page.text
    assert client.get(audio_url(recorded)).status_code == 200  # the link works with the admin's login

    without = client.get(f"/admin/voice_sessions/voicesession/{silent.pk}/change/")
    assert audio_url(silent) not in without.text
