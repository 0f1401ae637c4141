"""Logging pieces wired in settings.LOGGING.

- :class:`SessionContextFilter` stamps every record with the voice session it
  belongs to (``session=-`` when none), taken from a context variable that the
  session services and views set with :func:`session_context`.
- :class:`RedactSecretsFilter` rewrites the final message so that no secret
  leaves the process, whatever logger it came through.
- :class:`OneLineFormatter` keeps one event per line: newlines and other
  control characters are escaped, so client text cannot forge log lines.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import re
from collections.abc import Iterator

_session_id: contextvars.ContextVar[str] = contextvars.ContextVar("voice_session_id", default="-")

REDACTED = "[REDACTED]"

# Secrets that have a recognisable shape wherever they appear.
_PATTERNS = [
    # signed WebSocket URLs: keep the URL readable, drop the signature
    (re.compile(r"(conversation_signature=)[^&\s\"'<>]+", re.I), r"\1" + REDACTED),
    # our own simulator's signed URLs
    (re.compile(r"((?:[?&])sig(?:nature)?=)[^&\s\"'<>]+", re.I), r"\1" + REDACTED),
    # headers, as "Name: value", "'name': 'value'" or "name=value"
    (
        re.compile(
            r"((?:xi-api-key|authorization|elevenlabs-signature|x-api-key|cookie)[\"']?\s*[:=]\s*[\"']?)"
            r"(?:(?:bearer|token|basic)\s+)?[^\s\"',}]+",
            re.I,
        ),
        r"\1" + REDACTED,
    ),
    # credentials in JSON bodies or query strings
    (
        re.compile(
            r"((?:conversation_token|conversationToken|token|signed_url|signedUrl|api_key|apiKey|secret|password)"
            r"[\"']?\s*[:=]\s*[\"']?)[^\s\"',}&]+",
            re.I,
        ),
        r"\1" + REDACTED,
    ),
]

_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]")


def current_session_id() -> str:
    return _session_id.get()


@contextlib.contextmanager
def session_context(session_id: object) -> Iterator[None]:
    """Attach ``session_id`` to every log record written inside the block."""
    token = _session_id.set(str(session_id) if session_id else "-")
    try:
        yield
    finally:
        _session_id.reset(token)


def _configured_secrets() -> list[str]:
    from django.conf import settings

    values = []
    for name in ("ELEVENLABS_API_KEY", "ELEVENLABS_WEBHOOK_SECRET", "SECRET_KEY"):
        value = getattr(settings, name, "") or ""
        if len(value) >= 6:  # a very short "secret" would redact ordinary words
            values.append(value)
    return values


def redact(text: str) -> str:
    for secret in _configured_secrets():
        text = text.replace(secret, REDACTED)
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class SessionContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "session_id"):
            record.session_id = _session_id.get()
        return True


class RedactSecretsFilter(logging.Filter):
    """Redact the rendered message (and traceback) of every record it sees."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed format string must not lose the record
            message = f"{record.msg!r} {record.args!r}"
        record.msg = redact(message)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        record.exc_info = None  # the redacted exc_text is what gets written
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


def escape_control(text: str) -> str:
    """Make ``text`` safe to write on one line: control characters become escapes."""

    def _escape(match: re.Match[str]) -> str:
        char = match.group()
        named = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
        return named.get(char) or (f"\\x{ord(char):02x}" if ord(char) < 256 else f"\\u{ord(char):04x}")

    return _CONTROL.sub(_escape, text)


class OneLineFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return escape_control(super().format(record))
