"""Logging pieces wired in settings.LOGGING.

- :class:`SessionContextFilter` stamps every record with the voice session it
  belongs to (``session=-`` when none), taken from a context variable that the
  session services and views set with :func:`session_context`.
- :class:`RedactSecretsFilter` rewrites the final message (and traceback) so that
  no secret leaves the process, whatever logger it came through: it sits on the
  handlers, not on loggers, because third-party loggers (urllib3, requests,
  django.request) propagate to the root handlers without passing our loggers.
- :class:`OneLineFormatter` keeps one event per line: newlines and other
  control characters are escaped, so client text cannot forge log lines.
- :class:`JsonLineFormatter` (``LOG_FORMAT=json``) writes each event as one JSON object per
  line: time, level, logger, session_id, message, the record's extra fields, and the
  exception or stack when there is one. :func:`readable_log_line` turns such a line back into
  the text form for people (the playground's log panel).
- :func:`configure` (settings.LOGGING_CONFIG) makes LOG_DIR when logging is set
  up, so importing the settings has no side effect, and puts the root handlers behind a
  :class:`WrittenInBackground` queue.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import json
import logging
import logging.config
import os
import queue
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from logging.handlers import QueueHandler, QueueListener
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

from django.conf import settings

from voiceagent.config import ConfigurationError

_session_id: contextvars.ContextVar[str] = contextvars.ContextVar("voice_session_id", default="-")

REDACTED = "[REDACTED]"

# Header and field names whose value is a credential. Separators vary with where
# the text came from: "xi-api-key" (HTTP), "HTTP_XI_API_KEY" (Django META),
# "xiApiKey" is not used by anyone, so hyphen/underscore is enough.
_HEADER_NAMES = r"xi[-_]api[-_]key|authorization|elevenlabs[-_]signature|x[-_]api[-_]key|cookie"
_FIELD_NAMES = (
    r"conversation_?token|conversationToken|token|signed_?url|signedUrl|api_?key|apiKey"
    r"|secret|password|passwd|conversation_signature|signature"
)

# Secrets that have a recognisable shape wherever they appear. Order matters:
# specific shapes first, so that a later broad pattern sees "[REDACTED]" only.
_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    # signed WebSocket URLs: keep the URL readable, drop the signature
    (re.compile(r"(conversation_signature=)[^&\s\"'<>]+", re.I), r"\1" + REDACTED),
    # our own simulator's signed URLs
    (re.compile(r"([?&]sig(?:nature)?=)[^&\s\"'<>]+", re.I), r"\1" + REDACTED),
    # the webhook signature header's HMAC ("t=…,v0=<hex>")
    (re.compile(r"(\bv0=)[0-9a-f]+", re.I), r"\1" + REDACTED),
    # headers, as "Name: value", "'name': 'value'" or "name=value"
    (
        re.compile(
            rf"((?:{_HEADER_NAMES})[\"']?\s*[:=]\s*[\"']?)(?:(?:bearer|token|basic)\s+)?[^\s\"',}}]+",
            re.I,
        ),
        r"\1" + REDACTED,
    ),
    # credentials in JSON bodies, reprs or query strings
    (
        re.compile(rf"((?:{_FIELD_NAMES})[\"']?\s*[:=]\s*[\"']?)[^\s\"',}}&]+", re.I),
        r"\1" + REDACTED,
    ),
    # a bare bearer credential, e.g. in an exception message
    (re.compile(r"(\bbearer\s+)[A-Za-z0-9._~+/=-]+", re.I), r"\1" + REDACTED),
    # JSON Web Tokens (the WebRTC conversation token is a LiveKit JWT) wherever they appear
    (re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*"), REDACTED),
]

# Words (lower case) at least one of which is in any text a pattern above matches: "sig" for every
# signature and signed URL, "api" for the API-key headers and fields, "eyj" for a JWT's "eyJ", and so on.
# A pattern added above needs its word here (tests/test_logging.py checks each pattern against this).
_PATTERN_WORDS = ("sig", "v0=", "api", "authorization", "cookie", "token", "secret", "passw", "bearer", "eyj")

# C0 controls, DEL, C1 controls (NEL U+0085 is a line break for str.splitlines
# and some log viewers), the Unicode line/paragraph separators, and the bidirectional
# formatting characters (marks, embeddings, overrides, isolates), which make a terminal or
# viewer show a line's text in another order than it was written (the "Trojan Source" trick).
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]")
_NAMED_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}

# The name of an extra field (or of a key inside one) whose whole value is a credential:
# "token", "api_key", "xi-api-key", or one ending like them ("conversation_token", "webhook_secret").
_SECRET_KEY = re.compile(rf"(?:.*[-_])?(?:{_FIELD_NAMES}|{_HEADER_NAMES})", re.I)

# Settings whose values are secrets; they are replaced literally wherever they appear.
SECRET_SETTINGS = ("ELEVENLABS_API_KEY", "ELEVENLABS_WEBHOOK_SECRET", "SECRET_KEY", "METRICS_TOKEN")
# A very short "secret" would redact ordinary words; real ones are far longer.
_MIN_SECRET_LENGTH = 6


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


def configure(config: dict) -> None:
    """Make LOG_DIR, then configure logging from ``config`` as Django's default does (dictConfig).

    The file handler opens its file as it is built; a folder that cannot be made is one sentence
    naming LOG_DIR (manage.py and the ASGI entry point print it), not dictConfig's traceback.
    """
    log_dir = Path(settings.LOG_DIR)
    try:
        log_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigurationError(f"LOG_DIR={str(log_dir)!r} cannot be created: {exc.strerror}.") from None
    logging.config.dictConfig(config)
    root = logging.getLogger()
    if root.handlers:
        root.handlers = [WrittenInBackground(root.handlers)]


def flush_log_writes() -> None:
    """Wait until this process's queued log lines are in the file (before reading the file back)."""
    for handler in logging.getLogger().handlers:
        handler.flush()


class WrittenInBackground(QueueHandler):
    """The root handlers (file, console), run by one thread of the process instead of the caller.

    Each line to the file takes a lock shared by every worker process (ConcurrentRotatingFileHandler)
    and a stat for rotation; done in the request's thread, that halved session creation on two
    workers (209 -> 289 req/s with this; bench/vs_reference.py). The caller stamps the record with
    its session and renders the message; redaction, formatting and writing happen in the thread.
    ``flush()`` waits for everything queued so far to be written.
    """

    def __init__(self, handlers: list[logging.Handler]) -> None:
        super().__init__(queue.Queue())
        self.handlers = list(handlers)
        self.addFilter(SessionContextFilter())
        self._listener = QueueListener(self.queue, *self.handlers, respect_handler_level=True)
        self._listener.start()
        self._pid = os.getpid()

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        # In process: no pickling, so the record goes as it is, its arguments rendered now (they may
        # change once the caller goes on) and its traceback kept for the formatters.
        try:
            record.msg = record.getMessage()
        except Exception:  # a malformed format string must not lose the record (as RedactSecretsFilter)
            record.msg = f"{record.msg!r} {record.args!r}"
        record.args = None
        return record

    def emit(self, record: logging.LogRecord) -> None:
        if os.getpid() != self._pid:
            # A forked child has the queue but not the thread: write here, as the handlers would.
            for handler in self.handlers:
                if record.levelno >= handler.level:
                    handler.handle(record)
            return
        super().emit(record)

    def flush(self) -> None:
        if os.getpid() == self._pid:
            self.queue.join()
        for handler in self.handlers:
            handler.flush()

    def close(self) -> None:
        # logging.shutdown at exit: write what is queued, then close the handlers.
        if os.getpid() == self._pid and self._listener._thread is not None:
            self._listener.stop()
        for handler in self.handlers:
            handler.close()
        super().close()


def _configured_secrets() -> tuple[str, ...]:
    try:
        values = tuple(str(getattr(settings, name, "") or "") for name in SECRET_SETTINGS)
    except Exception:  # settings not configured (yet): nothing to replace literally
        return ()
    return _secret_forms(values)


@functools.lru_cache(maxsize=8)
def _secret_forms(values: tuple[str, ...]) -> tuple[str, ...]:
    """What to replace for these secret values: worked out once per set of values, not once per line."""
    secrets: list[str] = []
    for value in values:
        if len(value) < _MIN_SECRET_LENGTH:
            continue
        # The same secret may show up percent-encoded (in a URL) as well as raw.
        for form in (value, quote(value, safe=""), quote_plus(value)):
            if form not in secrets:
                secrets.append(form)
    # Longest first, so a secret containing another is replaced whole.
    return tuple(sorted(secrets, key=len, reverse=True))


def redact(text: str) -> str:
    """Remove configured secrets and credential-shaped values from ``text``."""
    for secret in _configured_secrets():
        text = text.replace(secret, REDACTED)
    # Most lines hold nothing credential-shaped, and every pattern needs one of a few words to match:
    # without them, skip the passes of the patterns (20 us a line; this check is 1 us).
    lowered = text.lower()
    if not any(word in lowered for word in _PATTERN_WORDS):
        return text
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def redact_value(value: Any) -> Any:
    """``value`` (an extra field) with secrets removed: strings redacted, containers copied with
    their strings redacted and the values of secret-named keys replaced; other objects as they are
    (a formatter that writes them redacts their text, see :class:`JsonLineFormatter`)."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {
            key: REDACTED if isinstance(key, str) and _SECRET_KEY.fullmatch(key) else redact_value(item)
            for key, item in value.items()
        }
    if isinstance(value, (list, tuple)):
        return [redact_value(item) for item in value]
    return value


# What every LogRecord carries; anything else on a record came from ``extra=`` (or a filter).
_RECORD_ATTRIBUTES = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}
# Extras that repeat the message in another dress (uvicorn's copy with terminal colour codes), and
# RedactSecretsFilter's mark on a record it has redacted.
_NOISE_ATTRIBUTES = frozenset({"color_message", "_redacted"})


def extra_fields(record: logging.LogRecord) -> dict[str, Any]:
    """The record's extra fields (``logger.info(..., extra={...})``), our session id left out."""
    return {
        name: value
        for name, value in record.__dict__.items()
        if name not in _RECORD_ATTRIBUTES and name not in _NOISE_ATTRIBUTES and name != "session_id"
    }


class SessionContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "session_id"):
            record.session_id = _session_id.get()
        return True


class RedactSecretsFilter(logging.Filter):
    """Redact the rendered message, traceback and stack of every record it sees.

    The message is rendered here (``msg % args``) so that secrets passed as
    arguments are caught too; ``args`` is then cleared so no later formatter
    re-renders the original values. The file and the console handle the same record:
    the first redacts it and marks it, the second sees the mark and does nothing again.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "_redacted", False):
            return True  # the file and the console share the record: the first handler redacted it
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
        # The redacted exc_text is what gets written; a formatter given exc_info
        # would render the raw traceback again.
        record.exc_info = None
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        session_id = getattr(record, "session_id", None)
        if isinstance(session_id, str):
            record.session_id = redact(session_id)
        # Extra fields are written by the JSON formatter (and by any handler a deployment adds):
        # a secret passed as one must not get out that way either.
        for name, value in extra_fields(record).items():
            if _SECRET_KEY.fullmatch(name):
                setattr(record, name, REDACTED)
            elif isinstance(value, (str, dict, list, tuple)):
                setattr(record, name, redact_value(value))
        record._redacted = True
        return True


def escape_control(text: str) -> str:
    """Make ``text`` safe to write on one line: control characters become escapes."""

    def _escape(match: re.Match[str]) -> str:
        char = match.group()
        return _NAMED_ESCAPES.get(char) or (f"\\x{ord(char):02x}" if ord(char) < 256 else f"\\u{ord(char):04x}")

    return _CONTROL.sub(_escape, text)


class OneLineFormatter(logging.Formatter):
    """Format as usual, then escape, so message, traceback and extras share one line."""

    def format(self, record: logging.LogRecord) -> str:
        return escape_control(super().format(record))


# The keys every JSON line has, in this order; extras follow, and then exception and stack.
JSON_KEYS = ("time", "level", "logger", "session_id", "message")
_JSON_TAIL_KEYS = ("exception", "stack")


class JsonLineFormatter(logging.Formatter):
    """One JSON object per line (``LOG_FORMAT=json``), for log shippers.

    ``{"time", "level", "logger", "session_id", "message", <extra fields>…, "exception"?, "stack"?}``:
    time in UTC (ISO 8601, milliseconds), session_id null outside a session. An extra field
    named like one of these keys is written as ``extra_<name>``. Values JSON cannot hold are
    written as their text, redacted. Non-ASCII text stays readable; the characters that break
    or reorder a line (:func:`escape_control`'s) are written as ``\\uXXXX`` escapes, so the
    object stays on its line and stays valid JSON.

    Redaction happens before, in :class:`RedactSecretsFilter` on the handler: the message,
    traceback, stack and extra fields arrive here already clean.
    """

    def format(self, record: logging.LogRecord) -> str:
        session_id = getattr(record, "session_id", "-")
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, tz=UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "session_id": None if session_id in ("-", "", None) else str(session_id),
            "message": record.getMessage(),
        }
        for name, value in extra_fields(record).items():
            entry[f"extra_{name}" if name in entry or name in _JSON_TAIL_KEYS else name] = value
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = record.stack_info
        text = json.dumps(entry, ensure_ascii=False, default=_json_text)
        # json.dumps escapes C0 controls itself; what remains can only sit inside a string.
        return _CONTROL.sub(lambda match: f"\\u{ord(match.group()):04x}", text)


def _json_text(value: Any) -> str:
    """The text of a value JSON cannot hold (a request, a path, a date), redacted."""
    return redact(str(value))


def readable_log_line(line: str) -> str:
    """A log file line as a person reads it: a JSON line in the text form, any other line as it is.

    ``time LEVEL logger session=<id> message key=value…`` and the exception, on one line.
    """
    if not line.startswith("{"):
        return line
    try:
        entry = json.loads(line)
    except ValueError:
        return line
    if not isinstance(entry, dict) or not all(key in entry for key in JSON_KEYS):
        return line
    parts = [
        str(entry["time"]),
        str(entry["level"]),
        str(entry["logger"]),
        f"session={entry['session_id'] or '-'}",
        str(entry["message"]),
    ]
    for key, value in entry.items():
        if key in JSON_KEYS or key in _JSON_TAIL_KEYS:
            continue
        parts.append(f"{key}={value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)}")
    for key in _JSON_TAIL_KEYS:
        if entry.get(key):
            parts.append(str(entry[key]))
    return escape_control(" ".join(parts))
