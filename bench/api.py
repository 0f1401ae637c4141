"""The /voice/sessions API under load: granian with several workers, on SQLite and on PostgreSQL.

For each database: a fresh database (migrated), one user with a DRF token, the
production profile (DEBUG=false), then 32 client threads doing create, get, end
and list in turn, each phase bounded by a request count and a time limit. All
traffic goes to 127.0.0.1. Client and server share the machine's cores.
"""

from __future__ import annotations

import tempfile
import threading
from pathlib import Path
from typing import Any

import requests

from bench.common import (
    MAKE_TOKEN,
    POSTGRES_URL,
    LoadResult,
    manage,
    on_fresh_postgres,
    print_table,
    run_load,
    server_env,
)
from devtools.servers import asgi_server

NAME = "api"
DESCRIPTION = "create/get/end/list on /voice/sessions, granian workers, SQLite and PostgreSQL"

CLIENTS = 32
WORKERS = 4
REQUESTS = {"create": 2000, "get": 2000, "end": 2000, "list": 500}
MAX_SECONDS_PER_PHASE = 60.0


def bench_database(label: str, database_url: str) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="voiceagent-bench-logs-") as log_dir:
        env = server_env(database_url, log_dir)
        manage(env, "migrate", "--noinput", "-v", "0")
        token = manage(env, "shell", "-c", MAKE_TOKEN).strip().splitlines()[-1]
        with asgi_server(env=env, workers=WORKERS) as base_url:
            results = run_phases(base_url, token)
    print(f"\n{label}: {WORKERS} granian workers, {CLIENTS} clients")
    print_table(
        ["operation", "requests", "errors", "req/s", "p50 ms", "p99 ms"],
        [[r.operation, r.requests, r.errors, r.requests_per_second, r.p50_ms, r.p99_ms] for r in results],
    )
    for r in results:
        for sample in r.error_samples:
            print(f"  {r.operation} error: {sample[:200]}")
    return {"database": label, "workers": WORKERS, "clients": CLIENTS, "operations": [r.as_dict() for r in results]}


def run_phases(base_url: str, token: str) -> list[LoadResult]:
    sessions_url = f"{base_url}/voice/sessions"
    created: list[str] = []
    created_lock = threading.Lock()

    def make_client() -> requests.Session:
        client = requests.Session()
        client.headers["Authorization"] = f"Token {token}"
        return client

    def create(client: requests.Session, i: int) -> bool | str:
        response = client.post(sessions_url, json={"customer_id": f"bench-{i}"}, timeout=30)
        if response.status_code != 201:
            return f"HTTP {response.status_code}: {response.text[:120]}"
        with created_lock:
            created.append(response.json()["session_id"])
        return True

    def get(client: requests.Session, i: int) -> bool | str:
        response = client.get(f"{sessions_url}/{created[i % len(created)]}", timeout=30)
        return True if response.status_code == 200 else f"HTTP {response.status_code}: {response.text[:120]}"

    def end(client: requests.Session, i: int) -> bool | str:
        response = client.put(f"{sessions_url}/{created[i]}/end", json={"reason": "user"}, timeout=30)
        if response.status_code != 200 or response.json().get("status") != "ended":
            return f"HTTP {response.status_code}: {response.text[:120]}"
        return True

    def list_(client: requests.Session, i: int) -> bool | str:
        response = client.get(sessions_url, timeout=30)
        return True if response.status_code == 200 else f"HTTP {response.status_code}: {response.text[:120]}"

    def phase(name: str, call, total: int) -> LoadResult:
        return run_load(
            name, call, clients=CLIENTS, total=total, max_seconds=MAX_SECONDS_PER_PHASE, make_client=make_client
        )

    # Wake every worker (imports, first connection) before anything is measured.
    phase("warm-up", list_, CLIENTS * 4)
    results = [phase("create", create, REQUESTS["create"])]
    if not created:
        return results
    results.append(phase("get", get, REQUESTS["get"]))
    results.append(phase("end", end, min(REQUESTS["end"], len(created))))
    results.append(phase("list", list_, REQUESTS["list"]))
    return results


def run() -> dict[str, Any]:
    figures: dict[str, Any] = {"requests_per_phase": REQUESTS, "max_seconds_per_phase": MAX_SECONDS_PER_PHASE}
    with tempfile.TemporaryDirectory(prefix="voiceagent-bench-db-") as db_dir:
        figures["sqlite"] = bench_database("SQLite (WAL)", f"sqlite:///{Path(db_dir) / 'bench.sqlite3'}")

    figures["postgresql"] = on_fresh_postgres(POSTGRES_URL, lambda url: bench_database("PostgreSQL", url))
    return figures
