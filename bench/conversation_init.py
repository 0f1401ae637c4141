"""POST /elevenlabs/conversation-init under load: how fast an inbound call learns who is calling.

ElevenLabs asks while the caller's phone rings, so the answer has to come well within the ringing
time. voiceagent is served as `make serve` serves it (bench.vs_reference.start_voiceagent: 2 workers,
DEBUG off, production logging) on a fresh SQLite file (WAL). 16 closed-loop clients (each sends its
next request when the last is answered, keep-alive, one requests.Session each) ask for BENCH_SECONDS
(20) about calls with a unique call sid each, from 1000 distinct callers, after a short warm-up that
is not counted. Every request makes a session, its two timeline rows and reads the caller's memory.
Target: p99 under 100 ms. The load average (`uptime`) before and after is recorded: the machine's
2 cores are shared by the server, the clients and whatever else runs.

    make bench ONLY=conversation_init
"""

from __future__ import annotations

import os
import secrets
import tempfile
import uuid
from pathlib import Path
from typing import Any

import requests

from bench.common import print_table, run_load, server_env
from bench.vs_reference import start_voiceagent

NAME = "conversation_init"
DESCRIPTION = "POST /elevenlabs/conversation-init, 16 closed-loop clients, 2 workers, SQLite: p99 target under 100 ms"

SECONDS = float(os.environ.get("BENCH_SECONDS", "20"))
WARMUP_SECONDS = 2.0
CLIENTS = 16
CALLERS = 1000
TARGET_P99_MS = 100.0
AGENT_ID = "agent_bench_support"


def load_average() -> list[float]:
    return [round(value, 2) for value in os.getloadavg()]


def measure(base_url: str, token: str, *, seconds: float, label: str) -> dict[str, Any]:
    url = f"{base_url}/elevenlabs/conversation-init"
    run_tag = uuid.uuid4().hex[:8]

    def make_client() -> requests.Session:
        session = requests.Session()
        session.headers.update({"Authorization": f"Bearer {token}"})
        return session

    def ask(client: requests.Session, i: int) -> bool | str:
        body = {
            "caller_id": f"+1555{i % CALLERS:07d}",
            "agent_id": AGENT_ID,
            "called_number": "+15550100000",
            "call_sid": f"CA{run_tag}{i:024d}",
        }
        response = client.post(url, json=body, timeout=10)
        if response.status_code != 200:
            return f"{response.status_code} {response.text[:120]}"
        variables = response.json()["dynamic_variables"]
        return True if "previous_call_count" in variables else "no memory variables"

    result = run_load(label, ask, clients=CLIENTS, total=10_000_000, max_seconds=seconds, make_client=make_client)
    return result.as_dict()


def run() -> dict[str, Any]:
    token = secrets.token_urlsafe(32)
    with tempfile.TemporaryDirectory(prefix="voiceagent-bench-init-") as tmp:
        work = Path(tmp)
        env = server_env(f"sqlite:///{work / 'bench.sqlite3'}", str(work / "logs"))
        env.pop("LOG_LEVEL")  # production's default (info): each answered call logs a line, as it would
        env.update(ELEVENLABS_TOOLS_TOKEN=token, ELEVENLABS_SUPPORT_AGENT_ID=AGENT_ID)
        with start_voiceagent(env, work / "server.log") as base_url:
            measure(base_url, token, seconds=WARMUP_SECONDS, label="warm-up")
            load_before = load_average()
            figure = measure(base_url, token, seconds=SECONDS, label="conversation-init")
            load_after = load_average()
    met = figure["errors"] == 0 and figure["p99_ms"] < TARGET_P99_MS
    print_table(
        ["operation", "requests", "req/s", "p50 ms", "p99 ms", "errors", "target p99 < 100 ms"],
        [
            [
                figure["operation"],
                figure["requests"],
                figure["requests_per_second"],
                figure["p50_ms"],
                figure["p99_ms"],
                figure["errors"],
                "met" if met else "not met",
            ]
        ],
    )
    if figure["error_samples"]:
        print("errors:", *figure["error_samples"], sep="\n  ")
    print(f"load average (1, 5, 15 min) before {load_before}, after {load_after}")
    return {
        "settings": {"clients": CLIENTS, "seconds": SECONDS, "workers": 2, "database": "SQLite (WAL)"},
        "conversation_init": figure,
        "target_p99_ms": TARGET_P99_MS,
        "target_met": met,
        "load_average_before": load_before,
        "load_average_after": load_after,
    }
