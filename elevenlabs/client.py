"""The one HTTP client voiceagent uses to talk to ElevenLabs Agents (ConvAI).

Only endpoints in ElevenLabs' API reference (https://elevenlabs.io/docs/api-reference,
Agents Platform: the signed URL, the WebRTC token, conversations and their audio,
Twilio and SIP-trunk outbound calls) are called, each at exactly one path: the
prototype "tried variants" on 404/405 and hid real configuration errors that way,
so a 4xx here is final and no other endpoint is ever tried instead.

Retries (tenacity) cover what is transient and nothing else: connection errors,
timeouts, 408, 429 and 5xx. Waits are exponential with jitter, or what the
server's ``Retry-After`` asks for (capped). Two limits apply together: at most
``max_attempts`` attempts, and a retry budget in seconds that counts the time
spent in requests plus the time spent waiting; a wait that would pass the
budget is not taken, the last error is raised instead. A caller in a request
cycle therefore never waits on ElevenLabs much longer than the budget.

Every call writes one log line on logger ``voiceagent.elevenlabs`` with the
method, the path (never the query string: it is not needed and a signed URL or
token must never reach a log), attempts, latency and outcome, and is counted once in
``voiceagent_elevenlabs_api_calls_total`` and its latency histogram (elevenlabs/metrics.py).
Response bodies of the credential endpoints are never logged.
"""

from __future__ import annotations

import email.utils
import logging
import math
import os
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import IO, Any
from urllib.parse import quote, urlsplit

import requests
from requests.adapters import HTTPAdapter
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt
from tenacity.stop import stop_base
from tenacity.wait import wait_base, wait_exponential_jitter
from urllib3.exceptions import MaxRetryError, NewConnectionError, ReadTimeoutError

from elevenlabs.metrics import count_api_call
from elevenlabs.postcall import post_call_problem
from sessions.validators import CONVERSATION_ID
from voiceagent.jsonlimits import loads_bounded
from voiceagent.logging import REDACTED
from voiceagent.timing import record_upstream

logger = logging.getLogger("voiceagent.elevenlabs")

MAX_MESSAGE_CHARS = 500
# An error body is read only this far: it is a short JSON document, and a proxy's
# HTML error page or a misbehaving upstream must not fill our memory.
MAX_ERROR_BODY_BYTES = 64 * 1024

OUTBOUND_CALL_PATHS = {
    "twilio": "/v1/convai/twilio/outbound-call",
    "sip_trunk": "/v1/convai/sip-trunk/outbound-call",
}

# ElevenLabs' bodies nest a handful of levels; deeper is a broken or hostile answer, not data (a ValueError).
MAX_RESPONSE_DEPTH = 64


class ElevenLabsError(Exception):
    """A call to ElevenLabs failed; carries what our own API should answer.

    - ``status``: the upstream HTTP status, or None when no answer arrived;
    - ``code``: ElevenLabs' ``detail.status`` (e.g. ``invalid_api_key``),
      ``validation_error`` for a 422, ``upstream_error`` for an error without a code,
      or our own ``timeout``, ``connection_error``, ``invalid_response``,
      ``outbound_call_failed``, ``not_configured``;
    - ``message``: ElevenLabs' own message when it gave one, else a clear sentence;
    - ``attempts``: how many requests were made;
    - ``upstream_code``: the code exactly as ElevenLabs sent it (None if it sent none);
    - ``retry_after``: seconds the server asked us to wait, when it said so.
    """

    def __init__(
        self,
        message: str,
        *,
        code: str,
        status: int | None = None,
        upstream_code: str | None = None,
        attempts: int = 1,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status
        self.upstream_code = upstream_code
        self.attempts = attempts
        self.retry_after = retry_after
        # Set by the client for its retry decision; not part of the public contract.
        self._transient = False
        self._surely_unsent = False

    @property
    def http_status(self) -> int:
        """The status our API answers with when this error reaches a client."""
        if self.code == "timeout":
            return 504
        if self.code in {"connection_error", "not_configured"}:
            return 503
        if self.status in {429, 503}:
            return 503
        return 502

    def as_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "message": self.message,
            "upstream_status": self.status,
            "upstream_code": self.upstream_code,
        }

    def __repr__(self) -> str:
        return f"ElevenLabsError(code={self.code!r}, status={self.status!r}, message={self.message!r})"


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP-date); None if absent or unusable."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
        return max(0.0, seconds)  # a date in the past means "now"
    if not math.isfinite(seconds) or seconds < 0:
        return None
    return seconds


class _Budget:
    """Time a call has used: request time plus waits taken (waits as requested, so a fake sleep counts too)."""

    def __init__(self, limit: float) -> None:
        self.limit = limit
        self.spent = 0.0


class _stop_past_budget(stop_base):
    def __init__(self, budget: _Budget) -> None:
        self.budget = budget

    def __call__(self, retry_state: RetryCallState) -> bool:
        # tenacity computes the upcoming wait before asking the stop strategy.
        return self.budget.spent + (retry_state.upcoming_sleep or 0.0) > self.budget.limit


class _wait_retry_after_or(wait_base):
    def __init__(self, fallback: wait_base, cap: float) -> None:
        self.fallback = fallback
        self.cap = cap

    def __call__(self, retry_state: RetryCallState) -> float:
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        retry_after = getattr(exc, "retry_after", None)
        if retry_after is not None:
            return min(self.cap, retry_after)
        return self.fallback(retry_state)


class ElevenLabsClient:
    """Calls ElevenLabs over one pooled session. Thread-safe for concurrent calls."""

    # Backoff: multiplier * 2**(n-1) + uniform(0, jitter), at most BACKOFF_MAX. Class
    # attributes so a test can pin the jitter to 0 on one instance.
    BACKOFF_MULTIPLIER = 0.5
    BACKOFF_MAX = 4.0
    BACKOFF_JITTER = 0.25
    RETRY_AFTER_CAP = 30.0
    USER_AGENT = "voiceagent/1.0"

    def __init__(
        self,
        *,
        api_key: str,
        base_url: str,
        connect_timeout: float,
        read_timeout: float,
        max_attempts: int,
        retry_budget: float,
        sleep: Callable[[float], None] = time.sleep,
        session: requests.Session | None = None,
    ) -> None:
        if not api_key:
            raise ValueError("api_key is required.")
        parts = urlsplit(base_url)
        if parts.scheme not in {"http", "https"} or not parts.netloc:
            raise ValueError(f"base_url {base_url!r} is not an http(s) URL.")
        if connect_timeout <= 0 or read_timeout <= 0:
            raise ValueError("Timeouts must be positive.")
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1.")
        if retry_budget < 0:
            raise ValueError("retry_budget must not be negative.")
        self._api_key = api_key
        self.base_url = base_url.rstrip("/")
        self.host = parts.netloc
        self.connect_timeout = float(connect_timeout)
        self.read_timeout = float(read_timeout)
        self.max_attempts = int(max_attempts)
        self.retry_budget = float(retry_budget)
        self._sleep = sleep
        if session is None:
            session = requests.Session()
            # We retry ourselves, with a budget; urllib3 must not retry underneath.
            adapter = HTTPAdapter(pool_connections=4, pool_maxsize=16, max_retries=0)
            session.mount("https://", adapter)
            session.mount("http://", adapter)
        self.session = session
        # Headers go with each request rather than onto the session, so a session
        # passed in by a caller never carries our key anywhere else.
        self._headers = {"xi-api-key": api_key, "Accept": "application/json", "User-Agent": self.USER_AGENT}

    @classmethod
    def from_settings(cls) -> ElevenLabsClient:
        from django.conf import settings

        api_key = getattr(settings, "ELEVENLABS_API_KEY", "")
        if not api_key:
            raise ElevenLabsError(
                "ELEVENLABS_API_KEY is not set, so ElevenLabs cannot be called (simulation mode).",
                code="not_configured",
                attempts=0,
            )
        return cls(
            api_key=api_key,
            base_url=settings.ELEVENLABS_BASE_URL,
            connect_timeout=settings.ELEVENLABS_CONNECT_TIMEOUT,
            read_timeout=settings.ELEVENLABS_READ_TIMEOUT,
            max_attempts=settings.ELEVENLABS_MAX_ATTEMPTS,
            retry_budget=settings.ELEVENLABS_RETRY_BUDGET_SECONDS,
        )

    def __repr__(self) -> str:
        return f"ElevenLabsClient(base_url={self.base_url!r})"

    def close(self) -> None:
        self.session.close()

    # --- endpoints ----------------------------------------------------------------------

    def get_signed_url(self, agent_id: str, *, include_conversation_id: bool = False) -> dict:
        """A signed WebSocket URL for ``agent_id`` (valid 15 min): ``{"signed_url": ...}``."""
        params = {"agent_id": _require(agent_id, "agent_id")}
        if include_conversation_id:
            params["include_conversation_id"] = "true"
        return self._json("GET", "/v1/convai/conversation/get-signed-url", params=params, check=_has_str("signed_url"))

    def get_conversation_token(self, agent_id: str, *, participant_name: str | None = None) -> dict:
        """A WebRTC conversation token for ``agent_id`` (valid 10 min): ``{"token": ..., "conversation_id"?}``."""
        params = {"agent_id": _require(agent_id, "agent_id")}
        if participant_name:
            params["participant_name"] = participant_name
        return self._json("GET", "/v1/convai/conversation/token", params=params, check=_has_str("token"))

    def get_conversation(self, conversation_id: str) -> dict:
        path = f"/v1/convai/conversations/{_path_id(conversation_id)}"
        return self._json("GET", path, check=_is_post_call_conversation)

    def list_conversations(self, *, page_size: int = 30, cursor: str | None = None, **filters: Any) -> dict:
        """One page: ``{"conversations": [...], "next_cursor": ..., "has_more": ...}``.

        ``filters`` are ElevenLabs' query parameters (agent_id, user_id, call_successful,
        call_start_after_unix, exclude_statuses, search, summary_mode, ...); None is left out,
        booleans are sent as true/false, lists as repeated parameters.
        """
        if not 1 <= page_size <= 100:
            raise ValueError("page_size must be between 1 and 100.")
        params: dict[str, Any] = {"page_size": page_size}
        if cursor:
            params["cursor"] = cursor
        for name, value in filters.items():
            if value is None:
                continue
            if isinstance(value, bool):
                value = "true" if value else "false"
            params[name] = value
        return self._json("GET", "/v1/convai/conversations", params=params, check=_is_conversation_page)

    def iter_conversations(self, *, page_size: int = 100, **filters: Any) -> Iterator[dict]:
        """Every conversation matching ``filters``, page after page (a page is fetched only when needed)."""
        cursor: str | None = None
        seen: set[str] = set()
        while True:
            page = self.list_conversations(page_size=page_size, cursor=cursor, **filters)
            yield from page["conversations"]
            cursor = page.get("next_cursor")
            if not page.get("has_more") or not cursor:
                return
            if cursor in seen:  # a repeating cursor would loop forever
                error = ElevenLabsError(
                    "ElevenLabs returned a page cursor it had already returned.", code="invalid_response", status=200
                )
                self._record_error("GET", "/v1/convai/conversations", error, None)
                raise error
            seen.add(cursor)

    def download_conversation_audio(
        self, conversation_id: str, fileobj: IO[bytes], *, chunk_size: int = 64 * 1024
    ) -> int:
        """Stream the conversation's MP3 into ``fileobj``; returns the number of bytes written.

        Memory stays at about one chunk. Retries cover the request up to the response
        headers; a failure while the body streams is raised without a retry (bytes are
        already in ``fileobj``), so write to a temporary file and keep it only on success.
        """
        if chunk_size < 1:
            raise ValueError("chunk_size must be positive.")
        path = f"/v1/convai/conversations/{_path_id(conversation_id)}/audio"
        started = time.monotonic()
        response, attempts = self._send("GET", path, stream=True)
        written = 0
        try:
            with response:
                for chunk in response.iter_content(chunk_size=chunk_size):
                    if chunk:
                        fileobj.write(chunk)
                        written += len(chunk)
        except requests.RequestException as exc:
            error = self._transport_error(exc)
            error.attempts = attempts
            self._record_error("GET", path, error, started)
            raise error from exc
        self._record_ok("GET", path, response.status_code, attempts, started, f" bytes={written}")
        return written

    def outbound_call(
        self,
        *,
        provider: str,
        agent_id: str,
        agent_phone_number_id: str,
        to_number: str,
        conversation_initiation_client_data: dict | None = None,
    ) -> dict:
        """Have the agent dial ``to_number``; returns ``{success, message, conversation_id?, callSid?|sip_call_id?}``.

        A response with ``success: false`` raises ElevenLabsError(code="outbound_call_failed").
        """
        try:
            path = OUTBOUND_CALL_PATHS[provider]
        except KeyError:
            raise ValueError(f"provider must be one of {sorted(OUTBOUND_CALL_PATHS)}, not {provider!r}.") from None
        payload: dict[str, Any] = {
            "agent_id": _require(agent_id, "agent_id"),
            "agent_phone_number_id": _require(agent_phone_number_id, "agent_phone_number_id"),
            "to_number": _require(to_number, "to_number"),
        }
        if conversation_initiation_client_data is not None:
            payload["conversation_initiation_client_data"] = conversation_initiation_client_data
        # This POST dials a phone. It is retried only when the request surely never
        # reached ElevenLabs (connection refused, name resolution failed, connect
        # timeout). A read timeout, a reset connection or a 5xx may come after the
        # call was placed, and a retry could ring the person twice; a 429 is not
        # retried either, so that this rule stays simple to check. The caller sees the
        # error and decides, knowing the call may or may not have been placed.
        return self._json("POST", path, json_body=payload, idempotent=False, check=self._call_placed)

    def _call_placed(self, body: dict) -> ElevenLabsError | None:
        if body.get("success") is False:
            message = _clean(body.get("message"), self._api_key) or "ElevenLabs did not place the call."
            return ElevenLabsError(message, code="outbound_call_failed")
        return None

    # --- machinery ----------------------------------------------------------------------

    def _json(
        self,
        method: str,
        path: str,
        *,
        params: dict | None = None,
        json_body: dict | None = None,
        idempotent: bool = True,
        check: Callable[[dict], ElevenLabsError | None] | None = None,
    ) -> dict:
        """Call, parse a JSON object, let ``check`` refuse it, and log the outcome once."""
        started = time.monotonic()
        response, attempts = self._send(method, path, params=params, json_body=json_body, idempotent=idempotent)
        try:
            body = loads_bounded(response.content, max_depth=MAX_RESPONSE_DEPTH)
        except ValueError:
            body = None
        if not isinstance(body, dict):
            error: ElevenLabsError | None = ElevenLabsError(
                f"ElevenLabs answered HTTP {response.status_code} with a body that is not a JSON object.",
                code="invalid_response",
            )
        else:
            error = check(body) if check else None
        if error is not None:
            error.status = response.status_code
            error.attempts = attempts
            self._record_error(method, path, error, started)
            raise error
        self._record_ok(method, path, response.status_code, attempts, started)
        return body

    def _send(
        self,
        method: str,
        path: str,
        *,
        params: dict | None = None,
        json_body: dict | None = None,
        stream: bool = False,
        idempotent: bool = True,
    ) -> tuple[requests.Response, int]:
        """Make the request with retries; returns a 2xx response and the number of attempts.

        Failures are logged here; success is logged by the caller once the body is read.
        """
        url = self.base_url + path
        started = time.monotonic()
        budget = _Budget(self.retry_budget)
        attempts = 0

        def attempt() -> requests.Response:
            nonlocal attempts
            attempts += 1
            sent_at = time.monotonic()
            try:
                response = self.session.request(
                    method,
                    url,
                    params=params,
                    json=json_body,
                    headers=self._headers,
                    timeout=(self.connect_timeout, self.read_timeout),
                    stream=stream,
                    # A redirect would carry the xi-api-key header to wherever it points
                    # (requests strips only Authorization); none of these endpoints redirects.
                    allow_redirects=False,
                )
            except requests.RequestException as exc:
                raise self._transport_error(exc) from exc
            finally:
                exchange = time.monotonic() - sent_at
                budget.spent += exchange
                record_upstream(exchange)
            if response.status_code >= 300:
                raise self._error_from_response(response)
            return response

        def should_retry(exc: BaseException) -> bool:
            if not isinstance(exc, ElevenLabsError):
                return False
            return exc._surely_unsent if not idempotent else exc._transient

        def sleep(seconds: float) -> None:
            budget.spent += seconds
            self._sleep(seconds)

        def log_retry(retry_state: RetryCallState) -> None:
            exc = retry_state.outcome.exception() if retry_state.outcome else None
            logger.warning(
                "elevenlabs %s %s attempt=%d failed code=%s status=%s; retrying in %.2f s",
                method,
                path,
                retry_state.attempt_number,
                getattr(exc, "code", "?"),
                getattr(exc, "status", None),
                retry_state.upcoming_sleep,
            )

        retrying = Retrying(
            retry=retry_if_exception(should_retry),
            wait=_wait_retry_after_or(
                wait_exponential_jitter(
                    multiplier=self.BACKOFF_MULTIPLIER, max=self.BACKOFF_MAX, jitter=self.BACKOFF_JITTER
                ),
                cap=self.RETRY_AFTER_CAP,
            ),
            stop=stop_after_attempt(self.max_attempts) | _stop_past_budget(budget),
            sleep=sleep,
            before_sleep=log_retry,
            reraise=True,
        )
        try:
            response = retrying(attempt)
        except ElevenLabsError as error:
            error.attempts = attempts
            self._record_error(method, path, error, started)
            raise
        return response, attempts

    def _error_from_response(self, response: requests.Response) -> ElevenLabsError:
        status = response.status_code
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        raw = _read_limited(response)
        response.close()
        if 300 <= status < 400:
            return ElevenLabsError(
                f"ElevenLabs answered with a redirect (HTTP {status}), which this client does not follow.",
                code="invalid_response",
                status=status,
            )
        body: Any = None
        try:
            body = loads_bounded(raw, max_depth=MAX_RESPONSE_DEPTH) if raw else None
        except ValueError:
            body = None
        detail = body.get("detail") if isinstance(body, dict) else None
        upstream_code: str | None = None
        message: str | None = None
        if isinstance(detail, dict):
            upstream_code = _clean(detail.get("status"), self._api_key) or _clean(detail.get("code"), self._api_key)
            message = _clean(detail.get("message"), self._api_key)
        elif isinstance(detail, list) and detail and isinstance(detail[0], dict):
            first = detail[0]
            loc = first.get("loc")
            where = ".".join(str(part) for part in loc) if isinstance(loc, list) else None
            msg = _clean(first.get("msg"), self._api_key) or "Invalid request"
            message = f"{msg} at {where}" if where else msg
            if len(detail) > 1:
                message += f" (and {len(detail) - 1} more)"
            upstream_code = _clean(first.get("type"), self._api_key)
        elif isinstance(detail, str):
            message = _clean(detail, self._api_key)
        if status == 422:
            code = "validation_error"
        else:
            code = upstream_code or "upstream_error"
        if not message:
            reason = f" {response.reason}" if response.reason else ""
            message = f"ElevenLabs answered HTTP {status}{reason}."
        error = ElevenLabsError(message, code=code, status=status, upstream_code=upstream_code, retry_after=retry_after)
        error._transient = status in {408, 429} or status >= 500
        return error

    def _transport_error(self, exc: requests.RequestException) -> ElevenLabsError:
        """Turn a requests exception into an ElevenLabsError, with a sentence that names no URL or query."""
        reason = exc.args[0] if exc.args else None
        inner = reason.reason if isinstance(reason, MaxRetryError) else reason
        surely_unsent = False
        transient = True
        if isinstance(exc, requests.ConnectTimeout):
            code = "timeout"
            message = f"ElevenLabs ({self.host}) did not accept a connection within {self.connect_timeout:g} s."
            surely_unsent = True
        elif isinstance(exc, requests.Timeout) or isinstance(inner, ReadTimeoutError):
            code = "timeout"
            message = f"ElevenLabs ({self.host}) did not answer within {self.read_timeout:g} s."
        elif isinstance(exc, requests.exceptions.SSLError):
            # A certificate or TLS problem is configuration, not a passing fault.
            code = "connection_error"
            message = f"The TLS handshake with ElevenLabs ({self.host}) failed."
            transient = False
        elif isinstance(exc, requests.ConnectionError) and isinstance(inner, NewConnectionError):
            # Refused or unresolvable: the request never left this machine.
            code = "connection_error"
            message = f"Could not connect to ElevenLabs ({self.host})."
            surely_unsent = True
        elif isinstance(exc, requests.ConnectionError | requests.exceptions.ChunkedEncodingError):
            code = "connection_error"
            message = f"The connection to ElevenLabs ({self.host}) broke before a complete answer arrived."
        else:
            code = "connection_error"
            message = f"The request to ElevenLabs ({self.host}) could not be made ({type(exc).__name__})."
            transient = False
        error = ElevenLabsError(message, code=code)
        error._transient = transient
        error._surely_unsent = surely_unsent
        return error

    # One log line and one count per call (voiceagent_elevenlabs_api_calls_total), retries included.

    def _record_ok(self, method: str, path: str, status: int, attempts: int, started: float, extra: str = "") -> None:
        count_api_call(path, str(status), time.monotonic() - started)
        logger.info(
            "elevenlabs %s %s outcome=ok status=%s attempts=%d latency_ms=%d%s",
            method,
            path,
            status,
            attempts,
            _ms_since(started),
            extra,
        )

    def _record_error(self, method: str, path: str, error: ElevenLabsError, started: float | None) -> None:
        """``started`` is None for a verdict on an answer already counted (a repeated page cursor)."""
        if started is not None:
            # An HTTP error status, else what went wrong (timeout, connection_error, invalid_response on a 2xx, ...).
            status = str(error.status) if error.status is not None and error.status >= 300 else error.code
            count_api_call(path, status, time.monotonic() - started)
        logger.warning(
            "elevenlabs %s %s outcome=error code=%s status=%s attempts=%d latency_ms=%s message=%r",
            method,
            path,
            error.code,
            error.status,
            error.attempts,
            _ms_since(started) if started is not None else "-",
            error.message,
        )


def _has_str(key: str) -> Callable[[dict], ElevenLabsError | None]:
    def check(body: dict) -> ElevenLabsError | None:
        if isinstance(body.get(key), str) and body[key]:
            return None
        return ElevenLabsError(f"ElevenLabs' answer has no '{key}'.", code="invalid_response")

    return check


def _is_post_call_conversation(body: dict) -> ElevenLabsError | None:
    problem = post_call_problem(body)
    if problem is None:
        return None
    return ElevenLabsError(f"ElevenLabs' conversation details are malformed: {problem}", code="invalid_response")


def _is_conversation_page(body: dict) -> ElevenLabsError | None:
    if isinstance(body.get("conversations"), list):
        return None
    return ElevenLabsError("ElevenLabs' conversation list has no 'conversations' array.", code="invalid_response")


def _require(value: str, name: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{name} is required.")
    return value.strip()


def _path_id(conversation_id: str) -> str:
    if not isinstance(conversation_id, str) or not CONVERSATION_ID.fullmatch(conversation_id):
        raise ValueError(f"{conversation_id!r} is not a conversation id.")
    return quote(conversation_id, safe="")


def _clean(value: Any, api_key: str) -> str | None:
    """A string from an upstream body, fit for a message: trimmed, bounded, and never carrying our key."""
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip().replace(api_key, REDACTED)
    if len(text) > MAX_MESSAGE_CHARS:
        text = text[: MAX_MESSAGE_CHARS - 1] + "…"
    return text


def _read_limited(response: requests.Response) -> bytes:
    if not response.raw or getattr(response, "_content_consumed", False):
        return (response.content or b"")[:MAX_ERROR_BODY_BYTES]
    chunks, size = [], 0
    try:
        for chunk in response.iter_content(chunk_size=8192):
            chunks.append(chunk)
            size += len(chunk)
            if size >= MAX_ERROR_BODY_BYTES:
                break
    except requests.RequestException:
        pass  # the status says enough; a broken error body must not hide it
    return b"".join(chunks)[:MAX_ERROR_BODY_BYTES]


def _ms_since(started: float) -> int:
    return round((time.monotonic() - started) * 1000)


# --- the process-wide client -------------------------------------------------------------

_client_lock = threading.Lock()
_client: tuple[int, ElevenLabsClient] | None = None


def get_client() -> ElevenLabsClient:
    """The process's client (one pooled session), built from settings on first use.

    Keyed by process id: a client inherited over fork() would share sockets with the
    parent, so a forked worker builds its own.
    """
    global _client
    with _client_lock:
        if _client is None or _client[0] != os.getpid():
            _client = (os.getpid(), ElevenLabsClient.from_settings())
        return _client[1]


def reset_client() -> None:
    """Forget the cached client (tests; settings changes). The next get_client() builds a new one."""
    global _client
    with _client_lock:
        old, _client = _client, None
    if old is not None and old[0] == os.getpid():
        old[1].close()


def _reset_on_setting_change(*, setting: str, **kwargs: Any) -> None:
    if setting.startswith("ELEVENLABS_"):
        reset_client()


try:
    from django.test.signals import setting_changed

    setting_changed.connect(_reset_on_setting_change, dispatch_uid="elevenlabs.client.reset")
except ImportError:  # pragma: no cover - Django is always installed here
    pass
