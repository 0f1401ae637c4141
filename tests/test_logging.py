"""The log file: one event per line, session id when known, and no secret ever written."""

from __future__ import annotations

import logging
import re
import uuid
from urllib.parse import quote

import pytest
from django.conf import settings

from voiceagent.logging import _PATTERNS, REDACTED, RedactSecretsFilter, WrittenInBackground, redact, session_context

LINE_START = re.compile(
    r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2},\d{3} (DEBUG|INFO|WARNING|ERROR|CRITICAL) \S+ session=\S+ "
)

SIGNATURE = "sigAbC123def456ghi789"
CONVERSATION_TOKEN = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJ2aWRlbyI6eyJyb29tIjoiY29udl8xIn19.c2lnbmF0dXJlX2hlcmU"
BEARER = "drf-token-5f1c0e9a8b7d6c5e4f3a2b1c"
HEADER_KEY = "sk_header_key_9f8e7d6c5b4a"


def file_text() -> str:
    for handler in logging.getLogger().handlers:
        handler.flush()
    return settings.LOG_FILE.read_text(encoding="utf-8")


def lines_with(marker: str) -> list[str]:
    return [line for line in file_text().splitlines() if marker in line]


@pytest.fixture
def marker() -> str:
    return f"mark-{uuid.uuid4().hex}"


def assert_clean(text: str, *secrets: str) -> None:
    for secret in secrets:
        assert secret not in text


def test_the_root_file_and_console_handlers_carry_the_redaction_filter():
    # (pytest's own capture handlers sit beside it)
    [background] = [h for h in logging.getLogger().handlers if isinstance(h, WrittenInBackground)]
    assert isinstance(background, WrittenInBackground)
    handlers = {type(h).__name__: h for h in background.handlers}
    assert set(handlers) == {"ConcurrentRotatingFileHandler", "StreamHandler"}
    for handler in background.handlers:
        if type(handler).__name__ in {"ConcurrentRotatingFileHandler", "StreamHandler"}:
            assert any(isinstance(f, RedactSecretsFilter) for f in handler.filters), handler


def test_each_line_has_time_level_logger_and_session(marker):
    logging.getLogger("voiceagent.sessions").warning("plain event %s", marker)

    [line] = lines_with(marker)
    assert LINE_START.match(line), line
    assert " WARNING voiceagent.sessions session=- " in line


def test_the_session_id_appears_when_set(marker):
    session_id = uuid.uuid4()
    with session_context(session_id):
        logging.getLogger("voiceagent.sessions").info("inside %s", marker)
    logging.getLogger("voiceagent.sessions").info("outside %s", marker)

    inside, outside = lines_with(marker)
    assert f"session={session_id} " in inside
    assert "session=- " in outside


def test_the_api_key_in_the_message_is_not_written(marker):
    key = settings.ELEVENLABS_API_KEY
    assert len(key) > 10
    logging.getLogger("voiceagent.api").warning(f"{marker} calling ElevenLabs with {key}")

    [line] = lines_with(marker)
    assert_clean(file_text(), key)
    assert REDACTED in line


def test_the_webhook_secret_in_the_arguments_is_not_written(marker):
    secret = settings.ELEVENLABS_WEBHOOK_SECRET
    logging.getLogger("elevenlabs.webhooks").error("%s verifying with %r", marker, {"secret_value": secret})

    [line] = lines_with(marker)
    assert_clean(file_text(), secret)
    assert REDACTED in line


def test_a_percent_encoded_secret_is_not_written(settings, marker):
    settings.ELEVENLABS_WEBHOOK_SECRET = "wsec/with+odd=chars&more"
    logging.getLogger("voiceagent").warning("%s url ?q=%s", marker, quote(settings.ELEVENLABS_WEBHOOK_SECRET, safe=""))

    [line] = lines_with(marker)
    assert "wsec%2Fwith%2Bodd%3Dchars%26more" not in line
    assert REDACTED in line


def test_a_signed_url_through_a_third_party_logger_loses_its_signature(marker):
    url = f"/v1/convai/conversation?agent_id=agent_1&conversation_signature={SIGNATURE}&source=js_sdk"
    logging.getLogger("urllib3.connectionpool").warning('%s "GET %s HTTP/1.1" 200 31', marker, url)

    [line] = lines_with(marker)
    assert_clean(file_text(), SIGNATURE)
    assert "agent_id=agent_1&conversation_signature=[REDACTED]&source=js_sdk" in line
    assert " urllib3.connectionpool " in line


def test_headers_in_a_repr_are_not_written(marker):
    headers = {"xi-api-key": HEADER_KEY, "Authorization": f"Bearer {BEARER}", "Accept": "application/json"}
    logging.getLogger("requests").warning("%s sending headers %s", marker, headers)
    logging.getLogger("django.request").warning(
        "%s META %s", marker, {"HTTP_AUTHORIZATION": f"Token {BEARER}", "HTTP_XI_API_KEY": HEADER_KEY}
    )

    found = lines_with(marker)
    assert len(found) == 2
    assert_clean(file_text(), HEADER_KEY, BEARER)
    assert "application/json" in found[0]  # harmless values stay readable


def test_a_conversation_token_in_a_traceback_is_not_written(marker):
    try:
        key = settings.ELEVENLABS_API_KEY
        raise ValueError(f"ElevenLabs answered {{'token': '{CONVERSATION_TOKEN}'}} with key {key}")
    except ValueError:
        logging.getLogger("elevenlabs.client").exception("%s minting failed", marker)

    [line] = lines_with(marker)
    assert_clean(file_text(), CONVERSATION_TOKEN, settings.ELEVENLABS_API_KEY)
    # The traceback is kept, redacted and on the same line.
    assert "Traceback (most recent call last):\\n" in line
    assert "ValueError: ElevenLabs answered" in line


def test_a_bare_jwt_is_not_written(marker):
    logging.getLogger("livekit").warning("%s joined with %s", marker, CONVERSATION_TOKEN)

    assert_clean(file_text(), CONVERSATION_TOKEN)


@pytest.mark.parametrize("breaker", ["\n", "\r\n", "\r", "\u2028", "\u0085", "\x0b", "\x1c"])
def test_control_characters_cannot_forge_a_line(marker, breaker):
    forged = f"2026-01-01 00:00:00,000 ERROR voiceagent.sessions session=- forged-{marker}"
    logging.getLogger("voiceagent.client").warning("%s real%s%s", marker, breaker, forged)

    text = file_text()
    # Only one physical line mentions the marker, and no line starts with the forged entry.
    assert len([line for line in text.split("\n") if marker in line]) == 1
    assert len(lines_with(marker)) == 1
    assert not any(line.startswith("2026-01-01 00:00:00,000 ERROR") for line in text.splitlines())
    assert breaker not in text.split("\n")[-2]


def test_a_malformed_format_string_is_still_written_and_redacted(marker):
    logging.getLogger("voiceagent").warning("%s %d broken " + settings.ELEVENLABS_API_KEY, marker, "not-a-number")

    [line] = lines_with(marker)
    assert_clean(line, settings.ELEVENLABS_API_KEY)


def test_server_access_lines_pass_the_redaction_filter():
    """granian's access log (ACCESS_LOG=true) names the simulator's signed URL on every WebSocket handshake."""
    import io

    access = logging.getLogger("granian.access")
    ours = [h for h in access.handlers if any(isinstance(f, RedactSecretsFilter) for f in h.filters)]
    assert ours and not access.propagate
    out = io.StringIO()
    previous = [handler.setStream(out) for handler in ours]
    try:
        access.info(
            '%s - "%s %s HTTP/%s" %d',
            "127.0.0.1:5000",
            "GET",
            "/simulator/v1/convai/conversation?agent_id=a&conversation_signature=deadbeefcafe1234",
            "1.1",
            101,
        )
    finally:
        for handler, stream in zip(ours, previous, strict=True):
            handler.setStream(stream)
    written = out.getvalue()
    assert "/simulator/v1/convai/conversation?agent_id=a&conversation_signature=[REDACTED]" in written
    assert "deadbeefcafe1234" not in written


@pytest.mark.parametrize("mark", ["\u202e", "\u202a", "\u200e", "\u200f", "\u2066", "\u2069", "\u061c"])
def test_bidirectional_controls_are_escaped_so_a_line_reads_as_written(marker, mark):
    logging.getLogger("voiceagent.client").warning("%s customer=%sevil.exe", marker, mark)

    (line,) = lines_with(marker)
    assert mark not in line
    assert f"customer=\\u{ord(mark):04x}evil.exe" in line


def test_a_changed_secret_is_redacted_from_the_next_line(settings, marker):
    """The secrets to replace are worked out once per set of values, and again when a value changes."""
    settings.ELEVENLABS_API_KEY = "sk_first_key_aaaaaaaa"
    logging.getLogger("voiceagent").warning("%s first %s", marker, "sk_first_key_aaaaaaaa")
    [first] = lines_with(marker)  # written (lines are redacted when written, in the background)
    settings.ELEVENLABS_API_KEY = "sk_second_key_bbbbbbb"
    logging.getLogger("voiceagent").warning("%s second %s", marker, "sk_second_key_bbbbbbb")

    _, second = lines_with(marker)
    assert "sk_first_key" not in first and "sk_second_key" not in second
    assert REDACTED in first and REDACTED in second


def test_the_console_writes_what_the_file_writes_from_the_one_redaction(settings, marker):
    """Both handlers take the same record; the first redacts and marks it, the second writes the same text."""
    settings.ELEVENLABS_API_KEY = "sk_shared_record_cccccc"
    record = logging.LogRecord(
        "voiceagent", logging.WARNING, __file__, 1, "%s key %s", (marker, "sk_shared_record_cccccc"), None
    )
    record.session_id = "-"
    [background] = [h for h in logging.getLogger().handlers if isinstance(h, WrittenInBackground)]
    written = []
    for handler in background.handlers:
        assert all(f.filter(record) for f in handler.filters)
        written.append(handler.format(record))
    assert written[0] == written[1]
    assert f"{marker} key {REDACTED}" in written[0] and "sk_shared_record" not in written[0]


CREDENTIAL_SHAPES = [
    "wss://api.example/convai?agent_id=a&conversation_signature=abc123",
    "https://voice.example/sim?x=1&sig=abc123",
    "https://voice.example/sim?signature=abc123",
    "ElevenLabs-Signature t=1700000000,v0=a1b2c3d4",
    "Authorization: Bearer abc123",
    "AUTHORIZATION=Token abc123",
    "{'xi-api-key': 'abc123'}",
    "HTTP_X_API_KEY=abc123",
    "cookie: sessionid=abc123",
    '{"conversation_token": "abc123"}',
    '{"conversationToken": "abc123"}',
    "token=abc123",
    "signed_url=abc123",
    '"signedUrl": "abc123"',
    "api_key=abc123",
    "apiKey: abc123",
    "webhook secret=abc123",
    "password=abc123",
    "passwd: abc123",
    "failed with bearer abc.def-123",
    "token eyJhbGciOiJIUzI1.eyJzdWIiOiIx.c2lnbmF0dXJl seen",
]


def test_every_credential_shape_is_redacted_and_every_pattern_is_tried():
    """The quick check before the patterns must never let a credential through; each pattern is exercised."""
    for text in CREDENTIAL_SHAPES:
        assert "abc123" not in redact(text) and REDACTED in redact(text), text
    for pattern, _ in _PATTERNS:
        assert any(pattern.search(text) for text in CREDENTIAL_SHAPES), f"no example for {pattern.pattern}"
    assert redact("session created for customer cust-1 (support, inbound)") == (
        "session created for customer cust-1 (support, inbound)"
    )
