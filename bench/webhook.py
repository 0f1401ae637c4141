"""POST /elevenlabs/webhook: transcript ingest rate, and the memory a large audio delivery costs.

Two figures against the production profile (granian, DEBUG=false, SQLite in a
temp dir, migrated), each delivery signed with ``elevenlabs.webhooks.sign`` under
the ELEVENLABS_WEBHOOK_SECRET the server reads from its environment:

- ingest rate: ~200 KB ``post_call_transcription`` deliveries (a long call's
  transcript), each for a different conversation that a session has already
  claimed, from several clients against several workers;
- memory: one ~50 MB ``post_call_audio`` delivery sent chunked to a server with a
  single worker process, whose peak resident memory (VmHWM, reset just before
  the delivery) is read from /proc. Target: growth under 3x the body.

All traffic goes to 127.0.0.1. Client and server share the machine's cores.
"""

from __future__ import annotations

import base64
import hashlib
import json
import random
import secrets
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import requests

from bench.common import LoadResult, child_pids, manage, print_table, run_load, server_env, server_pid
from devtools.servers import asgi_server
from elevenlabs.webhooks import SIGNATURE_HEADER, sign

NAME = "webhook"
DESCRIPTION = "webhook ingest: 200 KB transcripts/s over granian workers; worker memory for a 50 MB audio delivery"

WORKERS = 4
CLIENTS = 8
DELIVERIES = 400
WARM_UP_DELIVERIES = WORKERS * 4
MAX_SECONDS = 120.0
TRANSCRIPT_BODY_BYTES = 200 * 1024

# 3 bytes of audio become 4 of base64: this much audio makes a ~50 MB body.
AUDIO_BYTES = 50 * 1024 * 1024 // 4 * 3
WARM_UP_AUDIO_BYTES = 1024 * 1024 // 4 * 3
SEND_CHUNK_BYTES = 64 * 1024
MEMORY_TARGET_RATIO = 3.0

RATE_PREFIX = "conv_bench_rate_"
WARM_PREFIX = "conv_bench_warm_"
AUDIO_CONVERSATION = "conv_bench_audio"
WARM_AUDIO_CONVERSATION = "conv_bench_audio_warm"

# Claims conversations the way the start flow and the browser do: created -> connecting -> active.
_CLAIM = """
import json, os
from sessions.services import lifecycle
for conversation_id in json.loads(os.environ["BENCH_CONVERSATION_IDS"]):
    session = lifecycle.session_create(customer_id="bench-" + conversation_id[-12:])
    lifecycle.session_mark_connecting(
        session=session, agent_id="agent_bench_support", connection_type="webrtc", simulation=False
    )
    lifecycle.session_activate(session=session, conversation_id=conversation_id)
"""

_CHECK = """
import hashlib, json, os
from django.db.models import Count
from elevenlabs.models import WebhookDelivery
from sessions.models import VoiceSession
prefix, audio_conversation = os.environ["BENCH_RATE_PREFIX"], os.environ["BENCH_AUDIO_CONVERSATION"]
stored = VoiceSession.objects.filter(
    conversation_id__startswith=prefix, post_call_received_at__isnull=False, status="ended"
).count()
outcomes = dict(
    WebhookDelivery.objects.filter(conversation_id__startswith=prefix)
    .values_list("outcome").annotate(n=Count("id")).values_list("outcome", "n")
)
audio = {}
session = VoiceSession.objects.get(conversation_id=audio_conversation)
if session.audio:
    digest = hashlib.sha256()
    with session.audio.open("rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    audio = {"name": session.audio.name, "bytes": session.audio.size, "sha256": digest.hexdigest()}
print(json.dumps({"transcripts_stored": stored, "ledger": outcomes, "audio": audio}))
"""


# --- payloads ----------------------------------------------------------------------------

_WORDS = (
    "account billing invoice refund order delivery address password reset subscription plan upgrade "
    "downgrade charge card payment receipt tracking number warehouse courier schedule appointment "
    "confirm cancel transfer manager policy warranty replacement device settings network router "
    "signal restart update version error message screen login email phone verify identity thanks "
    "sure certainly absolutely let me check that for you one moment please could you repeat"
).split()


def _sentence(rng: random.Random) -> str:
    words = [rng.choice(_WORDS) for _ in range(rng.randint(6, 28))]
    return " ".join(words).capitalize() + rng.choice([".", ".", "?", "!"])


def _turn(rng: random.Random, index: int, clock: float) -> dict[str, Any]:
    """One transcript item, shaped like GET /v1/convai/conversations/{id} returns it."""
    role = "agent" if index % 2 == 0 else "user"
    turn: dict[str, Any] = {
        "role": role,
        "message": " ".join(_sentence(rng) for _ in range(rng.randint(1, 3))),
        "tool_calls": [],
        "tool_results": [],
        "feedback": None,
        "llm_override": None,
        "time_in_call_secs": round(clock),
        "conversation_turn_metrics": None,
        "rag_retrieval_info": None,
        "interrupted": role == "agent" and rng.random() < 0.1,
        "original_message": None,
        "source_medium": "audio",
    }
    if role == "agent":
        turn["conversation_turn_metrics"] = {
            "metrics": {
                "convai_llm_service_ttfb": {"elapsed_time": round(rng.uniform(0.2, 0.9), 3)},
                "convai_llm_service_ttf_sentence": {"elapsed_time": round(rng.uniform(0.4, 1.4), 3)},
                "convai_tts_service_ttfb": {"elapsed_time": round(rng.uniform(0.1, 0.4), 3)},
            }
        }
        if rng.random() < 0.08:
            call_id = f"toolu_{rng.getrandbits(64):016x}"
            turn["tool_calls"] = [
                {
                    "request_id": call_id,
                    "tool_name": "lookup_order",
                    "params_as_json": json.dumps({"order_id": f"A{rng.randint(10000, 99999)}"}),
                    "tool_has_been_called": True,
                    "type": "webhook",
                }
            ]
            turn["tool_results"] = [
                {
                    "request_id": call_id,
                    "tool_name": "lookup_order",
                    "result_value": json.dumps({"status": "shipped", "eta_days": rng.randint(1, 5)}),
                    "is_error": False,
                    "tool_has_been_called": True,
                    "type": "webhook",
                }
            ]
    return turn


def transcript_body_template(target_bytes: int = TRANSCRIPT_BODY_BYTES) -> tuple[bytes, int]:
    """A ``post_call_transcription`` body of about ``target_bytes`` with ``@CONVERSATION@`` as its id.

    Returns the template and its number of turns; the same transcript serves every delivery.
    """
    rng = random.Random(20261201)
    turns: list[dict[str, Any]] = []
    clock = 0.0
    size = 2500  # the envelope, metadata and analysis around the transcript
    while size < target_bytes:
        turn = _turn(rng, len(turns), clock)
        turns.append(turn)
        size += len(json.dumps(turn)) + 2
        clock += rng.uniform(2.0, 9.0)
    data = {
        "agent_id": "agent_bench_support",
        "conversation_id": "@CONVERSATION@",
        "status": "done",
        "user_id": "bench-customer",
        "transcript": turns,
        "metadata": {
            "start_time_unix_secs": 1780000000,
            "call_duration_secs": round(clock),
            "cost": 4210,
            "termination_reason": "end_call tool was called.",
            "main_language": "en",
            "error": None,
            "phone_call": None,
        },
        "analysis": {
            "call_successful": "success",
            "transcript_summary": " ".join(_sentence(rng) for _ in range(6)),
            "call_summary_title": "Order status and delivery change",
            "evaluation_criteria_results": {
                "resolved": {"criteria_id": "resolved", "result": "success", "rationale": _sentence(rng)}
            },
            "data_collection_results": {
                "order_id": {"data_collection_id": "order_id", "value": "A48213", "rationale": _sentence(rng)}
            },
        },
        "conversation_initiation_client_data": {"dynamic_variables": {"customer_name": "Ada"}, "user_id": "bench"},
        "has_audio": True,
        "has_user_audio": True,
        "has_response_audio": True,
    }
    envelope = {"type": "post_call_transcription", "event_timestamp": 1780000600, "data": data}
    return json.dumps(envelope).encode(), len(turns)


def audio_body(conversation_id: str, audio_bytes: int, seed: int) -> tuple[bytes, str]:
    """A ``post_call_audio`` body with ``audio_bytes`` of pseudo-random "MP3"; returns it and the audio's sha256."""
    audio = random.Random(seed).randbytes(audio_bytes)
    envelope = {
        "type": "post_call_audio",
        "event_timestamp": 1780000660,
        "data": {"agent_id": "agent_bench_support", "conversation_id": conversation_id, "full_audio": "@AUDIO@"},
    }
    head, tail = json.dumps(envelope).encode().split(b"@AUDIO@")
    return head + base64.b64encode(audio) + tail, hashlib.sha256(audio).hexdigest()


def in_chunks(body: bytes, size: int = SEND_CHUNK_BYTES) -> Iterator[bytes]:
    # A generator body: requests sends it with Transfer-Encoding: chunked, as ElevenLabs sends audio.
    for start in range(0, len(body), size):
        yield body[start : start + size]


# --- the worker process's memory ------------------------------------------------------------


def _status(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM of ``pid`` in bytes."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0]) * 1024
    return values


def worker_pid(base_url: str) -> tuple[int, str]:
    """The pid of the process that serves ``base_url`` and how it was found.

    granian's supervisor starts its workers as child processes; with ``--workers 1`` there is one.
    """
    pid = server_pid(base_url)
    workers = child_pids(pid)
    if len(workers) == 1:
        return workers[0], "the granian supervisor's only child"
    raise RuntimeError(f"granian {pid} has {len(workers)} children; expected one worker")


def reset_peak(pid: int) -> bool:
    """Reset ``pid``'s VmHWM to its current RSS; False when the kernel does not let us."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


# --- the figures --------------------------------------------------------------------------


def post_signed(client: requests.Session, url: str, body: bytes, secret: str, *, chunked: bool = False):
    headers = {SIGNATURE_HEADER: sign(body, secret=secret), "Content-Type": "application/json"}
    return client.post(url, data=in_chunks(body) if chunked else body, headers=headers, timeout=(5, 300))


def processed(response: requests.Response) -> bool | str:
    if response.status_code == 200 and response.json() == {"status": "processed"}:
        return True
    return f"HTTP {response.status_code}: {response.text[:160]}"


def ingest_rate(env: dict[str, str], secret: str, template: bytes) -> dict[str, Any]:
    def bodies(prefix: str, count: int) -> list[bytes]:
        return [template.replace(b"@CONVERSATION@", f"{prefix}{i:05d}".encode()) for i in range(count)]

    # Built and signed before the clock starts: only the server's work is measured.
    warm, measured = bodies(WARM_PREFIX, WARM_UP_DELIVERIES), bodies(RATE_PREFIX, DELIVERIES)
    signed = [(body, sign(body, secret=secret)) for body in measured]
    with asgi_server(env=env, workers=WORKERS) as base_url:
        url = f"{base_url}/elevenlabs/webhook"

        def deliver_warm_up(client: requests.Session, i: int) -> bool | str:
            return processed(post_signed(client, url, warm[i], secret))

        def deliver(client: requests.Session, i: int) -> bool | str:
            body, header = signed[i]
            headers = {SIGNATURE_HEADER: header, "Content-Type": "application/json"}
            return processed(client.post(url, data=body, headers=headers, timeout=(5, 60)))

        run_load(
            "warm-up", deliver_warm_up, clients=CLIENTS, total=len(warm), max_seconds=60, make_client=requests.Session
        )
        result: LoadResult = run_load(
            "post_call_transcription",
            deliver,
            clients=CLIENTS,
            total=len(measured),
            max_seconds=MAX_SECONDS,
            make_client=requests.Session,
        )
    body_bytes = len(measured[0])
    return {
        "workers": WORKERS,
        "clients": CLIENTS,
        "body_bytes": body_bytes,
        "mib_per_second": round(result.requests * body_bytes / 2**20 / result.seconds, 2),
        **result.as_dict(),
    }


def audio_memory(env: dict[str, str], secret: str) -> dict[str, Any]:
    warm_body, _ = audio_body(WARM_AUDIO_CONVERSATION, WARM_UP_AUDIO_BYTES, seed=1)
    body, audio_sha256 = audio_body(AUDIO_CONVERSATION, AUDIO_BYTES, seed=2)
    figures: dict[str, Any] = {"body_bytes": len(body), "audio_bytes": AUDIO_BYTES, "audio_sha256": audio_sha256}
    with asgi_server(env=env, workers=1) as base_url, requests.Session() as client:
        url = f"{base_url}/elevenlabs/webhook"
        pid, found = worker_pid(base_url)
        figures["worker"] = found
        # One small delivery first, so imports and first-use caches are not counted as the large one's cost.
        warm = post_signed(client, url, warm_body, secret, chunked=True)
        if processed(warm) is not True:
            raise RuntimeError(f"warm-up audio delivery failed: {processed(warm)}")
        before = _status(pid)
        figures["peak_reset"] = reset_peak(pid)
        baseline = _status(pid)["VmHWM"] if figures["peak_reset"] else before["VmHWM"]
        started = time.perf_counter()
        response = post_signed(client, url, body, secret, chunked=True)
        figures["seconds"] = round(time.perf_counter() - started, 2)
        after = _status(pid)
    figures["chunked"] = response.request.headers.get("Transfer-Encoding") == "chunked"
    figures["answer"] = processed(response)
    figures["rss_before_bytes"] = before["VmRSS"]
    figures["rss_after_bytes"] = after["VmRSS"]
    # With the reset, VmHWM - baseline is the peak growth during this delivery; without
    # it, only growth beyond the earlier high-water mark shows (a lower bound).
    figures["peak_growth_bytes"] = after["VmHWM"] - baseline
    figures["ratio_to_body"] = round(figures["peak_growth_bytes"] / len(body), 2)
    figures["target_ratio"] = MEMORY_TARGET_RATIO
    figures["meets_target"] = figures["answer"] is True and figures["ratio_to_body"] < MEMORY_TARGET_RATIO
    return figures


def run() -> dict[str, Any]:
    secret = secrets.token_hex(32)
    template, turns = transcript_body_template()
    ids = [f"{WARM_PREFIX}{i:05d}" for i in range(WARM_UP_DELIVERIES)]
    ids += [f"{RATE_PREFIX}{i:05d}" for i in range(DELIVERIES)]
    ids += [WARM_AUDIO_CONVERSATION, AUDIO_CONVERSATION]
    with (
        tempfile.TemporaryDirectory(prefix="voiceagent-bench-webhook-") as tmp,
        tempfile.TemporaryDirectory(prefix="voiceagent-bench-logs-") as log_dir,
    ):
        env = server_env(f"sqlite:///{Path(tmp) / 'bench.sqlite3'}", log_dir)
        env.update(ELEVENLABS_WEBHOOK_SECRET=secret, MEDIA_ROOT=str(Path(tmp) / "media"))
        manage(env, "migrate", "--noinput", "-v", "0")
        manage({**env, "BENCH_CONVERSATION_IDS": json.dumps(ids)}, "shell", "-c", _CLAIM)

        rate = ingest_rate(env, secret, template)
        rate["turns"] = turns
        memory = audio_memory(env, secret)
        check_env = {**env, "BENCH_RATE_PREFIX": RATE_PREFIX, "BENCH_AUDIO_CONVERSATION": AUDIO_CONVERSATION}
        stored = json.loads(manage(check_env, "shell", "-c", _CHECK).strip().splitlines()[-1])

    rate["transcripts_stored"] = stored["transcripts_stored"]
    rate["ledger"] = stored["ledger"]
    audio = stored["audio"]
    memory["stored_audio_bytes"] = audio.get("bytes", 0)
    memory["stored_audio_matches"] = audio.get("bytes") == AUDIO_BYTES and audio.get("sha256") == memory["audio_sha256"]
    report(rate, memory)
    return {"ingest": rate, "audio_memory": memory}


def report(rate: dict[str, Any], memory: dict[str, Any]) -> None:
    mib = 1024 * 1024
    print(
        f"\npost_call_transcription, {rate['body_bytes'] / 1024:.0f} KB bodies ({rate['turns']} turns), "
        f"{rate['workers']} granian workers, {rate['clients']} clients, each for its own claimed conversation"
    )
    print_table(
        ["deliveries", "errors", "seconds", "deliveries/s", "MiB/s", "p50 ms", "p99 ms"],
        [
            [
                rate["requests"],
                rate["errors"],
                rate["seconds"],
                rate["requests_per_second"],
                rate["mib_per_second"],
                rate["p50_ms"],
                rate["p99_ms"],
            ]
        ],
    )
    for sample in rate["error_samples"]:
        print(f"  error: {sample[:200]}")
    print(f"stored: {rate['transcripts_stored']} sessions ended with their transcript; ledger {rate['ledger']}")

    print(
        f"\npost_call_audio, one delivery {'sent chunked' if memory['chunked'] else 'NOT sent chunked'} "
        f"to 1 granian worker ({memory['worker']}), "
        f"peak {'reset via clear_refs' if memory['peak_reset'] else 'NOT reset (VmHWM delta only)'}"
    )
    print_table(
        ["payload MiB", "RSS before MiB", "peak growth MiB", "x payload", "RSS after MiB", "seconds", "answer"],
        [
            [
                f"{memory['body_bytes'] / mib:.1f}",
                f"{memory['rss_before_bytes'] / mib:.1f}",
                f"{memory['peak_growth_bytes'] / mib:.1f}",
                memory["ratio_to_body"],
                f"{memory['rss_after_bytes'] / mib:.1f}",
                memory["seconds"],
                "processed" if memory["answer"] is True else memory["answer"][:60],
            ]
        ],
    )
    verdict = "meets" if memory["meets_target"] else "MISSES"
    print(f"peak growth {memory['ratio_to_body']}x the payload ({verdict} the target of under {MEMORY_TARGET_RATIO}x)")
    print(
        f"stored MP3: {memory['stored_audio_bytes']} bytes, expected {memory['audio_bytes']}, "
        f"sha256 {'matches' if memory['stored_audio_matches'] else 'DIFFERS'}"
    )
