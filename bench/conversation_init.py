"""POST /elevenlabs/conversation-init under load: how fast an inbound call learns who is calling.

ElevenLabs asks while the caller's phone rings, so the answer has to come well within the ringing
time. voiceagent is served as `make serve` serves it (bench.vs_reference.start_voiceagent: 2 workers,
DEBUG off, production logging) on a fresh SQLite file (WAL). Debian's wrk holds 16 connections, each
a closed-loop client (its next request goes when the last is answered), for BENCH_SECONDS (20) after
a 2 s warm-up that is not counted; every request is a new call (a unique call sid) from one of 1000
callers, so each makes a session and its two timeline rows and reads the caller's memory. Target:
p99 under 100 ms. The load average (`uptime`) before and after is recorded: the machine's 2 cores
are shared by the server, wrk and whatever else runs.

    make bench ONLY=conversation_init
"""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Any

import requests

from bench.common import REPO_ROOT, print_table, run_wrk, server_env
from bench.vs_reference import start_voiceagent

NAME = "conversation_init"
DESCRIPTION = "POST /elevenlabs/conversation-init, 16 closed-loop clients (wrk), 2 workers, SQLite: p99 under 100 ms"

SECONDS = int(os.environ.get("BENCH_SECONDS", "20"))
WARMUP_SECONDS = 2
CONNECTIONS = 16
WRK_THREADS = 2
CALLERS = 1000
TARGET_P99_MS = 100.0
AGENT_ID = "agent_bench_support"
WRK = shutil.which("wrk")  # Debian's wrk: apt-get install wrk
WRK_SCRIPT = REPO_ROOT / "bench" / "conversation_init.lua"


def load_average() -> list[float]:
    return [round(value, 2) for value in os.getloadavg()]


def wrk(base_url: str, token: str, *, seconds: int) -> dict[str, Any]:
    """One wrk run: throughput, latency percentiles and errors, from the Lua script's done()."""
    env = {
        **os.environ,
        "BENCH_TOKEN": token,
        "BENCH_AGENT_ID": AGENT_ID,
        "BENCH_RUN_TAG": uuid.uuid4().hex[:8],
        "BENCH_CALLERS": str(CALLERS),
    }
    command = [WRK, f"-t{WRK_THREADS}", f"-c{CONNECTIONS}", f"-d{seconds}s", "--timeout", "10s"]
    command += ["-s", str(WRK_SCRIPT), base_url]
    return run_wrk(command, env=env, timeout=seconds + 60)


def check_the_answer(base_url: str, token: str) -> None:
    """What wrk does not look at: one answer is ElevenLabs' client data with the memory variables."""
    body = {"caller_id": "+15550000001", "agent_id": AGENT_ID, "call_sid": f"CAcheck{uuid.uuid4().hex}"}
    response = requests.post(
        f"{base_url}/elevenlabs/conversation-init", json=body, headers={"Authorization": f"Bearer {token}"}, timeout=10
    )
    variables = response.json().get("dynamic_variables", {}) if response.status_code == 200 else {}
    if not {"session_id", "previous_call_count", "previous_call_summary"} <= set(variables):
        raise RuntimeError(f"conversation-init answered {response.status_code}: {response.text[:300]}")


def run() -> dict[str, Any]:
    if WRK is None:
        raise RuntimeError("wrk is not installed: apt-get install wrk")
    token = secrets.token_urlsafe(32)
    with tempfile.TemporaryDirectory(prefix="voiceagent-bench-init-") as tmp:
        work = Path(tmp)
        env = server_env(f"sqlite:///{work / 'bench.sqlite3'}", str(work / "logs"))
        env.pop("LOG_LEVEL")  # production's default (info): each answered call logs a line, as it would
        env.update(ELEVENLABS_TOOLS_TOKEN=token, ELEVENLABS_SUPPORT_AGENT_ID=AGENT_ID)
        with start_voiceagent(env) as base_url:
            check_the_answer(base_url, token)
            wrk(base_url, token, seconds=WARMUP_SECONDS)
            load_before = load_average()
            figure = wrk(base_url, token, seconds=SECONDS)
            load_after = load_average()
    met = figure["errors"] == 0 and figure["p99_ms"] < TARGET_P99_MS
    print_table(
        ["operation", "requests", "req/s", "p50 ms", "p99 ms", "max ms", "errors", "target p99 < 100 ms"],
        [
            [
                "conversation-init",
                figure["requests"],
                figure["requests_per_second"],
                figure["p50_ms"],
                figure["p99_ms"],
                figure["max_ms"],
                figure["errors"],
                "met" if met else "not met",
            ]
        ],
    )
    print(f"load average (1, 5, 15 min) before {load_before}, after {load_after}")
    return {
        "settings": {"connections": CONNECTIONS, "seconds": SECONDS, "workers": 2, "database": "SQLite (WAL)"},
        "conversation_init": figure,
        "target_p99_ms": TARGET_P99_MS,
        "target_met": met,
        "load_average_before": load_before,
        "load_average_after": load_after,
    }
