"""Large post_call_audio deliveries through a real uvicorn server, and the memory they cost.

ElevenLabs sends the audio webhook with ``Transfer-Encoding: chunked`` and it can be
tens of megabytes. These tests send ~27 MB bodies (20 MB of audio, base64) to
``uvicorn voiceagent.asgi:application --workers 2`` and measure the peak memory of
the webhook code on the same body in a fresh process.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from devtools.servers import REPO_ROOT
from elevenlabs.models import WebhookDelivery
from elevenlabs.webhooks import sign
from sessions.models import VoiceSession
from sessions.services import lifecycle
from tests.server import env_for_test_database, live_asgi_server  # noqa: F401

pytestmark = [pytest.mark.server, pytest.mark.django_db(transaction=True)]

AUDIO_BYTES = 20 * 1024 * 1024
SEND_CHUNK = 64 * 1024


def active_session(conversation_id: str) -> VoiceSession:
    session = lifecycle.session_create(customer_id="cust-large")
    lifecycle.session_mark_connecting(
        session=session, agent_id="agent_support_test", connection_type="websocket", simulation=False
    )
    return lifecycle.session_activate(session=session, conversation_id=conversation_id)


def write_audio_delivery(path: Path, *, conversation_id: str, audio_bytes: int) -> str:
    """Write a post_call_audio body with random audio to ``path``; return the audio's sha256."""
    digest = hashlib.sha256()
    head = json.dumps(
        {
            "type": "post_call_audio",
            "event_timestamp": 1780000050,
            "data": {"agent_id": "agent_support_test", "conversation_id": conversation_id, "full_audio": "@"},
        }
    )
    before, after = head.split('"@"')
    with path.open("wb") as out:
        out.write(before.encode() + b'"')
        remaining = audio_bytes
        while remaining:
            block = os.urandom(min(remaining, 3 * 256 * 1024))  # a multiple of 3: no padding mid-stream
            digest.update(block)
            out.write(base64.b64encode(block))
            remaining -= len(block)
        out.write(b'"' + after.encode())
    return digest.hexdigest()


def file_chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as body:
        while chunk := body.read(SEND_CHUNK):
            yield chunk


def sign_file(path: Path, secret: str) -> str:
    import hmac
    import time

    timestamp = int(time.time())
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode(), hashlib.sha256)
    for chunk in file_chunks(path):
        mac.update(chunk)
    header = f"t={timestamp},v0={mac.hexdigest()}"
    # The same as what the project's own signer produces for the whole body.
    assert header == sign(path.read_bytes(), secret=secret, timestamp=timestamp)
    return header


def webhook_secret() -> str:
    # The server process reads it from the environment that tests/settings.py filled.
    return os.environ["ELEVENLABS_WEBHOOK_SECRET"]


def test_a_large_chunked_audio_delivery_arrives_byte_identical(live_asgi_server, tmp_path):  # noqa: F811
    session = active_session("conv_large_audio")
    body_path = tmp_path / "audio.json"
    audio_sha256 = write_audio_delivery(body_path, conversation_id="conv_large_audio", audio_bytes=AUDIO_BYTES)
    header = sign_file(body_path, webhook_secret())

    # A generator body: requests sends it with Transfer-Encoding: chunked and no Content-Length.
    response = requests.post(
        f"{live_asgi_server}/elevenlabs/webhook",
        data=file_chunks(body_path),
        headers={"ElevenLabs-Signature": header, "Content-Type": "application/json"},
        timeout=(5, 120),
    )
    assert response.request.headers.get("Transfer-Encoding") == "chunked"
    assert "Content-Length" not in response.request.headers
    assert response.status_code == 200, response.text
    assert response.json() == {"status": "processed"}

    session.refresh_from_db()
    stored = hashlib.sha256()
    size = 0
    with session.audio.open("rb") as audio:
        while block := audio.read(1024 * 1024):
            stored.update(block)
            size += len(block)
    assert size == AUDIO_BYTES
    assert stored.hexdigest() == audio_sha256
    delivery = WebhookDelivery.objects.get(conversation_id="conv_large_audio")
    assert delivery.outcome == "processed" and delivery.body_bytes == body_path.stat().st_size
    assert delivery.body_sha256 == hashlib.sha256(body_path.read_bytes()).hexdigest()


def test_the_server_refuses_a_large_delivery_with_a_bad_signature(live_asgi_server, tmp_path):  # noqa: F811
    body_path = tmp_path / "audio.json"
    write_audio_delivery(body_path, conversation_id="conv_forged", audio_bytes=2 * 1024 * 1024)
    header = sign_file(body_path, "not-the-secret")
    response = requests.post(
        f"{live_asgi_server}/elevenlabs/webhook",
        data=file_chunks(body_path),
        headers={"ElevenLabs-Signature": header, "Content-Type": "application/json"},
        timeout=(5, 60),
    )
    assert response.status_code == 401
    assert response.json() == {
        "error": {"code": "invalid_signature", "message": "Invalid signature: signature mismatch."}
    }
    assert not WebhookDelivery.objects.exists()


# The webhook code on one large body, as the view runs it, in a fresh process so that its
# peak resident memory (VmHWM, reset just before) belongs to this delivery alone.
MEASURE = r"""
import json, sys
import django
django.setup()
from elevenlabs.ingest import webhook_ingest
from elevenlabs.views import SPOOL_MEMORY_BYTES
from elevenlabs.webhooks import ELEVENLABS, spool_signed_body
import tempfile
import time

def vm(field):
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
body_path, header, secret = sys.argv[1:4]
before = vm("VmRSS")
with open("/proc/self/clear_refs", "w") as refs:
    refs.write("5")  # reset the peak (VmHWM) to the current RSS
started = time.perf_counter()
with open(body_path, "rb") as stream, tempfile.SpooledTemporaryFile(max_size=SPOOL_MEMORY_BYTES) as spool:
    signed = spool_signed_body(stream=stream, header=header, signers={ELEVENLABS: secret}, spool=spool, max_bytes=10**9)
    delivery = webhook_ingest(body=spool, signed=signed)
elapsed = time.perf_counter() - started
print(json.dumps({"outcome": delivery.outcome, "before": before, "peak": vm("VmHWM"), "seconds": elapsed}))
"""


def test_a_large_audio_delivery_costs_less_than_three_times_its_size_in_memory(tmp_path):
    session = active_session("conv_memory")
    body_path = tmp_path / "audio.json"
    audio_sha256 = write_audio_delivery(body_path, conversation_id="conv_memory", audio_bytes=AUDIO_BYTES)
    payload = body_path.stat().st_size
    header = sign_file(body_path, webhook_secret())

    result = subprocess.run(  # noqa: S603
        [sys.executable, "-c", MEASURE, str(body_path), header, webhook_secret()],
        cwd=REPO_ROOT,
        env=env_for_test_database(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    measured = json.loads(result.stdout.strip().splitlines()[-1])
    growth = measured["peak"] - measured["before"]
    print(
        f"payload {payload / 2**20:.1f} MiB, peak growth {growth / 2**20:.1f} MiB ({growth / payload:.2f}x),"
        f" {measured['seconds']:.2f} s"
    )
    assert measured["outcome"] == "processed"
    assert growth < 3 * payload
    session.refresh_from_db()
    with session.audio.open("rb") as audio:
        assert hashlib.sha256(audio.read()).hexdigest() == audio_sha256


def test_a_signed_webhook_nested_100000_deep_is_refused_while_health_keeps_answering(live_asgi_server):  # noqa: F811
    # Before the depth scan, ijson spent minutes in one C call building the path of each of
    # these events: the worker held the GIL past uvicorn's health check and was killed.
    import threading
    import time

    depth = 100_000
    body = (
        b'{"type": "post_call_transcription", "data": {"conversation_id": "conv_deep", "x": '
        + b"[" * depth
        + b"]" * depth
        + b"}}"
    )
    probes: list[tuple[int | str, float]] = []
    done = threading.Event()

    def probe() -> None:
        while not done.is_set():
            started = time.monotonic()
            try:
                # A new connection each time, so the probes reach both workers.
                status: int | str = requests.get(f"{live_asgi_server}/healthz", timeout=10).status_code
            except requests.RequestException as exc:
                status = type(exc).__name__
            probes.append((status, time.monotonic() - started))
            time.sleep(0.02)

    prober = threading.Thread(target=probe)
    prober.start()
    try:
        time.sleep(0.2)
        response = requests.post(
            f"{live_asgi_server}/elevenlabs/webhook",
            data=body,
            headers={"ElevenLabs-Signature": sign(body, secret=webhook_secret()), "Content-Type": "application/json"},
            timeout=(5, 30),
        )
        time.sleep(0.5)
    finally:
        done.set()
        prober.join()

    assert response.status_code == 400
    assert response.headers["Content-Type"] == "application/json"
    assert "deeper than" in response.json()["error"]["message"]
    assert probes and all(status == 200 for status, _ in probes), probes
    # Generous for a loaded 2-core machine; a starved worker would not answer for minutes.
    assert max(seconds for _, seconds in probes) < 3.0, probes
    delivery = WebhookDelivery.objects.get()
    assert delivery.outcome == "malformed" and "deeper than" in delivery.error
