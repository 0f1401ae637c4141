"""The metrics of a real simulated conversation, through uvicorn with two worker processes.

The server runs in prometheus_client's multiprocess mode as `make serve` runs it: a
PROMETHEUS_MULTIPROC_DIR emptied before the workers start (voiceagent.metrics prepare), each
worker writing its own files there. An API client starts a simulated session, reports the
connection, talks to the simulated agent over its WebSocket and hangs up; the simulator posts
its webhook to the server. Client log entries go out on fresh connections until both workers
have taken some. Whichever worker answers a scrape, it reports the counts of both, summed.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families
from rest_framework.authtoken.models import Token

from devtools.servers import asgi_server
from sessions.models import Status
from tests.server import env_for_test_database, wait_for_post_call
from voiceagent.metrics import prepare_multiproc_dir

pytestmark = [pytest.mark.server, pytest.mark.django_db(transaction=True)]

TOKEN = "metrics-token-for-the-server-test-0123"
SCRAPE = {"Authorization": f"Bearer {TOKEN}"}
MAX_LOG_ENTRIES = 80


@pytest.fixture(scope="module")
def metrics_server(django_db_setup, tmp_path_factory) -> Iterator[tuple[str, Path]]:
    folder = tmp_path_factory.mktemp("prometheus-multiproc")
    (folder / "counter_1.db").write_bytes(b"left by an earlier run")  # what prepare exists to remove
    prepare_multiproc_dir(folder)
    env = env_for_test_database()
    env.update(PROMETHEUS_MULTIPROC_DIR=str(folder), METRICS_TOKEN=TOKEN)
    with asgi_server(env=env, workers=2) as base_url:
        yield base_url, folder


def scrape(base_url: str) -> dict[tuple[str, frozenset], float]:
    """One scrape on a fresh connection: {(sample name, labels): value}."""
    response = requests.get(f"{base_url}/metrics", headers={**SCRAPE, "Connection": "close"}, timeout=10)
    assert response.status_code == 200, response.text
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def accepted_log_entries_per_process(folder: Path) -> dict[str, float]:
    """Each worker's own count of accepted client log entries, read from its file alone."""
    per_pid: dict[str, float] = defaultdict(float)
    for path in folder.glob("counter_*.db"):
        pid = path.stem.rpartition("_")[2]
        for metric in MultiProcessCollector.merge([str(path)], accumulate=False):
            for s in metric.samples:
                if s.name == "voiceagent_client_log_entries_total" and s.labels.get("outcome") == "accepted":
                    per_pid[pid] += s.value
    return {pid: count for pid, count in per_pid.items() if count}


def test_a_simulated_conversation_is_counted_once_across_two_workers(metrics_server, alice):
    from websockets.sync.client import connect

    base_url, folder = metrics_server
    assert not (folder / "counter_1.db").exists()
    assert requests.get(f"{base_url}/metrics", timeout=10).status_code == 401
    token = Token.objects.create(user=alice).key
    api = {"Authorization": f"Token {token}"}

    started = requests.post(
        f"{base_url}/api/voice/sessions",
        json={"agentType": "support", "customerId": "cust-metrics", "textOnly": True, "simulation": True},
        headers=api,
        timeout=10,
    )
    assert started.status_code == 201, started.text
    body = started.json()
    session_id = body["backend_session"]["session_id"]
    conversation_id = body["elevenlabs_conversation"]["conversation_id"]

    with connect(body["elevenlabs_conversation"]["signed_url"], open_timeout=10) as socket:
        assert json.loads(socket.recv(timeout=10))["type"] == "conversation_initiation_metadata"
        connected = requests.post(
            f"{base_url}/voice/sessions/{session_id}/events",
            json={"type": "connected", "conversation_id": conversation_id},
            headers=api,
            timeout=10,
        )
        assert connected.status_code == 200, connected.text
        during = scrape(base_url)
        socket.send(json.dumps({"type": "conversation_initiation_client_data"}))
        assert json.loads(socket.recv(timeout=10))["type"] == "agent_response"
        socket.send(json.dumps({"type": "user_message", "text": "Where is my order?"}))
        assert [json.loads(socket.recv(timeout=10))["type"] for _ in range(2)] == ["user_transcript", "agent_response"]
        socket.close(code=1000, reason="done")

    assert wait_for_post_call(session_id).status == Status.ENDED

    # Fresh connections until both workers have taken entries (uvicorn's workers share one socket).
    sent = 0
    while sent < MAX_LOG_ENTRIES and (sent < 10 or len(accepted_log_entries_per_process(folder)) < 2):
        entry = requests.post(
            f"{base_url}/api/logs",
            json={"level": "info", "message": f"entry {sent}"},
            headers={**api, "Connection": "close"},
            timeout=10,
        )
        assert entry.status_code == 201, entry.text
        sent += 1
    per_process = accepted_log_entries_per_process(folder)
    assert len(per_process) == 2, per_process
    assert sum(per_process.values()) == sent

    # The simulator's end and its webhook run after the socket closes: wait until the counts settle.
    deadline = time.monotonic() + 20
    after = scrape(base_url)
    while time.monotonic() < deadline and not value(
        after, "voiceagent_simulator_conversations_ended_total", agent_type="support", webhook="delivered"
    ):
        time.sleep(0.1)
        after = scrape(base_url)

    assert value(during, "voiceagent_sessions", status="active", agent_type="support") == 1
    assert value(during, "voiceagent_sessions", status="connecting", agent_type="support") == 0
    for scraped in [after] + [scrape(base_url) for _ in range(5)]:  # any worker may answer: all say the same
        assert value(scraped, "voiceagent_client_log_entries_total", outcome="accepted", reason="") == sent
        for from_status, to_status in [("none", "created"), ("created", "connecting"), ("connecting", "active")]:
            labels = {"from_status": from_status, "to_status": to_status, "agent_type": "support"}
            assert value(scraped, "voiceagent_session_transitions_total", **labels) == 1, labels
        ended = {"from_status": "active", "to_status": "ended", "agent_type": "support"}
        assert value(scraped, "voiceagent_session_transitions_total", **ended) == 1
        delivery = {"event_type": "post_call_transcription", "outcome": "processed"}
        assert value(scraped, "voiceagent_webhook_deliveries_total", **delivery) == 1
        assert value(scraped, "voiceagent_simulator_conversations_started_total", agent_type="support") == 1
        simulated_end = {"agent_type": "support", "webhook": "delivered"}
        assert value(scraped, "voiceagent_simulator_conversations_ended_total", **simulated_end) == 1
        assert value(scraped, "voiceagent_sessions", status="active", agent_type="support") == 0
