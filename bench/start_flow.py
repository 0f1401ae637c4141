"""POST /api/voice/sessions against an instant fake ElevenLabs: the start flow's own time.

The production profile (granian workers, DEBUG=false, SQLite in a temp dir) runs with
an API key, both agent ids and ELEVENLABS_BASE_URL pointing at a tiny threaded HTTP
server on 127.0.0.1 that answers ``GET /v1/convai/conversation/token`` and
``/get-signed-url`` at once. The fake server times its own handling of every call
("upstream"); own time = the whole request as the client sees it − upstream, so it
holds our side of the call to ElevenLabs (connection pool, request, JSON) as well as
auth, validation, the session's rows and the answer, and also the HTTP server, the
ASGI hand-off and the benchmark client's own overhead. The server's `Server-Timing`
header gives the flow's own time as the service measures it: Django's whole handling
of the request (`app`) minus the time spent in exchanges with ElevenLabs
(`elevenlabs`). Target: the flow's own time (server side), p50 under 10 ms; both are
printed.

Token calls carry the customer id as ``participant_name``, which pairs each upstream
timing with its request even under concurrency; signed-URL calls carry nothing of the
kind, so that phase runs one client and pairs by order. Client, server and fake share
the machine's cores.
"""

from __future__ import annotations

import json
import secrets
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import requests

from bench.common import MAKE_TOKEN, manage, percentile, print_table, run_load, server_env
from devtools.servers import asgi_server

NAME = "start_flow"
DESCRIPTION = "POST /api/voice/sessions against an instant fake ElevenLabs: own time, p50 target under 10 ms"

WORKERS = 4
CONCURRENT_CLIENTS = 8
WARM_UP_REQUESTS = 64
# (label, textOnly, clients, requests): textOnly sessions get a signed WebSocket URL, voice a WebRTC token.
PHASES = [
    ("token, 1 client", False, 1, 300),
    (f"token, {CONCURRENT_CLIENTS} clients", False, CONCURRENT_CLIENTS, 800),
    ("signed URL, 1 client", True, 1, 300),
]
MAX_SECONDS_PER_PHASE = 60.0
FLOOR_REQUESTS = 300
TARGET_P50_MS = 10.0

TOKEN_PATH = "/v1/convai/conversation/token"
SIGNED_URL_PATH = "/v1/convai/conversation/get-signed-url"
AGENTS = {"support": "agent_bench_support", "sales": "agent_bench_sales"}


class FakeElevenLabs:
    """The two credential endpoints, answered at once; each call's handling time is recorded."""

    def __init__(self, api_key: str) -> None:
        self.api_key = api_key
        self._calls: list[tuple[str | None, float]] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.base_url = f"http://127.0.0.1:{self._server.server_address[1]}"

    def answer(self, path: str, query: dict[str, list[str]], api_key: str | None) -> tuple[int, dict[str, Any]]:
        if api_key != self.api_key:
            return 401, {"detail": {"status": "invalid_api_key", "message": "Invalid API key"}}
        agent_id = query.get("agent_id", [""])[0]
        if agent_id not in AGENTS.values():
            return 404, {"detail": {"status": "agent_not_found", "message": f"Agent {agent_id} not found"}}
        if path == TOKEN_PATH:
            return 200, {"token": secrets.token_urlsafe(48), "conversation_id": f"conv_{secrets.token_hex(12)}"}
        if path == SIGNED_URL_PATH:
            signature = secrets.token_urlsafe(32)
            return 200, {
                "signed_url": f"wss://127.0.0.1/v1/convai/conversation?agent_id={agent_id}"
                f"&conversation_signature={signature}"
            }
        return 404, {"detail": {"status": "not_found", "message": "Not Found"}}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as ElevenLabs' API does
            # Headers and body go out in two writes; without this, Nagle plus delayed ACK adds ~40 ms.
            disable_nagle_algorithm = True

            def do_GET(self) -> None:  # noqa: N802
                started = time.perf_counter()
                url = urlsplit(self.path)
                query = parse_qs(url.query)
                status, body = fake.answer(url.path, query, self.headers.get("xi-api-key"))
                payload = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
                self.wfile.flush()
                fake.record(query.get("participant_name", [None])[0], time.perf_counter() - started)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass  # quiet: the figures are the output

        return Handler

    def record(self, participant: str | None, seconds: float) -> None:
        with self._lock:
            self._calls.append((participant, seconds))

    def drain(self) -> list[tuple[str | None, float]]:
        """The calls recorded since the last drain, in the order they were answered."""
        with self._lock:
            calls, self._calls = self._calls, []
        return calls

    @contextmanager
    def serving(self) -> Iterator[FakeElevenLabs]:
        thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self._server.shutdown()
            self._server.server_close()
            thread.join(timeout=5)


def start_session(
    base_url: str,
    token: str,
    *,
    text_only: bool,
    totals: dict[str, float],
    tag: str,
    server_own: dict[str, float] | None = None,
):
    """The ``call`` for run_load: start one session and note how long the whole request took."""
    url = f"{base_url}/api/voice/sessions"
    credential = "signed_url" if text_only else "conversation_token"

    def call(client: requests.Session, i: int) -> bool | str:
        customer_id = f"{tag}-{i}"
        body = {"agentType": "support" if i % 2 else "sales", "customerId": customer_id, "textOnly": text_only}
        started = time.perf_counter()
        response = client.post(url, json=body, headers={"Authorization": f"Token {token}"}, timeout=30)
        totals[customer_id] = time.perf_counter() - started
        if server_own is not None:
            server_own[customer_id] = own_seconds_from_server_timing(response.headers.get("Server-Timing", ""))
        if response.status_code != 201:
            return f"HTTP {response.status_code}: {response.text[:160]}"
        answer = response.json()
        conversation = answer.get("elevenlabs_conversation", {})
        if not conversation.get(credential) or conversation.get("simulation") is not False:
            return f"unexpected credential: {json.dumps(conversation)[:160]}"
        if answer["backend_session"]["status"] != "connecting":
            return f"session is {answer['backend_session']['status']}, not connecting"
        return True

    return call


def own_seconds_from_server_timing(header: str) -> float:
    """`app;dur=X, elevenlabs;dur=Y` (milliseconds) → (X − Y) seconds."""
    durations = {}
    for part in header.split(","):
        name, _, rest = part.strip().partition(";dur=")
        if rest:
            durations[name] = float(rest)
    return (durations.get("app", float("nan")) - durations.get("elevenlabs", 0.0)) / 1000


def pair_upstream(
    totals: dict[str, float], calls: list[tuple[str | None, float]], *, tag: str, by_name: bool
) -> list[tuple[float, float]]:
    """(total, upstream) seconds per request: by participant name, or by order for one sequential client."""
    if by_name:
        upstream = {name: seconds for name, seconds in calls if name}
        return [(total, upstream[name]) for name, total in totals.items() if name in upstream]
    ordered = [totals[name] for name in sorted(totals, key=lambda name: int(name.removeprefix(f"{tag}-")))]
    if len(ordered) != len(calls):
        return []  # a request failed before calling upstream: order no longer pairs them (figures show 0 paired)
    return [(total, seconds) for total, (_, seconds) in zip(ordered, calls, strict=True)]


def milliseconds(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {f"p{p}_ms": round(percentile(ordered, p / 100) * 1000, 2) for p in (50, 90, 99)}


def run_phase(base_url: str, token: str, fake: FakeElevenLabs, phase: tuple[str, bool, int, int]) -> dict[str, Any]:
    label, text_only, clients, total = phase
    tag = f"bench{PHASES.index(phase)}"
    totals: dict[str, float] = {}
    server_own: dict[str, float] = {}
    fake.drain()
    result = run_load(
        label,
        start_session(base_url, token, text_only=text_only, totals=totals, tag=tag, server_own=server_own),
        clients=clients,
        total=total,
        max_seconds=MAX_SECONDS_PER_PHASE,
        make_client=requests.Session,
    )
    pairs = pair_upstream(totals, fake.drain(), tag=tag, by_name=not text_only)
    own = milliseconds([whole - upstream for whole, upstream in pairs])
    flow = milliseconds(list(server_own.values()))
    return {
        "phase": label,
        "credential": "signed_url" if text_only else "conversation_token",
        "clients": clients,
        "requests": result.requests,
        "errors": result.errors,
        "error_samples": result.error_samples,
        "requests_per_second": result.requests_per_second,
        "paired": len(pairs),
        "total": milliseconds([whole for whole, _ in pairs]),
        "upstream": milliseconds([upstream for _, upstream in pairs]),
        "own": own,
        "server_own": flow,
        "meets_target": result.errors == 0 and len(server_own) == result.requests and flow["p50_ms"] < TARGET_P50_MS,
    }


def stack_floor(base_url: str) -> dict[str, float]:
    """GET /healthz (one DB ping, no auth) one at a time: what any request costs through this server and client."""
    timings: list[float] = []

    def call(client: requests.Session, i: int) -> bool | str:
        started = time.perf_counter()
        response = client.get(f"{base_url}/healthz", timeout=30)
        timings.append(time.perf_counter() - started)
        return True if response.status_code == 200 else f"HTTP {response.status_code}"

    run_load(
        "floor", call, clients=1, total=FLOOR_REQUESTS, max_seconds=MAX_SECONDS_PER_PHASE, make_client=requests.Session
    )
    return milliseconds(timings)


def run() -> dict[str, Any]:
    api_key = secrets.token_hex(24)
    fake = FakeElevenLabs(api_key)
    with (
        fake.serving(),
        tempfile.TemporaryDirectory(prefix="voiceagent-bench-start-") as tmp,
        tempfile.TemporaryDirectory(prefix="voiceagent-bench-logs-") as log_dir,
    ):
        env = server_env(f"sqlite:///{Path(tmp) / 'bench.sqlite3'}", log_dir)
        env.update(
            ELEVENLABS_API_KEY=api_key,
            ELEVENLABS_BASE_URL=fake.base_url,
            ELEVENLABS_SUPPORT_AGENT_ID=AGENTS["support"],
            ELEVENLABS_SALES_AGENT_ID=AGENTS["sales"],
            MEDIA_ROOT=str(Path(tmp) / "media"),
        )
        manage(env, "migrate", "--noinput", "-v", "0")
        token = manage(env, "shell", "-c", MAKE_TOKEN).strip().splitlines()[-1]
        with asgi_server(env=env, workers=WORKERS) as base_url:
            # Wake every worker (imports, DB connection, its pooled connection to the fake) before measuring.
            warm_up = start_session(base_url, token, text_only=False, totals={}, tag="warm")
            run_load(
                "warm-up",
                warm_up,
                clients=CONCURRENT_CLIENTS,
                total=WARM_UP_REQUESTS,
                max_seconds=MAX_SECONDS_PER_PHASE,
                make_client=requests.Session,
            )
            phases = [run_phase(base_url, token, fake, phase) for phase in PHASES]
            floor = stack_floor(base_url)
    report(phases, floor)
    return {"workers": WORKERS, "target_own_p50_ms": TARGET_P50_MS, "phases": phases, "healthz_floor": floor}


def report(phases: list[dict[str, Any]], floor: dict[str, float]) -> None:
    groups = ("total", "upstream", "own", "server_own")
    print(f"\nPOST /api/voice/sessions, {WORKERS} granian workers, fake ElevenLabs on 127.0.0.1 (ms)")
    print_table(
        ["phase", "requests", "errors", "req/s", *(f"{g} {q}" for g in groups for q in ("p50", "p90", "p99"))],
        [
            [
                p["phase"],
                p["requests"],
                p["errors"],
                p["requests_per_second"],
                *(v for g in groups for v in p[g].values()),
            ]
            for p in phases
        ],
    )
    for p in phases:
        for sample in p["error_samples"]:
            print(f"  {p['phase']} error: {sample[:200]}")
        verdict = "meets" if p["meets_target"] else "MISSES"
        print(
            f"{p['phase']}: the flow's own time (server side) p50 {p['server_own']['p50_ms']} ms "
            f"({verdict} the target of under {TARGET_P50_MS} ms); seen by the client, less upstream: "
            f"p50 {p['own']['p50_ms']} ms"
        )
    print(
        f"for comparison, GET /healthz through the same server, 1 client: p50 {floor['p50_ms']} ms, "
        f"p90 {floor['p90_ms']} ms, p99 {floor['p99_ms']} ms"
    )
