"""The recording fetched from a real uvicorn (DEBUG off) with a token, the way curl or a player would."""

from __future__ import annotations

import hashlib
import os

import pytest
import requests
from django.core.files.base import ContentFile
from rest_framework.authtoken.models import Token

from sessions.services import lifecycle
from tests.server import live_asgi_server  # noqa: F401

pytestmark = [pytest.mark.server, pytest.mark.django_db(transaction=True)]

SIZE = 5 * 1024 * 1024 + 7  # many 64 KiB blocks


def auth(user) -> dict[str, str]:
    return {"Authorization": f"Token {Token.objects.create(user=user).key}"}


@pytest.fixture
def recorded(alice):
    session = lifecycle.session_create(user=alice, customer_id="cust-audio-server")
    lifecycle.session_mark_connecting(session=session, agent_id="agent_x", connection_type="websocket", simulation=True)
    lifecycle.session_activate(session=session, conversation_id="conv_audio_server")
    recording = os.urandom(SIZE)
    session = lifecycle.session_store_audio(
        session=session, content=ContentFile(recording), filename="conv_audio_server.mp3", size=SIZE
    )
    return session, recording


def test_owner_and_staff_fetch_the_recording_and_others_cannot(
    live_asgi_server,  # noqa: F811
    recorded,
    alice,
    bob,
    charlie_staff,
):
    session, recording = recorded
    url = f"{live_asgi_server}/voice/sessions/{session.pk}/audio"
    alice_auth = auth(alice)

    # What the API hands out is the path to fetch.
    detail = requests.get(f"{live_asgi_server}/voice/sessions/{session.pk}", headers=alice_auth, timeout=10).json()
    assert detail["audio_url"] == f"/voice/sessions/{session.pk}/audio"

    with requests.get(url, headers=alice_auth, stream=True, timeout=30) as whole:
        assert whole.status_code == 200
        assert whole.headers["Content-Type"] == "audio/mpeg"
        assert whole.headers["Content-Length"] == str(SIZE)
        assert whole.headers["Accept-Ranges"] == "bytes"
        assert whole.headers["Content-Disposition"] == 'inline; filename="conv_audio_server.mp3"'
        digest = hashlib.sha256()
        for chunk in whole.iter_content(64 * 1024):
            digest.update(chunk)
    assert digest.hexdigest() == hashlib.sha256(recording).hexdigest()

    staff = requests.get(url, headers=auth(charlie_staff), timeout=30)
    assert staff.status_code == 200 and staff.content == recording

    others = requests.get(url, headers=auth(bob), timeout=10)
    assert others.status_code == 404 and others.headers["Content-Type"] == "application/json"
    assert requests.get(url, timeout=10).status_code == 401


def test_a_player_seeks_with_ranges_and_head(live_asgi_server, recorded, alice):  # noqa: F811
    session, recording = recorded
    url = f"{live_asgi_server}/voice/sessions/{session.pk}/audio"
    alice_auth = auth(alice)

    first = requests.get(url, headers={**alice_auth, "Range": "bytes=0-1023"}, timeout=10)
    assert first.status_code == 206
    assert first.headers["Content-Range"] == f"bytes 0-1023/{SIZE}"
    assert first.content == recording[:1024]

    middle = requests.get(url, headers={**alice_auth, "Range": "bytes=3000000-"}, timeout=30)
    assert middle.status_code == 206 and middle.content == recording[3_000_000:]
    assert middle.headers["Content-Length"] == str(SIZE - 3_000_000)

    tail = requests.get(url, headers={**alice_auth, "Range": "bytes=-100"}, timeout=10)
    assert tail.status_code == 206 and tail.content == recording[-100:]

    past = requests.get(url, headers={**alice_auth, "Range": f"bytes={SIZE}-"}, timeout=10)
    assert past.status_code == 416 and past.headers["Content-Range"] == f"bytes */{SIZE}"

    several = requests.get(url, headers={**alice_auth, "Range": "bytes=0-9,20-29"}, timeout=30)
    assert several.status_code == 200 and several.content == recording

    head = requests.head(url, headers={**alice_auth, "Range": "bytes=-100"}, timeout=10)
    assert head.status_code == 206 and head.headers["Content-Length"] == "100" and head.content == b""


def test_the_stored_file_is_not_public_under_media(live_asgi_server, recorded, alice):  # noqa: F811
    session, _ = recorded
    for headers in ({}, auth(alice)):
        response = requests.get(f"{live_asgi_server}/media/{session.audio.name}", headers=headers, timeout=10)
        assert response.status_code == 404
        assert len(response.content) < 10_000  # a not-found page, not the recording
