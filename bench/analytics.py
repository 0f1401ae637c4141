"""GET /api/analytics over 30 days, with 1,000,000 sessions stored, on SQLite and on PostgreSQL.

Measured in-process: a child process per database sets Django up on a database of its own (a
fresh SQLite file, a fresh PostgreSQL database; never the development one), fills it with a
million sessions in bulk (PostgreSQL's COPY, SQLite's executemany in one transaction), and times
50 calls of ``GET /api/analytics`` through Django's test client with a staff user's token: the
whole middleware stack, authentication, the queries and the JSON, without a socket.

The million sessions are a year of a busy service (about 2,700 a day); the headline asks for the
last 30 days of it (about 82,000 sessions) as staff, with no filter: the indexes of migration
0006 let both databases read only that month, from the index alone. Targets: p50 under 200 ms,
p95 under 500 ms. Beside it: the same month with an agent type filter, a user who sees only their
own sessions (about 1 %), and the whole year (every one of the million sessions: the worst case,
where no index can skip a row). The query plans of the headline call are kept in the results.

    python -m bench.run analytics
    BENCH_ANALYTICS_SESSIONS=20000 python -m bench.run analytics     (a quick look)
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.common import REPO_ROOT, manage, on_fresh_postgres, percentile, print_table, server_env

NAME = "analytics"
DESCRIPTION = "GET /api/analytics: 30 days of a year of 1,000,000 sessions, in-process, SQLite and PostgreSQL"

SESSIONS = int(os.environ.get("BENCH_ANALYTICS_SESSIONS", 1_000_000))
# Its own PostgreSQL database, created for the figure and dropped after it.
POSTGRES_URL = os.environ.get("BENCH_ANALYTICS_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/analytics_bench")
LAST_DAY = date(2026, 12, 31)
HISTORY_DAYS = 365
DAYS = 30
CALLS = 50
WARMUP_CALLS = 3
OWNERS = 100
TARGET_P50_MS = 200
TARGET_P95_MS = 500
FIRST_DAY = LAST_DAY - timedelta(days=HISTORY_DAYS - 1)
PERIOD = f"from={LAST_DAY - timedelta(days=DAYS - 1)}&to={LAST_DAY}"
HEADLINE = "staff, 30 days"
# name: (query, calls). The whole year takes seconds a call: 10 calls say enough about it.
QUERIES = {
    HEADLINE: (PERIOD, CALLS),
    "staff, 30 days, agent_type=sales": (f"{PERIOD}&agent_type=sales", CALLS),
    "owner of ~1 % (non-staff), 30 days": (PERIOD, CALLS),
    f"staff, 365 days (all {SESSIONS:,})": (f"from={FIRST_DAY}&to={LAST_DAY}", 10),
}
FAILURE_CODES = ["invalid_api_key", "upstream_timeout", "quota_exceeded", "agent_not_found", "client_error"]


def run() -> dict[str, Any]:
    load_before = os.getloadavg()
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench-analytics-") as scratch:
        results["sqlite"] = measure_in_child(f"sqlite:///{scratch}/analytics.sqlite3", scratch)
        results["postgresql"] = on_fresh_postgres(POSTGRES_URL, lambda url: measure_in_child(url, scratch))
    rows = []
    for database, figures in results.items():
        for name, timing in figures.get("calls", {}).items():
            label = f"{database}: {name} ({timing['calls']} calls)"
            rows.append([label, timing["p50_ms"], timing["p95_ms"], timing["max_ms"]])
    print_table(["GET /api/analytics", "p50 ms", "p95 ms", "max ms"], rows)
    headline = {db: f.get("calls", {}).get(HEADLINE) for db, f in results.items()}
    return {
        "sessions": SESSIONS,
        "history_days": HISTORY_DAYS,
        "period_days": DAYS,
        "calls": CALLS,
        "measured": "in-process (django.test.Client, token auth, DEBUG off), one child process per database",
        "targets_ms": {"p50": TARGET_P50_MS, "p95": TARGET_P95_MS},
        "meets_targets": {
            db: bool(t and t["p50_ms"] < TARGET_P50_MS and t["p95_ms"] < TARGET_P95_MS) for db, t in headline.items()
        },
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        **results,
    }


def measure_in_child(database_url: str, scratch: str) -> dict[str, Any]:
    env = server_env(database_url, scratch)
    env["ALLOWED_HOSTS"] = "testserver"
    manage(env, "migrate", "--no-input")
    started = time.perf_counter()
    result = subprocess.run(  # noqa: S603
        [sys.executable, "-m", "bench.analytics"], cwd=REPO_ROOT, env=env, capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise RuntimeError(f"bench.analytics child failed:\n{result.stderr[-3000:]}")
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    figures["child_seconds"] = round(time.perf_counter() - started, 1)
    return figures


# --- in the child: Django on the bench database ------------------------------------------------------


def child() -> dict[str, Any]:
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.db import connection
    from rest_framework.authtoken.models import Token

    users = get_user_model().objects.bulk_create(
        [get_user_model()(username=f"owner{n}") for n in range(OWNERS)]
        + [get_user_model()(username="operator", is_staff=True)]
    )
    owner, staff = users[0], users[-1]
    started = time.perf_counter()
    insert_sessions([user.pk for user in users[:OWNERS]])
    fill_seconds = time.perf_counter() - started
    with connection.cursor() as cursor:
        # Fresh statistics, and on PostgreSQL a visibility map, so that index-only scans are chosen.
        cursor.execute("VACUUM ANALYZE" if connection.vendor == "postgresql" else "ANALYZE")
    tokens = {"staff": Token.objects.create(user=staff).key, "owner": Token.objects.create(user=owner).key}
    calls = {
        name: time_calls(query, tokens["owner" if name.startswith("owner") else "staff"], count)
        for name, (query, count) in QUERIES.items()
    }
    return {
        "vendor": connection.vendor,
        "fill_seconds": round(fill_seconds, 1),
        "calls": calls,
        "plans": query_plans(PERIOD, tokens["staff"]),
    }


def time_calls(query: str, token: str, count: int) -> dict[str, Any]:
    from django.test import Client

    client = Client(HTTP_AUTHORIZATION=f"Token {token}")
    body: dict[str, Any] = {}
    for _ in range(WARMUP_CALLS):
        response = client.get(f"/api/analytics?{query}")
        assert response.status_code == 200, response.content[:500]
        body = response.json()
    latencies = []
    for _ in range(count):
        started = time.perf_counter()
        response = client.get(f"/api/analytics?{query}")
        latencies.append(time.perf_counter() - started)
        assert response.status_code == 200, response.content[:500]
    latencies.sort()
    return {
        "p50_ms": round(percentile(latencies, 0.50) * 1000, 1),
        "p95_ms": round(percentile(latencies, 0.95) * 1000, 1),
        "max_ms": round(latencies[-1] * 1000, 1),
        "calls": count,
        "sessions_counted": body["totals"]["sessions"],
    }


def query_plans(query: str, token: str) -> list[dict[str, str]]:
    """Each query of one call, with the database's plan for it."""
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as captured:
        Client(HTTP_AUTHORIZATION=f"Token {token}").get(f"/api/analytics?{query}")
    plans = []
    explain = "EXPLAIN (COSTS OFF) " if connection.vendor == "postgresql" else "EXPLAIN QUERY PLAN "
    with connection.cursor() as cursor:
        for executed in captured.captured_queries:
            sql = executed["sql"]
            if "voice_sessions_voicesession" not in sql:
                continue  # the token and its user
            cursor.execute(explain + sql)
            plan = "\n".join(str(row[-1]) for row in cursor.fetchall())
            plans.append({"sql": sql[:300], "plan": plan})
    return plans


def insert_sessions(owner_ids: list[int]) -> None:
    """A million sessions as a busy month has them, written in bulk: no model instance, no save()."""
    from django.db import connection, transaction

    from sessions.models import VoiceSession

    columns = [field.column for field in VoiceSession._meta.concrete_fields]
    rows = session_rows(owner_ids, columns)
    table = VoiceSession._meta.db_table
    with transaction.atomic(), connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            names = ", ".join(columns)
            with cursor.cursor.copy(f"COPY {table} ({names}) FROM STDIN") as copy:  # noqa: S608 (our own names)
                for row in rows:
                    copy.write_row(row)
        else:
            placeholders = ", ".join(["%s"] * len(columns))
            statement = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({placeholders})"  # noqa: S608
            batch: list[tuple] = []
            for row in rows:
                batch.append(tuple(sqlite_value(value) for value in row))
                if len(batch) == 20_000:
                    cursor.executemany(statement, batch)
                    batch = []
            if batch:
                cursor.executemany(statement, batch)


def sqlite_value(value: Any) -> Any:
    """What Django stores in SQLite: UUIDs as 32 hex digits, datetimes as naive UTC text."""
    if isinstance(value, uuid.UUID):
        return value.hex
    if isinstance(value, datetime):
        return value.astimezone(UTC).replace(tzinfo=None).isoformat(" ")
    return value


def session_rows(owner_ids: list[int], columns: list[str]):
    """Rows in ``columns`` order: 80 % ended (60 % success, 25 % failure, 15 % unknown), 10 % failed, 10 % open."""
    rng = random.Random(11)  # the same million every run
    start = datetime.combine(FIRST_DAY, datetime.min.time(), tzinfo=UTC)
    span = HISTORY_DAYS * 86400
    constant = {
        "agent_id": "agent_bench",
        "direction": "inbound",
        "locale": "en-US",
        "connection_type": "websocket",
        "conversation_id": None,
        "phone_number": "",
        "dynamic_variables": "{}",
        "idempotency_key": None,
        "started_at": None,
        "ended_at": None,
        "end_reason": "",
        "failure_message": "",
        "upstream_status": None,
        "transcript": "[]",
        "analysis": "{}",
        "call_metadata": "{}",
        "transcript_summary": "",
        "summary_title": "",
        "termination_reason": "",
        "main_language": "",
        "post_call_received_at": None,
        "audio": "",
    }
    for n in range(SESSIONS):
        created = start + timedelta(seconds=rng.random() * span)
        roll = rng.random()
        status = "ended" if roll < 0.8 else "failed" if roll < 0.9 else "active" if roll < 0.95 else "created"
        verdict, duration, cost, code = "", None, None, ""
        if status == "ended":
            verdict = rng.choices(["success", "failure", "unknown"], [60, 25, 15])[0]
            duration = min(3600, int(rng.lognormvariate(4.5, 0.9)))
            cost = duration * 10 + rng.randrange(50)
        elif status == "failed":
            code = rng.choice(FAILURE_CODES)
        values = {
            **constant,
            "id": uuid.UUID(int=rng.getrandbits(128), version=4),
            "customer_id": f"cust-{n % 5000}",
            "agent_type": "sales" if rng.random() < 0.4 else "support",
            "simulation": rng.random() < 0.1,
            "status": status,
            "created_by_id": rng.choice(owner_ids),
            "created_at": created,
            "updated_at": created,
            "failure_code": code,
            "call_successful": verdict,
            "call_duration_secs": duration,
            "cost": cost,
        }
        yield tuple(values[column] for column in columns)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    print(json.dumps(child()))
