"""voiceagent beside a FastAPI + SQLAlchemy reference of the same three endpoints (issue 10's measuring stick).

For each database (SQLite in WAL mode, then PostgreSQL at BENCH_POSTGRES_URL, each created empty)
the reference (bench/reference/, 2 uvicorn workers, no auth) and voiceagent (served as `make serve`
serves it, 2 workers, token auth, SESSION_CREATE_THROTTLE empty) take turns: reference, voiceagent,
reference, ... BENCH_RUNS times each. In a turn, Debian's wrk drives one server with 32 connections
on 2 threads for BENCH_SECONDS per operation:

    create  POST /voice/sessions with a unique customer id per request
    get     GET /voice/sessions/{id}, at random among 300 sessions made just before
    end     PUT /voice/sessions/{id}/end, at random among 300 other sessions made just before,
            so most ends are repeats, answered idempotently

A figure is the median of the runs; errors (non-2xx answers, socket errors and timeouts) are summed
over them. wrk runs on the same 2 cores as the servers, but it is C and costs both sides the same.

    make bench ONLY=vs_reference
    BENCH_SECONDS=3 BENCH_RUNS=1 make bench ONLY=vs_reference     (a quick look, not a figure)
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import requests

from bench.common import (
    MAKE_TOKEN,
    POSTGRES_URL,
    REPO_ROOT,
    manage,
    on_fresh_postgres,
    print_table,
    run_wrk,
    server_env,
)
from devtools.servers import free_port, make_serve_server, running_server

NAME = "vs_reference"
DESCRIPTION = "create/get/end beside a FastAPI + SQLAlchemy reference, wrk, 2 workers each, SQLite and PostgreSQL"

SECONDS = int(os.environ.get("BENCH_SECONDS", "20"))
RUNS = int(os.environ.get("BENCH_RUNS", "3"))
WARMUP_SECONDS = int(os.environ.get("BENCH_WARMUP_SECONDS", "2"))
CONNECTIONS = 32
WRK_THREADS = 2
WORKERS = 2
SESSIONS_TO_PICK_FROM = 300
# wrk's own default (2 s) would turn a slow answer into a socket error and leave it out of p99.
WRK_TIMEOUT = os.environ.get("BENCH_WRK_TIMEOUT", "10s")
OPERATIONS = ("create", "get", "end")

REFERENCE_DIR = REPO_ROOT / "bench" / "reference"
REFERENCE_VENV = REFERENCE_DIR / ".venv"
WRK_SCRIPT = REPO_ROOT / "bench" / "vs_reference.lua"
WRK = shutil.which("wrk")  # Debian's wrk: apt-get install wrk


# --- The two servers ------------------------------------------------------------------------


@contextlib.contextmanager
def start_voiceagent(env: dict[str, str]) -> Iterator[str]:
    """voiceagent exactly as `make serve` serves it (scripts/serve.sh, 2 workers); yields the base URL."""
    with make_serve_server(env=env, workers=WORKERS) as base_url:
        yield base_url


@contextlib.contextmanager
def start_reference(database_url: str) -> Iterator[str]:
    """The FastAPI + SQLAlchemy reference with its table in place; yields the base URL."""
    python = reference_python()
    env = {**os.environ, "DATABASE_URL": database_url}
    subprocess.run([python, "app.py", "create-schema"], cwd=REFERENCE_DIR, env=env, check=True)  # noqa: S603
    port = free_port()
    command = [python, "-m", "uvicorn", "app:app", "--workers", str(WORKERS)]
    command += ["--host", "127.0.0.1", "--port", str(port)]
    with running_server(command, env=env, cwd=REFERENCE_DIR, port=port, startup_timeout=90) as base_url:
        yield base_url


def reference_python() -> str:
    """The reference's own virtualenv (bench/reference/.venv), made or brought up to date on first use."""
    requirements = REFERENCE_DIR / "requirements.txt"
    python = REFERENCE_VENV / "bin" / "python"
    stamp = REFERENCE_VENV / ".requirements.sha256"
    wanted = hashlib.sha256(requirements.read_bytes()).hexdigest()
    if python.exists() and stamp.exists() and stamp.read_text().strip() == wanted:
        return str(python)
    print(f"  setting up {REFERENCE_VENV.relative_to(REPO_ROOT)} from {requirements.relative_to(REPO_ROOT)}")
    if not python.exists():
        # The project's interpreter (3.12); venv builds on its base, not on the project's virtualenv.
        subprocess.run([sys.executable, "-m", "venv", str(REFERENCE_VENV)], check=True)  # noqa: S603
    install = [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", "-r", str(requirements)]
    subprocess.run(install, check=True)  # noqa: S603
    stamp.write_text(wanted + "\n")
    return str(python)


# --- The load -------------------------------------------------------------------------------


def wrk(base_url: str, operation: str, *, seconds: int, token: str, work_dir: Path, run_tag: str) -> dict[str, Any]:
    """One wrk run of ``operation``: throughput, latency percentiles and errors, from the Lua script's done()."""
    env = {
        **os.environ,
        "BENCH_OPERATION": operation,
        "BENCH_TOKEN": token,
        "BENCH_RUN_TAG": run_tag,
        "BENCH_IDS_FILE": str(work_dir / "session-ids.txt"),
    }
    command = [WRK, f"-t{WRK_THREADS}", f"-c{CONNECTIONS}", f"-d{seconds}s", "--timeout", WRK_TIMEOUT]
    command += ["-s", str(WRK_SCRIPT), base_url]
    return run_wrk(command, env=env, timeout=seconds + 60)


def make_sessions(base_url: str, token: str, count: int, run_tag: str) -> list[str]:
    """``count`` new sessions through the API (8 at a time), for get and end to pick from."""
    headers = {"Authorization": f"Token {token}"} if token else {}

    def create(i: int) -> str:
        body = {"customer_id": f"pick-{run_tag}-{i}", "direction": "inbound", "locale": "en-US", "simulation": True}
        response = requests.post(f"{base_url}/voice/sessions", json=body, headers=headers, timeout=60)
        if response.status_code != 201:
            raise RuntimeError(f"making sessions: HTTP {response.status_code}: {response.text[:300]}")
        return response.json()["session_id"]

    with ThreadPoolExecutor(max_workers=8) as pool:
        return list(pool.map(create, range(count)))


def one_turn(base_url: str, token: str, work_dir: Path, run_tag: str) -> dict[str, dict[str, Any]]:
    """Warm up, then create, get and end, each for SECONDS; get and end on sessions made just before."""
    ids_file = work_dir / "session-ids.txt"
    load = {"token": token, "work_dir": work_dir}
    if WARMUP_SECONDS:
        # Every worker imported, connected and past its first requests before anything counts.
        wrk(base_url, "create", seconds=WARMUP_SECONDS, run_tag=f"{run_tag}-warmup", **load)
    results = {"create": wrk(base_url, "create", seconds=SECONDS, run_tag=run_tag, **load)}
    for operation in ("get", "end"):
        ids = make_sessions(base_url, token, SESSIONS_TO_PICK_FROM, f"{run_tag}-{operation}")
        ids_file.write_text("\n".join(ids) + "\n")
        results[operation] = wrk(base_url, operation, seconds=SECONDS, run_tag=run_tag, **load)
    return results


# --- The comparison -------------------------------------------------------------------------


def bench_database(label: str, database_url: str, reference_database_url: str) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="voiceagent-bench-vsref-") as work:
        work_dir = Path(work)
        env = server_env(database_url, str(work_dir))
        env["SESSION_CREATE_THROTTLE"] = ""  # the benchmark measures serving, not the per-user create limit
        env.pop("LOG_LEVEL")  # production's default (info): the session log lines are part of what is served
        manage(env, "migrate", "--noinput", "-v", "0")
        token = manage(env, "shell", "-c", MAKE_TOKEN).strip().splitlines()[-1]

        turns: dict[str, list[dict[str, dict[str, Any]]]] = {"reference": [], "voiceagent": []}
        for run_number in range(1, RUNS + 1):
            for side in ("reference", "voiceagent"):
                if side == "reference":
                    server = start_reference(reference_database_url)
                else:
                    server = start_voiceagent(env)
                with server as base_url:
                    turn = one_turn(base_url, token if side == "voiceagent" else "", work_dir, f"{side}{run_number}")
                turns[side].append(turn)
                print(f"  {label} run {run_number} {side:10}", "  ".join(describe(op, turn[op]) for op in OPERATIONS))

    operations = {op: compare(turns["reference"], turns["voiceagent"], op) for op in OPERATIONS}
    print(f"\n{label}: median of {RUNS} run(s) of {SECONDS} s per operation, {CONNECTIONS} connections")
    print_table(
        ["operation", "reference req/s", "p99 ms", "voiceagent req/s", "p99 ms", "ratio", "errors ref/ours", "goal"],
        [
            [
                op,
                f["reference"]["requests_per_second"],
                f["reference"]["p99_ms"],
                f["voiceagent"]["requests_per_second"],
                f["voiceagent"]["p99_ms"],
                f"{f['ratio']:.2f}x",
                f"{f['reference']['errors']}/{f['voiceagent']['errors']}",
                "met" if f["goal_met"] else "not met",
            ]
            for op, f in operations.items()
        ],
    )
    return {"database": label, "operations": operations}


def describe(operation: str, result: dict[str, Any]) -> str:
    errors = f" {result['errors']} errors" if result["errors"] else ""
    return f"{operation} {result['requests_per_second']:.0f}/s p99 {result['p99_ms']:.0f} ms{errors}"


def compare(reference_turns: list[dict], voiceagent_turns: list[dict], operation: str) -> dict[str, Any]:
    """Median throughput and p99 of each side, errors summed over the runs, and issue 10's goal."""
    sides = {}
    for side, turns in (("reference", reference_turns), ("voiceagent", voiceagent_turns)):
        runs = [turn[operation] for turn in turns]
        sides[side] = {
            "requests_per_second": round(statistics.median(r["requests_per_second"] for r in runs), 1),
            "p99_ms": round(statistics.median(r["p99_ms"] for r in runs), 1),
            "errors": sum(r["errors"] for r in runs),
            "runs": runs,
        }
    reference, ours = sides["reference"], sides["voiceagent"]
    ratio = ours["requests_per_second"] / reference["requests_per_second"] if reference["requests_per_second"] else 0.0
    goal_met = ratio >= 1.0 and ours["p99_ms"] <= reference["p99_ms"] and ours["errors"] == 0
    return {**sides, "ratio": round(ratio, 3), "goal_met": goal_met}


def run() -> dict[str, Any]:
    if WRK is None:
        raise RuntimeError("wrk is not installed: apt-get install wrk")
    reference_python()  # before any server starts, so its pip output stays out of the figures
    figures: dict[str, Any] = {
        "settings": {
            "seconds_per_operation": SECONDS,
            "runs": RUNS,
            "warmup_seconds": WARMUP_SECONDS,
            "connections": CONNECTIONS,
            "wrk_threads": WRK_THREADS,
            "wrk_timeout": WRK_TIMEOUT,
            "workers": WORKERS,
            "sessions_to_pick_from": SESSIONS_TO_PICK_FROM,
            "session_create_throttle": "",
        }
    }
    with tempfile.TemporaryDirectory(prefix="voiceagent-bench-db-") as db_dir:
        ours, reference = (f"sqlite:///{Path(db_dir) / name}" for name in ("voiceagent.sqlite3", "reference.sqlite3"))
        figures["sqlite"] = bench_database("SQLite (WAL)", ours, reference)
    # One PostgreSQL database holds both: the reference's table (voice_sessions) is apart from Django's.
    figures["postgresql"] = on_fresh_postgres(POSTGRES_URL, lambda url: bench_database("PostgreSQL", url, url))
    return figures
