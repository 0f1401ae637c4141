"""Oversized and unsigned bodies against a real uvicorn (2 workers, DEBUG off): refused before they are read.

The attack (issue 8): anonymous 1 GiB chunked POSTs were read whole, up to 2 GiB on a
worker's temp disk, before a 401/403; a stale webhook wrote 234 MiB before its 401. The
server here runs with small caps (API 32 KiB, webhook 64 KiB; /api/logs keeps
CLIENT_LOG_MAX_BYTES, 8 KiB) and each test streams a body far over them from a raw socket
that stops as soon as an answer arrives, counting what it managed to send. Without the
guard the server reads everything and the count is the whole body.
"""

from __future__ import annotations

import json
import os
import select
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit

import pytest
import requests
from rest_framework.authtoken.models import Token

from devtools.servers import asgi_server
from elevenlabs.models import WebhookDelivery
from elevenlabs.webhooks import sign
from sessions.models import VoiceSession
from sessions.services import lifecycle
from tests.server import env_for_test_database

pytestmark = [pytest.mark.server, pytest.mark.django_db(transaction=True)]

API_CAP = 32 * 1024
WEBHOOK_CAP = 64 * 1024
LOG_CAP = 8 * 1024
# Far over every cap; a guard that works stops the client within the socket buffers (a few MiB at most).
HUGE_BODY = 48 * 1024 * 1024
STOPPED_WITHIN = 12 * 1024 * 1024
SEND_CHUNK = 64 * 1024


@pytest.fixture(scope="module")
def capped_server(django_db_setup, django_db_blocker) -> Iterator[str]:
    env = env_for_test_database()
    env.update(
        {
            "API_MAX_BODY_BYTES": str(API_CAP),
            "ELEVENLABS_WEBHOOK_MAX_BYTES": str(WEBHOOK_CAP),
            "CLIENT_LOG_MAX_BYTES": str(LOG_CAP),
        }
    )
    with asgi_server(env=env, workers=2) as base_url:
        yield base_url


@pytest.fixture
def token(django_user_model) -> str:
    user = django_user_model.objects.create_user("alice", password="alice-pass-123")
    return Token.objects.create(user=user).key


@dataclass
class Exchange:
    status: int
    headers: dict[str, str]
    body: bytes
    sent: int
    seconds: float

    def json(self):
        return json.loads(self.body)


def stream_post(
    base_url: str,
    path: str,
    *,
    headers: dict[str, str] | None = None,
    body_bytes: int = HUGE_BODY,
    declared_length: int | None = None,
    send_body: bool = True,
) -> Exchange:
    """POST ``body_bytes`` to ``path`` chunked (or with ``declared_length``), stopping once an answer arrives.

    The client's send buffer is kept small so that ``sent`` is close to what the server
    took in; the server's receive buffer still holds some megabytes.
    """
    address = urlsplit(base_url)
    started = time.monotonic()
    with socket.create_connection((address.hostname, address.port), timeout=20) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_CHUNK)
        lines = [f"POST {path} HTTP/1.1", f"Host: {address.netloc}", "Content-Type: application/json"]
        lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
        lines.append(
            f"Content-Length: {declared_length}" if declared_length is not None else "Transfer-Encoding: chunked"
        )
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        block = b"x" * SEND_CHUNK
        frame = block if declared_length is not None else f"{SEND_CHUNK:x}\r\n".encode() + block + b"\r\n"
        sent = 0
        while send_body and sent < body_bytes:
            if select.select([sock], [], [], 0)[0]:
                break  # the server has answered (or closed): a real client would stop too
            try:
                sock.sendall(frame)
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += SEND_CHUNK
        else:
            if send_body and declared_length is None:
                sock.sendall(b"0\r\n\r\n")
        raw = _read_answer(sock)
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    answer_headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in header_lines)}
    return Exchange(
        status=int(status_line.split()[1]),
        headers=answer_headers,
        body=body[: int(answer_headers.get("content-length", len(body)))],
        sent=sent,
        seconds=time.monotonic() - started,
    )


def _read_answer(sock: socket.socket) -> bytes:
    raw = b""
    while True:
        try:
            data = sock.recv(65536)
        except ConnectionResetError:
            break  # the server closed with our unread body in its buffer; what came before the reset is kept
        if not data:
            break
        raw += data
        head, sep, body = raw.partition(b"\r\n\r\n")
        if sep and b"content-length:" in head.lower():
            length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
            if len(body) >= length:
                break
    return raw


def assert_refused_early(exchange: Exchange, status: int) -> None:
    print(f"{exchange.status} after {exchange.sent / 2**20:.2f} MiB sent, {exchange.seconds:.2f} s")
    assert exchange.status == status, exchange
    assert exchange.headers.get("connection") == "close"
    assert exchange.sent < STOPPED_WITHIN, f"the server took {exchange.sent} bytes before answering"
    assert exchange.seconds < 15


def assert_too_large(exchange: Exchange, limit: int) -> None:
    assert_refused_early(exchange, 413)
    assert exchange.headers["content-type"] == "application/json"
    body = exchange.json()
    assert body["error"]["code"] == "body_too_large" and body["error"]["limit"] == limit
    assert str(limit) in body["error"]["message"]


def fresh_signature() -> str:
    # Well formed and fresh, so only the size can refuse it before the body is read.
    return sign(b"not this body", secret=os.environ["ELEVENLABS_WEBHOOK_SECRET"])


def test_a_huge_chunked_body_to_health_is_refused_at_once(capped_server):
    assert_too_large(stream_post(capped_server, "/healthz"), 0)


def test_a_huge_chunked_body_to_the_sessions_api_is_refused_anonymous_or_not(capped_server, token):
    assert_too_large(stream_post(capped_server, "/voice/sessions"), API_CAP)
    authorised = stream_post(capped_server, "/voice/sessions", headers={"Authorization": f"Token {token}"})
    assert_too_large(authorised, API_CAP)
    assert not VoiceSession.objects.exists()


def test_a_huge_chunked_log_entry_is_refused_at_the_log_cap(capped_server, token):
    assert_too_large(stream_post(capped_server, "/api/logs", headers={"Authorization": f"Token {token}"}), LOG_CAP)


def test_a_huge_chunked_webhook_with_a_fresh_signature_is_refused_at_the_webhook_cap(capped_server):
    exchange = stream_post(capped_server, "/elevenlabs/webhook", headers={"ElevenLabs-Signature": fresh_signature()})
    assert_too_large(exchange, WEBHOOK_CAP)
    assert not WebhookDelivery.objects.exists()


@pytest.mark.parametrize("path", ["/voice/sessions", "/elevenlabs/webhook", "/healthz"])
def test_a_declared_huge_length_is_refused_before_any_body_is_sent(capped_server, path):
    exchange = stream_post(
        capped_server,
        path,
        headers={"ElevenLabs-Signature": fresh_signature()},
        declared_length=10 * 1024**3,
        send_body=False,
    )
    assert exchange.status == 413 and exchange.sent == 0
    assert exchange.json()["error"]["code"] == "body_too_large"
    assert exchange.seconds < 10


def test_a_stale_webhook_signed_with_our_secret_is_refused_before_its_body_is_read(capped_server):
    # A replay from 1970 of a several-MiB delivery, correctly signed: only its age is wrong.
    body_bytes = 8 * 1024 * 1024
    header = sign(b"x" * body_bytes, secret=os.environ["ELEVENLABS_WEBHOOK_SECRET"], timestamp=1)
    exchange = stream_post(
        capped_server, "/elevenlabs/webhook", headers={"ElevenLabs-Signature": header}, body_bytes=body_bytes
    )
    assert_refused_early(exchange, 401)
    assert exchange.json() == {
        "error": {"code": "invalid_signature", "message": "Invalid signature: signature timestamp too old."}
    }
    assert exchange.sent < body_bytes
    assert not WebhookDelivery.objects.exists()


def test_an_unsigned_webhook_is_refused_before_its_body_is_read(capped_server):
    exchange = stream_post(capped_server, "/elevenlabs/webhook")
    assert_refused_early(exchange, 401)
    assert exchange.json() == {
        "error": {"code": "invalid_signature", "message": "Invalid signature: missing signature header."}
    }


def test_requests_of_ordinary_size_still_work(capped_server, token):
    auth = {"Authorization": f"Token {token}"}
    created = requests.post(
        f"{capped_server}/voice/sessions",
        json={
            "customer_id": "cust-1",
            "direction": "inbound",
            "locale": "en-US",
            "dynamic_variables": {"plan": "x" * 900},
        },
        headers=auth,
        timeout=10,
    )
    assert created.status_code == 201, created.text
    logged = requests.post(
        f"{capped_server}/api/logs", json={"level": "info", "message": "connected"}, headers=auth, timeout=10
    )
    assert logged.status_code == 201, logged.text
    assert requests.get(f"{capped_server}/healthz", timeout=10).status_code == 200


def test_a_real_signed_webhook_is_still_ingested_when_sent_chunked(capped_server):
    session = lifecycle.session_create(customer_id="cust-1")
    lifecycle.session_mark_connecting(
        session=session, agent_id="agent_support_test", connection_type="websocket", simulation=False
    )
    lifecycle.session_activate(session=session, conversation_id="conv_capped")
    body = json.dumps(
        {
            "type": "post_call_transcription",
            "event_timestamp": 1780000050,
            "data": {
                "agent_id": "agent_support_test",
                "conversation_id": "conv_capped",
                "status": "done",
                "transcript": [
                    {"role": "agent", "message": "Hello " * 800, "time_in_call_secs": turn} for turn in range(10)
                ],
                "metadata": {"start_time_unix_secs": 1780000000, "call_duration_secs": 42},
                "analysis": {"call_successful": "success", "transcript_summary": "Greeted."},
            },
        }
    ).encode()
    assert API_CAP < len(body) < WEBHOOK_CAP  # over the API's cap, within the webhook's own
    header = sign(body, secret=os.environ["ELEVENLABS_WEBHOOK_SECRET"])
    response = requests.post(
        f"{capped_server}/elevenlabs/webhook",
        data=(body[i : i + 4096] for i in range(0, len(body), 4096)),
        headers={"ElevenLabs-Signature": header, "Content-Type": "application/json"},
        timeout=20,
    )
    assert response.request.headers.get("Transfer-Encoding") == "chunked"
    assert response.status_code == 200, response.text
    assert response.json() == {"status": "processed"}
    session.refresh_from_db()
    assert session.status == "ended"
