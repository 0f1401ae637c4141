"""LOG_FORMAT=json: one JSON object per line, redacted like the text lines, readable in the log panel.

The suite's own process writes text (the default); the JSON lines here come from the
formatter and filters settings.LOGGING names, on a handler of the test's own, from a fresh
`manage.py` process started with LOG_FORMAT=json (file and stderr), and from a server process
whose lines a staff user reads through /api/logs and the playground's log panel.
"""

from __future__ import annotations

import io
import json
import logging
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from django.conf import settings
from django.test import Client
from rest_framework.authtoken.models import Token

from devtools.servers import asgi_server
from tests.server import env_for_test_database
from tests.test_config import manage
from voiceagent.logging import (
    REDACTED,
    JsonLineFormatter,
    RedactSecretsFilter,
    SessionContextFilter,
    readable_log_line,
    session_context,
)

HTMX = {"HTTP_HX_REQUEST": "true"}
SIGNATURE = "sigAbC123def456ghi789"
BEARER = "drf-token-5f1c0e9a8b7d6c5e4f3a2b1c"
JSON_KEYS = ["time", "level", "logger", "session_id", "message"]


@pytest.fixture
def marker() -> str:
    return f"mark-{uuid.uuid4().hex}"


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    """A handler as settings.LOGGING builds it for LOG_FORMAT=json, on logger ``jsontest``, into a string."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.addFilter(SessionContextFilter())
    handler.addFilter(RedactSecretsFilter())
    handler.setFormatter(JsonLineFormatter())
    logger = logging.getLogger("jsontest")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield out
    finally:
        logger.removeHandler(handler)


def entries(out: io.StringIO) -> list[dict]:
    lines = out.getvalue().split("\n")
    assert lines[-1] == ""
    return [json.loads(line) for line in lines[:-1]]


def test_settings_pick_the_json_formatter_for_the_file_and_stderr_only_when_asked():
    assert settings.LOG_FORMAT == "text"
    assert {settings.LOGGING["handlers"][name]["formatter"] for name in ("file", "console")} == {"line"}
    assert settings.LOGGING["formatters"]["json"] == {"()": "voiceagent.logging.JsonLineFormatter"}


def test_a_line_is_one_object_with_time_level_logger_session_and_message(json_log, marker):
    with session_context("7c9e6679-7425-40de-944b-e07fc1f90ae7"):
        logging.getLogger("jsontest").warning("webhook %s outcome=%s", marker, "processed")
    logging.getLogger("jsontest.child").info("outside any session")

    first, second = entries(json_log)
    assert list(first) == JSON_KEYS
    assert first["level"] == "WARNING" and first["logger"] == "jsontest"
    assert first["session_id"] == "7c9e6679-7425-40de-944b-e07fc1f90ae7"
    assert first["message"] == f"webhook {marker} outcome=processed"
    assert first["time"].endswith("+00:00") and "T" in first["time"]
    assert second["session_id"] is None and second["logger"] == "jsontest.child"


def test_extra_fields_are_keys_of_their_own(json_log):
    logging.getLogger("jsontest").info("call", extra={"status_code": 502, "attempts": 3, "path": Path("/tmp/x")})

    (entry,) = entries(json_log)
    assert entry["status_code"] == 502 and entry["attempts"] == 3
    assert entry["path"] == "/tmp/x"  # what JSON cannot hold is written as its text


def test_an_extra_field_named_like_a_fixed_key_does_not_replace_it(json_log):
    logging.getLogger("jsontest").info("real message", extra={"time": "fake", "level": "fake", "exception": "fake"})

    (entry,) = entries(json_log)
    assert entry["level"] == "INFO" and entry["time"] != "fake"
    assert (entry["extra_time"], entry["extra_level"], entry["extra_exception"]) == ("fake", "fake", "fake")


def test_secrets_in_the_message_and_its_arguments_are_redacted(json_log):
    key, secret = settings.ELEVENLABS_API_KEY, settings.ELEVENLABS_WEBHOOK_SECRET
    logging.getLogger("jsontest").warning("key %s then secret %s and Bearer %s", key, secret, BEARER)

    line = json_log.getvalue()
    assert key not in line and secret not in line and BEARER not in line
    assert entries(json_log)[0]["message"] == f"key {REDACTED} then secret {REDACTED} and Bearer {REDACTED}"


def test_secrets_in_extra_fields_are_redacted_by_name_and_by_shape(json_log):
    url = f"wss://api.elevenlabs.io/v1/convai/conversation?agent_id=a&conversation_signature={SIGNATURE}"
    logging.getLogger("jsontest").info(
        "started",
        extra={
            "conversation_token": "eyJhbGciOi.not-a-real-jwt.but-secret",
            "api_key": 1234567890,
            "signed_url": url,
            "url": url,
            "upstream": {"headers": {"xi-api-key": "sk_nested_secret_1", "Accept": "json"}, "note": f"Bearer {BEARER}"},
            "attempts": [f"Authorization: Bearer {BEARER}", 2],
            "raw": f"the key is {settings.ELEVENLABS_API_KEY}",
        },
    )

    line = json_log.getvalue()
    for secret in ("not-a-real-jwt", "1234567890", SIGNATURE, "sk_nested_secret_1", BEARER):
        assert secret not in line, secret
    assert settings.ELEVENLABS_API_KEY not in line
    (entry,) = entries(json_log)
    assert entry["conversation_token"] == REDACTED and entry["api_key"] == REDACTED
    assert entry["signed_url"] == REDACTED  # named as a credential: all of it
    assert entry["url"].endswith(f"conversation_signature={REDACTED}")  # shaped like one: the secret part
    assert entry["upstream"]["headers"] == {"xi-api-key": REDACTED, "Accept": "json"}
    assert entry["attempts"][1] == 2


def test_an_object_extra_is_written_as_its_redacted_text(json_log):
    class Request:
        def __str__(self) -> str:
            return f"<Request GET /simulator?conversation_signature={SIGNATURE}>"

    logging.getLogger("jsontest").warning("refused", extra={"request": Request()})

    (entry,) = entries(json_log)
    assert entry["request"].startswith(f"<Request GET /simulator?conversation_signature={REDACTED}")
    assert SIGNATURE not in json_log.getvalue()


def test_a_traceback_is_one_redacted_field(json_log):
    try:
        raise RuntimeError(f"upstream said token={BEARER}\nsecond line")
    except RuntimeError:
        logging.getLogger("jsontest").exception("it failed")

    (entry,) = entries(json_log)
    assert entry["message"] == "it failed"
    assert "RuntimeError: upstream said token=[REDACTED]" in entry["exception"]
    assert "Traceback" in entry["exception"] and BEARER not in json_log.getvalue()


@pytest.mark.parametrize("breaker", ["\n", "\r", "\x85", "\u2028", "\u2029", "\x1b[31m", "\u202e", "\x7f"])
def test_nothing_a_client_sends_breaks_or_reorders_the_line(json_log, breaker):
    logging.getLogger("jsontest").warning("client said %s", f"a{breaker}b", extra={"context": f"x{breaker}y"})

    text = json_log.getvalue()
    assert text.count("\n") == 1 and len(text.splitlines()) == 1
    assert breaker not in text.removesuffix("\n")
    (entry,) = entries(json_log)
    assert entry["message"] == f"client said a{breaker}b"  # the JSON still holds exactly what was said
    assert entry["context"] == f"x{breaker}y"


def test_non_ascii_text_stays_readable(json_log):
    logging.getLogger("jsontest").info("Kundin: Grüße aus Köln, 東京")
    assert "Grüße aus Köln, 東京" in json_log.getvalue()


def test_uvicorns_colour_copy_of_its_message_is_left_out(json_log):
    logging.getLogger("jsontest").info("Started server", extra={"color_message": "\x1b[32mStarted\x1b[0m server"})
    assert "color_message" not in entries(json_log)[0]


# --- reading it back -------------------------------------------------------------------------------------


def test_a_json_line_reads_like_a_text_line(json_log):
    extra = {"status_code": 401, "ctx": {"a": 1}}
    with session_context("sess-1"):
        logging.getLogger("jsontest").warning("client said %s", "hi\nthere", extra=extra)
    (line,) = json_log.getvalue().splitlines()
    time = json.loads(line)["time"]

    expected = f'{time} WARNING jsontest session=sess-1 client said hi\\nthere status_code=401 ctx={{"a": 1}}'
    assert readable_log_line(line) == expected


def test_a_json_line_with_a_traceback_reads_on_one_line(json_log):
    try:
        raise ValueError("boom")
    except ValueError:
        logging.getLogger("jsontest").exception("failed")
    (line,) = json_log.getvalue().splitlines()

    readable = readable_log_line(line)
    assert " ERROR jsontest session=- failed Traceback" in readable
    assert "\n" not in readable and readable.endswith("ValueError: boom")


@pytest.mark.parametrize(
    "line",
    [
        "2026-12-03 13:11:29,798 WARNING django.request session=- Not Found: /metrics",
        "{not json",
        '{"level": "INFO"}',
        "[1, 2]",
        "",
    ],
)
def test_other_lines_read_as_they_are(line):
    assert readable_log_line(line) == line


# --- the log API and the playground's panel on a file of JSON lines (and text lines before them) --------


@pytest.fixture
def mixed_log_file(settings, tmp_path, json_log, marker) -> Path:
    """A file written in text, then (after a restart with LOG_FORMAT=json) in JSON."""
    logging.getLogger("jsontest").warning("json line %s with Bearer %s", marker, BEARER, extra={"status_code": 502})
    path = tmp_path / "elevenlabs.log"
    path.write_text(f"2026-12-03 13:11:29,798 INFO voiceagent session=- text line {marker}\n" + json_log.getvalue())
    settings.LOG_FILE = path
    settings.LOG_FORMAT = "json"
    return path


@pytest.mark.django_db
def test_the_log_api_answers_the_lines_as_written_and_the_format(staff_api, mixed_log_file, marker):
    body = staff_api.get("/api/logs", {"tail": 10}).json()

    assert body["format"] == "json" and body["file"] == "elevenlabs.log"
    text_line, json_line = body["lines"]
    assert text_line.endswith(f"text line {marker}")
    entry = json.loads(json_line)
    assert entry["message"] == f"json line {marker} with Bearer {REDACTED}"
    assert entry["status_code"] == 502


@pytest.mark.django_db
def test_the_playground_log_panel_shows_json_lines_readably(client, charlie_staff, mixed_log_file, marker):
    client.force_login(charlie_staff)

    html = client.get("/playground/logs", **HTMX).content.decode()

    assert f"text line {marker}" in html
    assert f" WARNING jsontest session=- json line {marker} with Bearer {REDACTED} status_code=502" in html
    assert "{&quot;time&quot;" not in html and '{"time"' not in html
    assert BEARER not in html


# --- a real process: manage.py, and a served log -------------------------------------------------------


def test_a_fresh_process_with_log_format_json_writes_json_to_the_file_and_stderr(tmp_path, marker):
    code = (
        "import logging; "
        f"logging.getLogger('voiceagent.sessions').warning('%s key=%s', '{marker}', 'sk_live_process_secret_123456')"
    )
    result = manage(
        tmp_path,
        "shell",
        "-c",
        code,
        DEBUG="true",
        LOG_FORMAT="json",
        ELEVENLABS_API_KEY="sk_live_process_secret_123456",
    )

    assert result.returncode == 0, result.stderr
    file_lines = (tmp_path / "logs" / "elevenlabs.log").read_text(encoding="utf-8").splitlines()
    stderr_lines = [line for line in result.stderr.splitlines() if marker in line]
    for lines in (file_lines, stderr_lines):
        (entry,) = [json.loads(line) for line in lines if marker in line]
        assert entry["logger"] == "voiceagent.sessions" and entry["level"] == "WARNING"
        assert entry["message"] == f"{marker} key={REDACTED}"
    assert "sk_live_process_secret_123456" not in result.stderr + "\n".join(file_lines)


def test_an_unknown_log_format_is_refused_by_name(tmp_path):
    result = manage(tmp_path, "check", DEBUG="true", LOG_FORMAT="xml")

    assert result.returncode != 0
    assert "LOG_FORMAT='xml' is not one of: json, text." in result.stderr
    assert "Traceback" not in result.stderr


@pytest.fixture(scope="module")
def json_logging_server(django_db_setup, tmp_path_factory) -> Iterator[tuple[str, Path]]:
    log_dir = tmp_path_factory.mktemp("json-logs")
    env = env_for_test_database()
    env.update(LOG_FORMAT="json", LOG_DIR=str(log_dir))
    with asgi_server(env=env, workers=2) as base_url:
        yield base_url, log_dir / "elevenlabs.log"


@pytest.mark.server
@pytest.mark.django_db(transaction=True)
def test_a_served_json_log_reads_back_through_the_api_and_the_panel(json_logging_server, charlie_staff, marker):
    base_url, log_file = json_logging_server
    charlie_staff.is_superuser = True
    charlie_staff.save()
    token = Token.objects.create(user=charlie_staff).key
    api = {"Authorization": f"Token {token}"}
    entry = {"level": "warning", "message": f"{marker} Bearer {BEARER}", "context": {"api_key": "sk_ctx_secret_1"}}
    assert requests.post(f"{base_url}/api/logs", json=entry, headers=api, timeout=10).status_code == 201

    body = requests.get(f"{base_url}/api/logs", params={"tail": 200}, headers=api, timeout=10).json()

    assert body["format"] == "json"
    lines = [json.loads(line) for line in body["lines"]]  # every line is a JSON object, uvicorn's too
    (ours,) = [line for line in lines if marker in line["message"]]
    assert ours["logger"] == "voiceagent.client" and ours["level"] == "WARNING"
    assert BEARER not in json.dumps(ours) and "sk_ctx_secret_1" not in json.dumps(ours)
    assert BEARER not in log_file.read_text(encoding="utf-8")

    # The staff user's browser session, made here, is good on the server too (the same database).
    browser = Client()
    browser.force_login(charlie_staff)
    cookies = {settings.SESSION_COOKIE_NAME: browser.cookies[settings.SESSION_COOKIE_NAME].value}
    panel = requests.get(f"{base_url}/playground/logs", headers={"HX-Request": "true"}, cookies=cookies, timeout=10)
    assert panel.status_code in (200, 286), panel.text
    assert f"WARNING voiceagent.client session=- client user=charlie: {marker} Bearer {REDACTED}" in panel.text
    assert '{"time"' not in panel.text and "{&quot;time&quot;" not in panel.text
