"""Fifty simulated voice conversations at once: does a worker keep answering while the agents speak?

The production profile (make serve's granian, 2 workers, DEBUG=false, SQLite in a temp dir,
no ElevenLabs key, so the simulated agent answers). Each conversation does what
the browser client does in voice mode:

1. ``POST /api/voice/sessions`` with an API token and ``simulation: true``; the
   answer's ``signed_url`` (simulated voice sessions get a WebSocket URL) is opened
   with the ``convai`` subprotocol and the page's Origin, as the browser does;
2. sends ``conversation_initiation_client_data``, reads the metadata, reports
   ``connected`` to ``/voice/sessions/{id}/events`` as the playground page does;
3. streams its microphone from the first moment to the last: a 1024-byte PCM chunk
   every 32 ms, silence while the agent's greeting plays, then 0.6 s of a loud tone
   (speech to the simulator's detector), then silence again, so that the end of
   speech gives a user turn and a spoken reply;
4. types ``user_message`` "... Goodbye!" when that reply arrives; the agent says
   farewell and hangs up once its audio has played (``end_call``, close 1000);
5. answers every ping with a pong.

Meanwhile a separate process GETs ``/healthz`` every 50 ms and times it: the
worker that serves it is also running conversations, so a stalled event loop
shows as a slow health check. Target: ``/healthz`` p99 under 500 ms on 2 cores.
Also timed: a typed message to its reply (on the conversation's own socket).

Bounded: a fixed number of conversations, each cut off after ``MAX_SECONDS``;
the probe stops with them. All traffic is on 127.0.0.1. Client, probe and server
share the machine's cores, so the figures are pessimistic.
"""

from __future__ import annotations

import asyncio
import base64
import json
import math
import multiprocessing
import secrets
import sys
import tempfile
import time
from array import array
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import requests
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from bench.common import MAKE_TOKEN, child_pids, cpu_seconds, manage, percentile, print_table, server_env, server_pid
from devtools.servers import asgi_server

NAME = "simulator_load"
DESCRIPTION = "50 simulated voice conversations at once on 2 granian workers: /healthz p50/p99/max while they run"

WORKERS = 2
CONVERSATIONS = 50
MAX_SECONDS = 90.0  # per conversation; one takes about 25 s with the agents' own greetings
PROBE_INTERVAL = 0.05
IDLE_PROBE_SECONDS = 1.0
TARGET_P99_MS = 500.0
PING_INTERVAL_SECONDS = 2.0  # ElevenLabs pings every 10 s; more often here so that every conversation answers some

# The browser client's microphone at pcm_16000: 1024 bytes (512 samples) every 32 ms, silence included.
MIC_SAMPLES = 512
MIC_CHUNK_SECONDS = MIC_SAMPLES / 16000
SPEECH_AMPLITUDE = 4000  # RMS ~2800: well over the simulator's speech threshold (500)
SPEECH_SECONDS = 0.6
GOODBYE = "Thank you, that's all I needed. Goodbye!"
JS_SDK = "&source=js_sdk&version=1.25.0"


def _mic_frame(*, speech: bool) -> str:
    """One ``user_audio_chunk`` message: a 220 Hz tone or silence. Built once; every send reuses the text."""
    samples = array(
        "h", (round(SPEECH_AMPLITUDE * math.sin(2 * math.pi * 220 * i / 16000)) if speech else 0 for i in range(512))
    )
    if sys.byteorder == "big":
        samples.byteswap()
    return json.dumps({"user_audio_chunk": base64.b64encode(samples.tobytes()).decode()})


SPEECH_FRAME = _mic_frame(speech=True)
SILENCE_FRAME = _mic_frame(speech=False)


def _audio_seconds(audio_base_64: str) -> float:
    """Seconds of PCM16 mono 16 kHz in a base64 string, without decoding it."""
    return (len(audio_base_64) // 4 * 3 - audio_base_64[-2:].count("=")) / 32000


@dataclass
class ConversationOutcome:
    """What one conversation saw. ``completed``: greeted, a spoken and a typed turn answered, hung up with 1000."""

    agent_type: str = ""
    completed: bool = False
    error: str = ""
    agent_turns: int = 0
    audio_seconds: float = 0.0
    pongs: int = 0
    text_reply_ms: float | None = None  # user_message sent -> its agent_response
    close_code: int | None = None
    phase: str = ""


class VoiceConversation:
    """One browser-like voice conversation with the simulated agent (see the module docstring)."""

    def __init__(self, base_url: str, token: str, index: int, *, first_message: str | None = None):
        self.base_url = base_url
        self.headers = {"Authorization": f"Token {token}"}
        self.index = index
        self.first_message = first_message
        self.outcome = ConversationOutcome(agent_type="support" if index % 2 == 0 else "sales")
        self.phase = "greeting"  # -> speaking -> spoken -> goodbye -> farewell (the last seen is in failures)
        self.playing_until = 0.0  # when the greeting would have finished playing
        self.goodbye_sent_at = 0.0
        self.hung_up = False

    # --- HTTP, as the page does it (in a thread: requests blocks) ---

    def start_session(self) -> dict[str, Any]:
        body = {"agentType": self.outcome.agent_type, "customerId": f"load-{self.index:03d}", "simulation": True}
        response = requests.post(f"{self.base_url}/api/voice/sessions", json=body, headers=self.headers, timeout=30)
        if response.status_code != 201:
            raise RuntimeError(f"POST /api/voice/sessions answered {response.status_code}: {response.text[:200]}")
        return response.json()

    def report_connected(self, session_id: str, conversation_id: str) -> None:
        event = {"type": "connected", "conversation_id": conversation_id}
        url = f"{self.base_url}/voice/sessions/{session_id}/events"
        response = requests.post(url, json=event, headers=self.headers, timeout=30)
        if response.status_code >= 300:
            raise RuntimeError(f"POST {url} answered {response.status_code}: {response.text[:200]}")

    # --- the conversation ---

    async def run(self) -> ConversationOutcome:
        try:
            await self._talk()
        except Exception as exc:  # a failed conversation is a figure, not a crash
            self.outcome.error = f"{type(exc).__name__}: {exc}"[:300]
        return self.outcome

    async def _talk(self) -> None:
        started = await asyncio.to_thread(self.start_session)
        credential = started["elevenlabs_conversation"]
        override: dict[str, Any] = {"agent": {}, "tts": {}, "conversation": {"text_only": False}}
        if self.first_message is not None:
            override["agent"]["first_message"] = self.first_message
        client_data = {
            "type": "conversation_initiation_client_data",
            "conversation_config_override": override,
            "source_info": {"source": "js_sdk", "version": "1.25.0"},
        }
        async with connect(
            credential["signed_url"] + JS_SDK,
            subprotocols=["convai"],
            origin=self.base_url,
            open_timeout=30,
            max_size=2**20,
        ) as socket:
            await socket.send(json.dumps(client_data))
            metadata = json.loads(await socket.recv())
            if metadata.get("type") != "conversation_initiation_metadata":
                raise RuntimeError(f"first message was {metadata.get('type')!r}, not the metadata")
            conversation_id = metadata["conversation_initiation_metadata_event"]["conversation_id"]
            session_id = started["backend_session"]["session_id"]
            reported = asyncio.ensure_future(asyncio.to_thread(self.report_connected, session_id, conversation_id))
            microphone = asyncio.ensure_future(self._microphone(socket))
            try:
                async for text in socket:
                    try:
                        await self._on_message(socket, json.loads(text))
                    except ConnectionClosed:
                        pass  # a pong after the agent hung up: keep reading what came before its close
            finally:
                microphone.cancel()
            await reported
            self.outcome.close_code = socket.close_code
        outcome = self.outcome
        outcome.phase = self.phase
        hung_up_cleanly = self.hung_up and outcome.close_code == 1000
        outcome.completed = hung_up_cleanly and outcome.agent_turns == 3 and not outcome.error

    async def _microphone(self, socket) -> None:
        """A chunk every 32 ms on an absolute schedule, as the audio worklet produces them."""
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        speech_until = 0.0
        try:
            while True:
                now = loop.time()
                if self.phase == "greeting" and self.outcome.agent_turns and now >= self.playing_until + 0.3:
                    self.phase, speech_until = "speaking", now + SPEECH_SECONDS
                speaking = self.phase == "speaking" and now < speech_until
                if self.phase == "speaking" and not speaking:
                    self.phase = "spoken"
                await socket.send(SPEECH_FRAME if speaking else SILENCE_FRAME)
                next_at += MIC_CHUNK_SECONDS
                await asyncio.sleep(max(0.0, next_at - loop.time()))
        except ConnectionClosed:
            return

    async def _on_message(self, socket, message: dict[str, Any]) -> None:
        kind = message.get("type")
        loop = asyncio.get_running_loop()
        if kind == "ping":
            await socket.send(json.dumps({"type": "pong", "event_id": message["ping_event"]["event_id"]}))
            self.outcome.pongs += 1
        elif kind == "audio":
            seconds = _audio_seconds(message["audio_event"]["audio_base_64"])
            self.outcome.audio_seconds += seconds
            if self.phase == "greeting":
                self.playing_until = max(loop.time(), self.playing_until) + seconds
        elif kind == "agent_response":
            self.outcome.agent_turns += 1
            if self.phase == "spoken":  # the reply to what was said: now type the goodbye
                self.phase, self.goodbye_sent_at = "goodbye", loop.time()
                await socket.send(json.dumps({"type": "user_message", "text": GOODBYE}))
            elif self.phase == "goodbye":
                self.phase = "farewell"
                self.outcome.text_reply_ms = round((loop.time() - self.goodbye_sent_at) * 1000, 1)
        elif kind == "agent_tool_response" and message["agent_tool_response"].get("tool_name") == "end_call":
            self.hung_up = True
        elif kind == "error":
            self.outcome.error = f"error event: {message.get('error_event')}"[:300]


async def _conversations(base_url: str, token: str, count: int, max_seconds: float, first_message: str | None):
    async def bounded(conversation: VoiceConversation) -> ConversationOutcome:
        try:
            async with asyncio.timeout(max_seconds):
                return await conversation.run()
        except TimeoutError:
            conversation.outcome.error = f"not finished within {max_seconds:.0f} s (phase {conversation.phase})"
            return conversation.outcome

    conversations = [VoiceConversation(base_url, token, i, first_message=first_message) for i in range(count)]
    return await asyncio.gather(*(bounded(conversation) for conversation in conversations))


def probe_healthz(url: str, interval: float, max_seconds: float, ready, stop, results) -> None:
    """GET ``url`` every ``interval`` s until ``stop`` is set (or ``max_seconds``); put ``[(at, seconds, ok)]``.

    ``ready`` is set after the first answer, so that the caller's idle baseline starts with the probe.
    """
    samples: list[tuple[float, float, bool]] = []
    deadline = time.monotonic() + max_seconds
    with requests.Session() as client:
        while not stop.is_set() and time.monotonic() < deadline:
            at = time.monotonic()
            try:
                ok = client.get(url, timeout=30).status_code == 200
            except requests.RequestException:
                ok = False
            elapsed = time.monotonic() - at
            samples.append((at, elapsed, ok))
            ready.set()
            stop.wait(max(0.0, interval - elapsed))
    results.put(samples)


def _latency_figures(seconds: list[float]) -> dict[str, float]:
    ordered = sorted(seconds)
    return {
        "p50_ms": round(percentile(ordered, 0.50) * 1000, 1),
        "p99_ms": round(percentile(ordered, 0.99) * 1000, 1),
        "max_ms": round((ordered[-1] if ordered else 0.0) * 1000, 1),
    }


def simulate_voice_load(
    base_url: str,
    token: str,
    *,
    conversations: int,
    max_seconds: float = MAX_SECONDS,
    first_message: str | None = None,
) -> dict[str, Any]:
    """Run ``conversations`` voice conversations at once against ``base_url`` with /healthz probed throughout.

    The server must be a granian process this one started (devtools.servers.asgi_server): its workers' CPU time is read.
    """
    server = server_pid(base_url)
    server_pids = [server, *child_pids(server)]
    # The probe has a process of its own: the conversations' client would otherwise hold its GIL and slow its timings.
    context = multiprocessing.get_context("spawn")
    ready, stop, results = context.Event(), context.Event(), context.Queue()
    probe = context.Process(
        target=probe_healthz,
        args=(f"{base_url}/healthz", PROBE_INTERVAL, max_seconds + 60, ready, stop, results),
        daemon=True,
    )
    probe.start()
    try:
        if not ready.wait(timeout=60):
            raise RuntimeError("the /healthz probe did not start within 60 s")
        time.sleep(IDLE_PROBE_SECONDS)
        cpu_before, load_started = cpu_seconds(server_pids), time.monotonic()
        outcomes = asyncio.run(_conversations(base_url, token, conversations, max_seconds, first_message))
        cpu_used, load_ended = cpu_seconds(server_pids) - cpu_before, time.monotonic()
        stop.set()
        samples = results.get(timeout=60)
    finally:
        stop.set()
        probe.join(timeout=30)
        if probe.is_alive():
            probe.kill()

    idle = [seconds for at, seconds, _ok in samples if at < load_started]
    loaded = [(seconds, ok) for at, seconds, ok in samples if load_started <= at < load_ended]
    completed = [outcome for outcome in outcomes if outcome.completed]
    text_replies = [outcome.text_reply_ms / 1000 for outcome in outcomes if outcome.text_reply_ms is not None]
    healthz = {"samples": len(loaded), "errors": sum(1 for _s, ok in loaded if not ok)}
    healthz.update(_latency_figures([seconds for seconds, _ok in loaded]))
    return {
        "conversations": conversations,
        "completed": len(completed),
        "failure_samples": sorted(
            {outcome.error or f"incomplete: {asdict(outcome)}" for outcome in outcomes if not outcome.completed}
        )[:5],
        "seconds": round(load_ended - load_started, 1),
        # Wall-clock figures depend on what else the machine runs; the server's CPU time does not, much.
        "server_cpu_seconds": round(cpu_used, 2),
        "server_cpu_ms_per_conversation": round(cpu_used * 1000 / conversations, 1),
        "pongs": sum(outcome.pongs for outcome in outcomes),
        "agent_audio_seconds": round(sum(outcome.audio_seconds for outcome in outcomes), 1),
        "healthz_idle": {"samples": len(idle), **_latency_figures(idle)},
        "healthz": healthz,
        "text_reply": {"samples": len(text_replies), **_latency_figures(text_replies)},
    }


def run() -> dict[str, Any]:
    with (
        tempfile.TemporaryDirectory(prefix="voiceagent-bench-simulator-") as tmp,
        tempfile.TemporaryDirectory(prefix="voiceagent-bench-logs-") as log_dir,
    ):
        env = server_env(f"sqlite:///{Path(tmp) / 'bench.sqlite3'}", log_dir)
        env.update(
            # asgi_server gives the server its own address as PUBLIC_BASE_URL, where the simulator sends its webhooks.
            ELEVENLABS_WEBHOOK_SECRET=secrets.token_hex(32),
            SIMULATOR_PING_INTERVAL_SECONDS=str(PING_INTERVAL_SECONDS),
        )
        manage(env, "migrate", "--noinput", "-v", "0")
        token = manage(env, "shell", "-c", MAKE_TOKEN).strip().splitlines()[-1]
        with asgi_server(env=env, workers=WORKERS) as base_url:
            figures = simulate_voice_load(base_url, token, conversations=CONVERSATIONS)
    figures.update(workers=WORKERS, target_p99_ms=TARGET_P99_MS)
    figures["meets_target"] = figures["healthz"]["p99_ms"] < TARGET_P99_MS
    report(figures)
    return figures


def report(figures: dict[str, Any]) -> None:
    print(
        f"\n{figures['conversations']} voice conversations at once against {figures['workers']} granian workers "
        f"(microphone streamed every 32 ms, a spoken and a typed turn, the agent hangs up), "
        f"{figures['seconds']} s; /healthz every {PROBE_INTERVAL * 1000:.0f} ms from its own process"
    )
    healthz, idle, reply = figures["healthz"], figures["healthz_idle"], figures["text_reply"]
    print_table(
        ["measure", "samples", "errors", "p50 ms", "p99 ms", "max ms"],
        [
            ["/healthz idle", idle["samples"], "", idle["p50_ms"], idle["p99_ms"], idle["max_ms"]],
            ["/healthz under load", healthz["samples"], healthz["errors"], *_row(healthz)],
            ["typed message -> reply", reply["samples"], "", *_row(reply)],
        ],
    )
    print(
        f"conversations completed: {figures['completed']}/{figures['conversations']}; "
        f"pongs {figures['pongs']}; agent audio {figures['agent_audio_seconds']} s; "
        f"server CPU {figures['server_cpu_seconds']} s ({figures['server_cpu_ms_per_conversation']} ms a conversation)"
    )
    for sample in figures["failure_samples"]:
        print(f"  failed: {sample[:200]}")
    verdict = "meets" if figures["meets_target"] else "MISSES"
    print(f"/healthz p99 {healthz['p99_ms']} ms ({verdict} the target of under {figures['target_p99_ms']:.0f} ms)")


def _row(figures: dict[str, float]) -> list[float]:
    return [figures["p50_ms"], figures["p99_ms"], figures["max_ms"]]
