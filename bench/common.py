"""Pieces shared by the figures: server environment, manage.py, statistics, tables, a bounded load generator."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql

from devtools.servers import REPO_ROOT

# The figures' PostgreSQL database: created empty for a figure and dropped after it.
POSTGRES_URL = os.environ.get("BENCH_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/voiceagent_bench")


def percentile(sorted_values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile of an already sorted sequence (0.0 when empty)."""
    if not sorted_values:
        return 0.0
    rank = max(1, round(fraction * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def print_table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    text_rows = [[str(cell) for cell in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in text_rows)) if text_rows else len(h) for i, h in enumerate(headers)]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))
    print(line)
    print("  ".join("-" * w for w in widths))
    for row in text_rows:
        # First column (the label) left-aligned, numbers right-aligned.
        cells = [cell.rjust(w) if i else cell.ljust(w) for i, (cell, w) in enumerate(zip(row, widths, strict=True))]
        print("  ".join(cells))


@dataclass
class LoadResult:
    """What one operation did under load: counts, throughput and latency in milliseconds."""

    operation: str
    requests: int
    errors: int
    seconds: float
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    error_samples: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def run_load(
    operation: str,
    call: Callable[[Any, int], bool | str],
    *,
    clients: int,
    total: int,
    max_seconds: float,
    make_client: Callable[[], Any],
) -> LoadResult:
    """Run ``call(client, i)`` for i in 0..total-1 from ``clients`` threads, each with its own client.

    Bounded twice: by ``total`` calls and by ``max_seconds`` of wall time. ``call``
    returns True for success, or an error description (an exception counts too).
    """
    next_index = iter(range(total))
    index_lock = threading.Lock()
    clock: dict[str, float] = {}
    latencies: list[float] = []
    errors: list[str] = []
    results_lock = threading.Lock()

    def release() -> None:
        # Runs once, when every client is ready: the measured time starts here.
        clock["started"] = time.perf_counter()
        clock["deadline"] = time.monotonic() + max_seconds

    start_together = threading.Barrier(clients, action=release)

    def worker() -> None:
        client = make_client()
        own_latencies: list[float] = []
        own_errors: list[str] = []
        start_together.wait(timeout=60)
        while time.monotonic() < clock["deadline"]:
            with index_lock:
                i = next(next_index, None)
            if i is None:
                break
            started = time.perf_counter()
            try:
                outcome = call(client, i)
            except Exception as exc:  # a failed request is a figure, not a crash
                outcome = f"{type(exc).__name__}: {exc}"
            own_latencies.append(time.perf_counter() - started)
            if outcome is not True:
                own_errors.append(str(outcome))
        with results_lock:
            latencies.extend(own_latencies)
            errors.extend(own_errors)

    with ThreadPoolExecutor(max_workers=clients) as pool:
        for future in [pool.submit(worker) for _ in range(clients)]:
            future.result()
    elapsed = time.perf_counter() - clock["started"]
    latencies.sort()
    return LoadResult(
        operation=operation,
        requests=len(latencies),
        errors=len(errors),
        seconds=round(elapsed, 3),
        requests_per_second=round(len(latencies) / elapsed, 1) if elapsed else 0.0,
        p50_ms=round(percentile(latencies, 0.50) * 1000, 2),
        p99_ms=round(percentile(latencies, 0.99) * 1000, 2),
        error_samples=sorted(set(errors))[:5],
    )


# manage.py shell -c: a user with an API token; prints the key.
MAKE_TOKEN = """
from django.contrib.auth import get_user_model
from rest_framework.authtoken.models import Token
user = get_user_model().objects.create_user("bench", password=None)
print(Token.objects.create(user=user).key)
"""


def server_env(database_url: str, log_dir: str) -> dict[str, str]:
    """The production profile (DEBUG off, no .env, no ElevenLabs key) on ``database_url``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ELEVENLABS_")}
    env.update(
        DJANGO_SETTINGS_MODULE="voiceagent.settings",
        VOICEAGENT_READ_DOTENV="0",  # a developer's .env must not change the figures
        DEBUG="false",
        SECRET_KEY=secrets.token_urlsafe(50),
        SECURE_SSL_REDIRECT="false",
        ALLOWED_HOSTS="127.0.0.1",
        LOG_LEVEL="warning",
        LOG_DIR=log_dir,
        DATABASE_URL=database_url,
        REDIS_URL="",
        # One user creates thousands of sessions a minute here: the benchmarks measure the flow, not the throttle.
        SESSION_CREATE_THROTTLE="",
    )
    env.pop("PUBLIC_BASE_URL", None)  # devtools.servers.asgi_server gives each server its own address
    return env


def manage(env: dict[str, str], *args: str) -> str:
    result = subprocess.run(  # noqa: S603
        [sys.executable, "manage.py", *args], cwd=REPO_ROOT, env=env, capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{result.stderr[-2000:]}")
    return result.stdout


def child_pids(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = next(
                int(line.split()[1]) for line in (entry / "status").read_text().splitlines() if line.startswith("PPid:")
            )
        except (OSError, StopIteration):
            continue
        if ppid == pid:
            found.append(int(entry.name))
    return found


def server_pid(base_url: str) -> int:
    """The server's supervisor (granian, a child of this one as devtools.servers starts it) on ``base_url``'s port."""
    port = str(urlsplit(base_url).port)
    for pid in child_pids(os.getpid()):
        try:
            argv = (Path(f"/proc/{pid}/cmdline").read_bytes()).split(b"\0")
        except OSError:
            continue
        if b"granian" in argv and port.encode() in argv:
            return pid
    raise RuntimeError(f"no server child of this process listens on port {port}")


def cpu_seconds(pids: Iterable[int]) -> float:
    """User + system CPU time the processes have used so far (0 for any that has gone)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            # Fields after the command name, which is in parentheses and may hold spaces: utime and stime are 14 and 15.
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / ticks


def _postgres(url: str, statement: str) -> None:
    """Run ``statement`` (``{}`` stands for the database that ``url`` names) in the server's postgres database."""
    parts = urlsplit(url)
    admin_url = urlunsplit(parts._replace(path="/postgres", query=""))
    with psycopg.connect(admin_url, autocommit=True, connect_timeout=5) as conn:
        conn.execute(sql.SQL(statement).format(sql.Identifier(parts.path.lstrip("/"))))


def on_fresh_postgres(url: str, measure: Callable[[str], dict[str, Any]]) -> dict[str, Any]:
    """``measure(url)`` on a new, empty database named by ``url``, dropped afterwards.

    Without a PostgreSQL server to reach, says so and returns ``{"skipped": why}``: the SQLite figures stand alone.
    """
    try:
        _postgres(url, "DROP DATABASE IF EXISTS {} WITH (FORCE)")
        _postgres(url, "CREATE DATABASE {}")
    except psycopg.Error as exc:
        print(f"\nPostgreSQL skipped: {type(exc).__name__}: {exc}")
        return {"skipped": str(exc)}
    try:
        return measure(url)
    finally:
        _postgres(url, "DROP DATABASE IF EXISTS {} WITH (FORCE)")


WRK_COMMON_SCRIPT = REPO_ROOT / "bench" / "wrk_common.lua"


def run_wrk(command: list[str], *, env: dict[str, str], timeout: float) -> dict[str, Any]:
    """Run wrk with a bench/ script (it loads bench/wrk_common.lua, whose done() prints "BENCH_RESULT {json}");
    return throughput, p50/p99/max in milliseconds and errors (non-2xx answers plus socket errors)."""
    env = {**env, "BENCH_WRK_COMMON": str(WRK_COMMON_SCRIPT)}
    result = subprocess.run(command, env=env, capture_output=True, text=True, check=False, timeout=timeout)  # noqa: S603
    lines = [line for line in result.stdout.splitlines() if line.startswith("BENCH_RESULT ")]
    if result.returncode != 0 or not lines:
        raise RuntimeError(f"wrk failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    raw = json.loads(lines[-1].removeprefix("BENCH_RESULT "))
    socket_errors = {kind: raw[kind] for kind in ("connect", "read", "write", "timeout")}
    return {
        "requests": raw["requests"],
        "requests_per_second": round(raw["requests"] / (raw["duration_us"] / 1e6), 1),
        "p50_ms": round(raw["p50_us"] / 1000, 1),
        "p99_ms": round(raw["p99_us"] / 1000, 1),
        "max_ms": round(raw["max_us"] / 1000, 1),
        "errors": raw["non_2xx_3xx"] + sum(socket_errors.values()),
        "non_2xx": raw["non_2xx_3xx"],
        "socket_errors": socket_errors,
    }
