"""A production deployment without the simulated agent (SIMULATOR_ENABLED=false) and with a real key.

Everything runs as an operator would run it: ``manage.py check`` and ``migrate`` on a fresh
database, uvicorn (DEBUG off) serving the test database, and ``reconcile_sessions`` as its own
process. ElevenLabs is a local HTTP stand-in on the loopback interface (:class:`FakeElevenLabs`),
reached through ELEVENLABS_BASE_URL like the real one.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import requests
from django.utils import timezone
from rest_framework.authtoken.models import Token
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from devtools.servers import REPO_ROOT, asgi_server
from elevenlabs.webhooks import SIGNATURE_HEADER, sign, simulator_signing_secret
from sessions.models import VoiceSession
from sessions.services import lifecycle
from tests.elevenlabs_fakes import LoopbackElevenLabs, conversation
from tests.server import env_for_test_database

pytestmark = [pytest.mark.server, pytest.mark.django_db(transaction=True)]

API_KEY = "xi-live-looking-key-7d1f0c9a4b2e8f6d5c3a1b0e"
REAL_CONVERSATION = "conv_real_0001"
RECONCILED_CONVERSATION = "conv_real_0002"
SIMULATOR_URL = "/simulator/v1/convai/conversation?agent_id=a&conversation_id=c&expires=9&conversation_signature=x"


class FakeElevenLabs(LoopbackElevenLabs):
    """ElevenLabs' endpoints the start flow and the reconciler call, answering as ElevenLabs does."""

    def answer(self, path: str) -> tuple[int, dict]:
        if path.startswith("/v1/convai/conversation/get-signed-url"):
            url = f"wss://elevenlabs.invalid/v1/convai/conversation?conversation_id={REAL_CONVERSATION}&sig=s"
            return 200, {"signed_url": url, "conversation_id": REAL_CONVERSATION}
        if path.startswith("/v1/convai/conversations/"):
            return 200, conversation(path.rsplit("/", 1)[1], has_audio=False)
        return super().answer(path)


def production_env(upstream_url: str, **overrides: str) -> dict[str, str]:
    env = env_for_test_database()
    env.update(
        SIMULATOR_ENABLED="false",
        ELEVENLABS_API_KEY=API_KEY,
        ELEVENLABS_BASE_URL=upstream_url,
        ELEVENLABS_CONNECTION_TYPE="websocket",
        **overrides,
    )
    return env


def manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(  # noqa: S603
        [sys.executable, "manage.py", *args], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=180
    )


@pytest.fixture(scope="module")
def upstream() -> Iterator[tuple[str, FakeElevenLabs]]:
    fake = FakeElevenLabs()
    with fake.serving() as url:
        yield url, fake


@pytest.fixture(scope="module")
def server(django_db_setup, upstream) -> Iterator[str]:
    with asgi_server(env=production_env(upstream[0]), workers=1) as base_url:
        yield base_url


def test_check_and_migrate_pass_on_a_fresh_database_without_the_simulator(upstream):
    with tempfile.TemporaryDirectory(prefix="voiceagent-nosim-") as folder:
        env = production_env(upstream[0], DATABASE_URL=f"sqlite:///{Path(folder) / 'fresh.sqlite3'}")
        checked = manage("check", "--fail-level", "WARNING", env=env)
        assert checked.returncode == 0, checked.stdout + checked.stderr
        migrated = manage("migrate", "--no-input", env=env)
        assert migrated.returncode == 0, migrated.stdout + migrated.stderr
        assert "Applying simulator." not in migrated.stdout  # the app is not there to migrate
        pending = manage("makemigrations", "--check", "--dry-run", env=env)
        assert pending.returncode == 0, pending.stdout + pending.stderr


def test_a_real_start_works_and_a_simulated_one_is_refused(server, upstream, alice):
    _, fake = upstream
    headers = {"Authorization": f"Token {Token.objects.create(user=alice).key}"}
    body = {"agentType": "support", "customerId": "cust-prod", "textOnly": True}

    started = requests.post(f"{server}/api/voice/sessions", json=body, headers=headers, timeout=30)
    assert started.status_code == 201, started.text
    credential = started.json()["elevenlabs_conversation"]
    assert credential["simulation"] is False
    assert credential["conversation_id"] == REAL_CONVERSATION
    assert credential["signed_url"].startswith("wss://elevenlabs.invalid/")
    asked = [(request["path"].split("&", 1)[0], request["api_key"]) for request in fake.requests]
    assert ("/v1/convai/conversation/get-signed-url?agent_id=agent_support_test", API_KEY) in asked

    sessions_before = VoiceSession.objects.count()
    refused = requests.post(
        f"{server}/api/voice/sessions", json={**body, "simulation": True}, headers=headers, timeout=30
    )
    assert refused.status_code == 400
    error = refused.json()["error"]
    assert error["code"] == "simulation_unavailable"
    assert error["variable"] == "SIMULATOR_ENABLED"
    assert "SIMULATOR_ENABLED" in error["message"]
    assert VoiceSession.objects.count() == sessions_before  # refused before anything was stored

    health = requests.get(f"{server}/healthz", timeout=10).json()
    assert health["elevenlabs"]["mode"] == "configured"


def test_the_simulators_websocket_is_not_routed(server):
    ws_base = server.replace("http://", "ws://")
    with pytest.raises(InvalidStatus) as refused:
        connect(f"{ws_base}{SIMULATOR_URL}", subprotocols=["convai"], open_timeout=10)
    assert refused.value.response.status_code == 403


def test_the_webhook_takes_elevenlabs_deliveries_and_refuses_the_simulators_key(server, alice, settings):
    session = lifecycle.session_create(user=alice, customer_id="cust-webhook")
    lifecycle.session_mark_connecting(
        session=session, agent_id="agent_support_test", connection_type="websocket", simulation=False
    )
    lifecycle.session_activate(session=session, conversation_id="conv_real_hook")
    delivery = {
        "type": "post_call_transcription",
        "event_timestamp": 1765000100,
        "data": conversation("conv_real_hook", has_audio=False),
    }
    raw = json.dumps(delivery).encode()
    url = f"{server}/elevenlabs/webhook"

    # Without the simulator nothing here signs with its key: such a delivery is not ours to take.
    forged = requests.post(url, data=raw, headers={SIGNATURE_HEADER: sign(raw, secret=simulator_signing_secret())})
    assert forged.status_code == 401

    signed = {SIGNATURE_HEADER: sign(raw, secret=settings.ELEVENLABS_WEBHOOK_SECRET)}
    accepted = requests.post(url, data=raw, headers=signed, timeout=30)
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["status"] == "processed"
    session.refresh_from_db()
    assert session.status == "ended"
    assert session.transcript[0]["message"] == "Hello!"


def test_the_reconciler_fills_in_real_sessions_and_reports_simulated_ones(upstream, alice):
    upstream_url, fake = upstream
    long_ago = timezone.now() - timedelta(hours=1)
    real = lifecycle.session_create(user=alice, customer_id="cust-reconcile")
    lifecycle.session_mark_connecting(
        session=real, agent_id="agent_support_test", connection_type="websocket", simulation=False
    )
    lifecycle.session_activate(session=real, conversation_id=RECONCILED_CONVERSATION)
    lifecycle.session_end(session=real)
    # A simulated session left from before the simulator was switched off.
    simulated = lifecycle.session_create(user=alice, customer_id="cust-old-sim", simulation=True)
    lifecycle.session_mark_connecting(
        session=simulated, agent_id="sim_support_agent", connection_type="websocket", simulation=True
    )
    lifecycle.session_activate(session=simulated, conversation_id="sim_conv_left_over")
    lifecycle.session_end(session=simulated)
    VoiceSession.objects.filter(pk__in=[real.pk, simulated.pk]).update(ended_at=long_ago)

    ran = manage("reconcile_sessions", env=production_env(upstream_url))
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert "1 stored" in ran.stdout and "1 error" in ran.stdout
    assert f"{simulated.pk}: simulation_unavailable" in ran.stderr
    assert "Traceback" not in ran.stderr
    assert {"path": f"/v1/convai/conversations/{RECONCILED_CONVERSATION}", "api_key": API_KEY} in fake.requests

    real.refresh_from_db()
    assert real.post_call_received_at is not None
    assert real.transcript[0]["message"] == "Hello!"
    simulated.refresh_from_db()
    assert simulated.post_call_received_at is None
