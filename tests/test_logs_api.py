"""/api/logs: browsers append log entries; staff read the file's last lines. Also voiceagent.logtail."""

from __future__ import annotations

import io
import json
import logging
import uuid

import pytest
from django.conf import settings as django_settings

import voiceagent.logtail
from sessions.models import VoiceSession
from voiceagent.logtail import tail_lines

URL = "/api/logs"

pytestmark = pytest.mark.usefixtures("fresh_throttles")


@pytest.fixture
def marker() -> str:
    return f"mark-{uuid.uuid4().hex}"


def log_text() -> str:
    for handler in logging.getLogger().handlers:
        handler.flush()
    path = django_settings.LOG_FILE
    return path.read_text(encoding="utf-8") if path.exists() else ""


def lines_with(marker: str) -> list[str]:
    return [line for line in log_text().split("\n") if marker in line]


def post(client, body: dict | list | str):
    return client.post(URL, json.dumps(body), content_type="application/json")


# --- POST ------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_anonymous_callers_cannot_write(api, marker):
    response = post(api, {"level": "info", "message": marker})

    assert response.status_code in (401, 403)
    assert lines_with(marker) == []


@pytest.mark.django_db
def test_it_appends_an_entry_with_the_user_and_level(alice_api, marker):
    response = post(alice_api, {"level": "warning", "message": f"{marker} microphone denied"})

    assert response.status_code == 201
    assert response.json() == {"logged": True}
    [line] = lines_with(marker)
    assert " WARNING voiceagent.client session=- client user=alice: " in line
    assert line.endswith(f"{marker} microphone denied")


@pytest.mark.django_db
def test_it_tags_the_entry_with_a_session_the_user_owns(alice, alice_api, marker):
    session = VoiceSession.objects.create(customer_id="cust-1", created_by=alice)

    response = post(alice_api, {"level": "info", "message": marker, "sessionId": str(session.pk)})

    assert response.status_code == 201
    [line] = lines_with(marker)
    assert f" session={session.pk} " in line


@pytest.mark.django_db
def test_another_users_session_is_not_found(bob, alice_api, marker):
    session = VoiceSession.objects.create(customer_id="cust-2", created_by=bob)

    response = post(alice_api, {"level": "info", "message": marker, "sessionId": str(session.pk)})

    assert response.status_code == 404
    assert lines_with(marker) == []


@pytest.mark.django_db
def test_staff_may_tag_any_session(bob, staff_api, marker):
    session = VoiceSession.objects.create(customer_id="cust-3", created_by=bob)

    response = post(staff_api, {"level": "error", "message": marker, "sessionId": str(session.pk)})

    assert response.status_code == 201
    assert f" session={session.pk} " in lines_with(marker)[0]


@pytest.mark.django_db
def test_an_unknown_session_is_not_found(alice_api, marker):
    response = post(alice_api, {"level": "info", "message": marker, "sessionId": str(uuid.uuid4())})

    assert response.status_code == 404
    assert lines_with(marker) == []


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"level": "loud", "message": "x"}, "level"),
        ({"message": "x"}, "level"),
        ({"level": "info"}, "message"),
        ({"level": "info", "message": ""}, "message"),
        ({"level": "info", "message": 42}, "message"),
        ({"level": "info", "message": ["x"]}, "message"),
        ({"level": "info", "message": "x", "sessionId": "not-a-uuid"}, "sessionId"),
        ({"level": "info", "message": "x", "context": ["not", "an", "object"]}, "context"),
        ({"level": "info", "message": "x", "context": "text"}, "context"),
    ],
)
def test_invalid_entries_are_refused_naming_the_field(alice_api, marker, body, field):
    if isinstance(body.get("message"), str) and body["message"]:  # make a wrongly written entry findable
        body = {**body, "message": f"{marker}{body['message']}"}

    response = post(alice_api, body)

    assert response.status_code == 400
    assert field in response.json()["error"]["fields"]
    assert lines_with(marker) == []


@pytest.mark.django_db
def test_a_body_that_is_not_an_object_is_refused(alice_api):
    assert post(alice_api, ["level", "info"]).status_code == 400
    response = alice_api.post(URL, "{not json", content_type="application/json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_json"


@pytest.mark.django_db
def test_newlines_in_the_message_stay_on_one_line(alice_api, marker):
    forged = "2026-01-01 00:00:00,000 ERROR voiceagent.sessions session=- forged"
    response = post(alice_api, {"level": "info", "message": f"{marker}\n{forged}\r\u2028x"})

    assert response.status_code == 201
    [line] = lines_with(marker)
    assert f"{marker}\\n{forged}\\r\\u2028x" in line
    assert not any(row.startswith("2026-01-01 00:00:00,000 ERROR") for row in log_text().split("\n"))


@pytest.mark.django_db
def test_the_context_is_written_as_json_on_the_same_line(alice_api, marker):
    context = {"status": "connecting", "detail": "two\nlines", "attempt": 2}

    post(alice_api, {"level": "info", "message": marker, "context": context})

    [line] = lines_with(marker)
    written = line.split(" context=", 1)[1]
    assert json.loads(written) == context


@pytest.mark.django_db
def test_secrets_a_client_sends_are_redacted(alice_api, marker):
    url = "wss://api.elevenlabs.io/v1/convai/conversation?agent_id=a&conversation_signature=sig-SECRET-123"

    post(alice_api, {"level": "info", "message": f"{marker} {url}", "context": {"conversationToken": "lk-SECRET-9"}})

    [line] = lines_with(marker)
    assert "sig-SECRET-123" not in line
    assert "lk-SECRET-9" not in line


@pytest.mark.django_db
def test_a_debug_entry_below_the_log_level_says_it_was_not_logged(alice_api, marker):
    assert logging.getLogger("voiceagent.client").getEffectiveLevel() == logging.INFO

    response = post(alice_api, {"level": "debug", "message": marker})

    assert response.status_code == 201
    assert response.json() == {"logged": False}
    assert lines_with(marker) == []


@pytest.mark.django_db
def test_a_body_over_the_size_cap_is_refused_and_not_written(alice_api, marker, settings):
    settings.CLIENT_LOG_MAX_BYTES = 512
    body = {"level": "info", "message": marker + "x" * 600}

    response = post(alice_api, body)

    assert response.status_code == 413
    payload = response.json()["error"]
    assert (payload["code"], payload["limit"]) == ("body_too_large", 512)
    assert "limit is 512 bytes" in payload["message"]
    assert lines_with(marker) == []


@pytest.mark.django_db
def test_a_body_at_the_size_cap_is_accepted(alice_api, marker, settings):
    settings.CLIENT_LOG_MAX_BYTES = 512
    body = {"level": "info", "message": marker}
    padding = 512 - len(json.dumps(body).encode())
    body["message"] += "y" * padding
    assert len(json.dumps(body).encode()) == 512

    assert post(alice_api, body).status_code == 201


@pytest.mark.django_db
def test_writers_are_throttled_per_user(alice_api, bob_api, settings, marker):
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"client_logs": "3/min"}}

    codes = [post(alice_api, {"level": "info", "message": f"{marker}-{i}"}).status_code for i in range(4)]

    assert codes == [201, 201, 201, 429]
    assert lines_with(f"{marker}-3") == []
    # Another user has a budget of their own.
    assert post(bob_api, {"level": "info", "message": marker}).status_code == 201


# --- GET -------------------------------------------------------------------------------------


@pytest.fixture
def log_file(settings, tmp_path):
    path = tmp_path / "elevenlabs.log"
    settings.LOG_FILE = path
    return path


@pytest.mark.django_db
def test_only_staff_can_read(api, alice_api, log_file):
    log_file.write_text("one\n")

    assert api.get(URL).status_code in (401, 403)
    assert alice_api.get(URL).status_code == 403


@pytest.mark.django_db
def test_staff_read_the_last_200_lines_by_default(staff_api, log_file):
    log_file.write_text("".join(f"line {i}\n" for i in range(300)))

    response = staff_api.get(URL)

    assert response.status_code == 200
    body = response.json()
    assert body["file"] == "elevenlabs.log"
    assert body["lines"] == [f"line {i}" for i in range(100, 300)]


@pytest.mark.django_db
def test_tail_picks_how_many(staff_api, log_file):
    log_file.write_text("".join(f"line {i}\n" for i in range(10)))

    assert staff_api.get(URL, {"tail": 3}).json()["lines"] == ["line 7", "line 8", "line 9"]
    assert staff_api.get(URL, {"tail": 5000}).json()["lines"] == [f"line {i}" for i in range(10)]


@pytest.mark.django_db
@pytest.mark.parametrize("tail", ["0", "-1", "5001", "abc", "1.5", "99999999999999999999"])
def test_a_bad_tail_is_refused_naming_it(staff_api, log_file, tail):
    response = staff_api.get(URL, {"tail": tail})

    assert response.status_code == 400
    assert "tail" in response.json()["error"]["fields"]


@pytest.mark.django_db
def test_a_missing_file_has_no_lines(staff_api, log_file):
    response = staff_api.get(URL)

    assert response.status_code == 200
    assert response.json() == {"lines": [], "file": "elevenlabs.log", "format": "text"}


@pytest.mark.django_db
def test_what_a_client_wrote_can_be_read_back(alice_api, staff_api, marker):
    post(alice_api, {"level": "error", "message": marker})

    lines = staff_api.get(URL, {"tail": 50}).json()["lines"]

    assert any(marker in line and "user=alice" in line for line in lines)


# --- voiceagent.logtail ----------------------------------------------------------------------


def reference_tail(data: bytes, n: int) -> list[str]:
    text = data.decode("utf-8", errors="replace")
    if not text:
        return []
    return text.removesuffix("\n").split("\n")[-n:]


def test_tail_of_a_small_file_with_and_without_a_final_newline(tmp_path):
    path = tmp_path / "a.log"
    path.write_bytes(b"a\nb\nc\n")
    assert tail_lines(path, 2) == ["b", "c"]
    assert tail_lines(path, 10) == ["a", "b", "c"]
    path.write_bytes(b"a\nb\nc")
    assert tail_lines(path, 2) == ["b", "c"]
    assert tail_lines(path, 1) == ["c"]


def test_tail_keeps_empty_lines_and_drops_carriage_returns(tmp_path):
    path = tmp_path / "a.log"
    path.write_bytes(b"a\r\n\r\nb\n\n")
    assert tail_lines(path, 10) == ["a", "", "b", ""]
    path.write_bytes(b"\n")
    assert tail_lines(path, 5) == [""]


def test_tail_of_an_empty_or_missing_file_is_empty(tmp_path):
    empty = tmp_path / "empty.log"
    empty.write_bytes(b"")
    assert tail_lines(empty, 5) == []
    assert tail_lines(tmp_path / "missing.log", 5) == []
    assert tail_lines(tmp_path, 5) == []  # a directory is not a log file


def test_tail_of_zero_lines_is_empty(tmp_path):
    path = tmp_path / "a.log"
    path.write_bytes(b"a\n")
    assert tail_lines(path, 0) == []


@pytest.mark.parametrize("block_size", [1, 2, 3, 5, 7, 16, 64, 65536])
@pytest.mark.parametrize("final_newline", [True, False])
def test_tail_across_block_edges_matches_reading_the_whole_file(tmp_path, block_size, final_newline):
    # Lines of varied length with 2-, 3- and 4-byte UTF-8 characters, so block edges cut characters.
    lines = [f"{i} " + "é€😀x"[: i % 5] * (i % 7) + "ß" * (i % 3) for i in range(60)]
    data = "\n".join(lines).encode() + (b"\n" if final_newline else b"")
    path = tmp_path / "multi.log"
    path.write_bytes(data)

    for n in (1, 2, 9, 30, 59, 60, 61, 500):
        assert tail_lines(path, n, block_size=block_size) == reference_tail(data, n), n


def test_tail_replaces_undecodable_bytes(tmp_path):
    path = tmp_path / "junk.log"
    path.write_bytes(b"ok\n\xff\xfebad\ncut \xe2\x82\n")

    assert tail_lines(path, 2, block_size=3) == ["\ufffd\ufffdbad", "cut \ufffd"]


class CountingFile(io.FileIO):
    read_bytes = 0

    def read(self, size=-1):
        data = super().read(size)
        CountingFile.read_bytes += len(data)
        return data


def counting_open(path, mode="rb"):
    assert mode == "rb"
    return CountingFile(path, "r")


@pytest.mark.parametrize("megabytes", [1, 16])
def test_tail_reads_an_amount_that_does_not_grow_with_the_file(tmp_path, monkeypatch, megabytes):
    line = b"2026-12-01 10:00:00,000 INFO voiceagent.sessions session=- " + b"x" * 40 + b"\n"  # 100 bytes
    path = tmp_path / "big.log"
    with open(path, "wb") as handle:
        chunk = line * 10_000
        for _ in range(megabytes * 1024 * 1024 // len(chunk)):
            handle.write(chunk)
    monkeypatch.setattr(voiceagent.logtail, "open", counting_open, raising=False)

    CountingFile.read_bytes = 0
    assert len(tail_lines(path, 200)) == 200
    assert CountingFile.read_bytes <= 2 * 65536

    CountingFile.read_bytes = 0
    assert len(tail_lines(path, 5000)) == 5000
    assert CountingFile.read_bytes <= 5001 * len(line) + 65536


def test_tail_stops_at_max_bytes_when_there_is_no_line_break(tmp_path, monkeypatch):
    path = tmp_path / "one-huge-line.log"
    path.write_bytes(b"z" * (1024 * 1024) + b"\nlast\n")
    monkeypatch.setattr(voiceagent.logtail, "open", counting_open, raising=False)
    CountingFile.read_bytes = 0

    assert tail_lines(path, 5, block_size=4096, max_bytes=64 * 1024) == ["last"]
    assert CountingFile.read_bytes <= 64 * 1024 + 4096
