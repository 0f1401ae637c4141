"""Reusable fakes for ElevenLabs over `responses`: register an endpoint's success or failure in one line.

Every helper takes the active ``responses.RequestsMock`` (the ``responses`` module itself
works when decorated with ``@responses.activate``) and a ``base`` URL that defaults to the
suite's ELEVENLABS_BASE_URL. Example::

    with responses.RequestsMock() as rsps:
        add_signed_url(rsps, agent_id="agent_support_test")
        add_error(rsps, "GET", TOKEN_PATH, 401, code="invalid_api_key", message="Invalid API key")

Faults that are not HTTP answers are exception instances given as ``body``
(``connection_refused()``, ``connection_reset()``, ``connect_timeout()``, ``read_timeout()``),
shaped like what requests really raises, so the client's "did the request leave?" logic
sees the same thing it would in production.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import requests
import responses
from responses import matchers
from urllib3.exceptions import (
    ConnectTimeoutError,
    MaxRetryError,
    NewConnectionError,
    ProtocolError,
    ReadTimeoutError,
)

from elevenlabs.client import ElevenLabsClient

BASE = "https://api.elevenlabs.io"
EU_BASE = "https://api.eu.residency.elevenlabs.io"
API_KEY = "xi-test-key-0000000000000000"

SIGNED_URL_PATH = "/v1/convai/conversation/get-signed-url"
TOKEN_PATH = "/v1/convai/conversation/token"
CONVERSATIONS_PATH = "/v1/convai/conversations"
TWILIO_CALL_PATH = "/v1/convai/twilio/outbound-call"
SIP_CALL_PATH = "/v1/convai/sip-trunk/outbound-call"

SIGNATURE = "sig-SECRET-5f0c2d9e8b7a6f5e4d3c2b1a"
TOKEN = "eyJhbGciOiJIUzI1NiJ9.SECRET-livekit-token.c2lnbmF0dXJl"


def signed_url_for(agent_id: str, *, base: str = BASE) -> str:
    host = base.split("://", 1)[1]
    return f"wss://{host}/v1/convai/conversation?agent_id={agent_id}&conversation_signature={SIGNATURE}"


def error_body(code: str, message: str) -> dict[str, Any]:
    """ElevenLabs' error shape: ``{"detail": {"status": ..., "message": ...}}``."""
    return {"detail": {"status": code, "message": message}}


def validation_body(msg: str = "Field required", loc: list[str] | None = None) -> dict[str, Any]:
    """FastAPI's 422 shape."""
    return {"detail": [{"loc": loc or ["query", "agent_id"], "msg": msg, "type": "missing"}]}


def conversation(conversation_id: str = "conv_123", **fields: Any) -> dict[str, Any]:
    body = {
        "conversation_id": conversation_id,
        "agent_id": "agent_support_test",
        "status": "done",
        "transcript": [{"role": "agent", "message": "Hello!", "time_in_call_secs": 0}],
        "metadata": {"start_time_unix_secs": 1765000000, "call_duration_secs": 42},
        "analysis": {"call_successful": "success", "transcript_summary": "Greeted."},
        "has_audio": True,
    }
    body.update(fields)
    return body


# --- faults raised by requests ---------------------------------------------------------


def connection_refused(host: str = "api.elevenlabs.io") -> requests.ConnectionError:
    reason = NewConnectionError(None, "Failed to establish a new connection: [Errno 111] Connection refused")
    return requests.ConnectionError(MaxRetryError(None, "/", reason))


def connection_reset() -> requests.ConnectionError:
    return requests.ConnectionError(
        ProtocolError("Connection aborted.", ConnectionResetError(104, "Connection reset by peer"))
    )


def connect_timeout() -> requests.ConnectTimeout:
    return requests.ConnectTimeout(MaxRetryError(None, "/", ConnectTimeoutError(None, "Connection timed out")))


def read_timeout() -> requests.ReadTimeout:
    return requests.ReadTimeout(ReadTimeoutError(None, "/", "Read timed out. (read timeout=8)"))


# --- registering endpoints -------------------------------------------------------------


def add_signed_url(
    rsps: Any = responses,
    *,
    agent_id: str = "agent_support_test",
    base: str = BASE,
    status: int = 200,
    conversation_id: str | None = "conv_signed_1",
    conversation_id_in: str = "body",
) -> str:
    """Register a signed-URL success for ``agent_id``; returns the signed URL it will hand out.

    As ElevenLabs documents it, a request with ``include_conversation_id=true`` learns the
    conversation the URL opens: beside the URL in the body (``conversation_id_in="body"``) or
    as a query parameter of the URL (``"url"``). ``conversation_id=None`` gives no id at all.
    """
    url = signed_url_for(agent_id, base=base)
    with_id = f"{url}&conversation_id={conversation_id}" if conversation_id and conversation_id_in == "url" else url

    def answer(request):
        asked = request.params.get("include_conversation_id") == "true"
        body: dict[str, Any] = {"signed_url": with_id if asked else url}
        if asked and conversation_id and conversation_id_in == "body":
            body["conversation_id"] = conversation_id
        return status, {}, json.dumps(body)

    rsps.add_callback(
        "GET",
        base + SIGNED_URL_PATH,
        callback=answer,
        content_type="application/json",
        match=[matchers.query_param_matcher({"agent_id": agent_id}, strict_match=False)],
    )
    return url


def add_token(
    rsps: Any = responses,
    *,
    agent_id: str = "agent_support_test",
    base: str = BASE,
    conversation_id: str | None = None,
) -> str:
    """Register a WebRTC token success for ``agent_id``; returns the token."""
    body: dict[str, Any] = {"token": TOKEN}
    if conversation_id:
        body["conversation_id"] = conversation_id
    rsps.add(
        "GET",
        base + TOKEN_PATH,
        json=body,
        match=[matchers.query_param_matcher({"agent_id": agent_id}, strict_match=False)],
    )
    return TOKEN


def add_conversation(rsps: Any = responses, body: dict[str, Any] | None = None, *, base: str = BASE) -> dict:
    body = body or conversation()
    rsps.add("GET", f"{base}{CONVERSATIONS_PATH}/{body['conversation_id']}", json=body)
    return body


def add_outbound_call(
    rsps: Any = responses,
    *,
    provider: str = "twilio",
    conversation_id: str = "conv_out_1",
    base: str = BASE,
) -> dict:
    path = TWILIO_CALL_PATH if provider == "twilio" else SIP_CALL_PATH
    body: dict[str, Any] = {"success": True, "message": "Call initiated", "conversation_id": conversation_id}
    body["callSid" if provider == "twilio" else "sip_call_id"] = "CA0001"
    rsps.add("POST", base + path, json=body)
    return body


def add_error(
    rsps: Any,
    method: str,
    path: str,
    status: int,
    *,
    code: str | None = None,
    message: str | None = None,
    body: Any = None,
    headers: dict[str, str] | None = None,
    base: str = BASE,
) -> None:
    """Register an HTTP error answer; ElevenLabs' ``detail`` shape when ``code`` is given."""
    if body is None and code is not None:
        body = error_body(code, message or code)
    if isinstance(body, (dict, list)):
        rsps.add(method, base + path, json=body, status=status, headers=headers)
    else:
        rsps.add(method, base + path, body=body or "", status=status, headers=headers)


def add_fault(rsps: Any, method: str, path: str, exc: Exception, *, base: str = BASE) -> None:
    """Register a request that fails with ``exc`` (see connection_refused() and friends)."""
    rsps.add(method, base + path, body=exc)


class RecordingSleep:
    """Injected instead of time.sleep: remembers the waits, never sleeps."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


def make_client(
    *,
    base_url: str = BASE,
    max_attempts: int = 4,
    retry_budget: float = 10.0,
    jitter: float | None = 0.0,
    **kwargs: Any,
) -> tuple[ElevenLabsClient, RecordingSleep]:
    """A client with a recording sleep; jitter pinned to 0 (pass None to keep the real jitter)."""
    sleep = RecordingSleep()
    client = ElevenLabsClient(
        api_key=kwargs.pop("api_key", API_KEY),
        base_url=base_url,
        connect_timeout=kwargs.pop("connect_timeout", 3.05),
        read_timeout=kwargs.pop("read_timeout", 8.0),
        max_attempts=max_attempts,
        retry_budget=retry_budget,
        sleep=sleep,
        **kwargs,
    )
    if jitter is not None:
        client.BACKOFF_JITTER = jitter
    return client, sleep


# --- ElevenLabs on the loopback interface, for server processes `responses` cannot reach ------------


class LoopbackElevenLabs:
    """A local HTTP stand-in for ElevenLabs on 127.0.0.1, for a server a test starts (ELEVENLABS_BASE_URL).

    :meth:`answer` says what a path gets (``(status, json body)``; ElevenLabs' 404 here); every
    request is recorded in ``requests`` as ``{"path", "api_key"}``. Use ``with fake.serving() as url``.
    """

    def __init__(self) -> None:
        self.requests: list[dict[str, str | None]] = []

    def answer(self, path: str) -> tuple[int, dict[str, Any]]:
        return 404, error_body("not_found", "Not found")

    @contextmanager
    def serving(self) -> Iterator[str]:
        server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield f"http://127.0.0.1:{server.server_address[1]}"
        finally:
            server.shutdown()
            server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - the http.server API
                fake.requests.append({"path": self.path, "api_key": self.headers.get("xi-api-key")})
                status, body = fake.answer(self.path)
                payload = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_POST = do_GET  # noqa: N815

            def log_message(self, *args: Any) -> None:  # keep the test output quiet
                pass

        return Handler
