"""The simulated agent's WebSocket: ElevenLabs' ConvAI protocol, so the official browser client connects unchanged.

What the browser client (@elevenlabs/client) needs shapes the order of
things here: accept with the ``convai`` subprotocol when it is offered, refuse by
accepting and closing with 1008 and a reason (a refused handshake gives the client
only a bare 1006), send ``conversation_initiation_metadata`` before anything else,
echo the user's text back as a ``user_transcript``, and send no audio at all in a
text-only conversation.

One consumer instance serves one conversation. Messages from the client are
handled one at a time by Channels; a background task (``_run``) does what
depends on time: the greeting if the client never sends its initiation data,
pings, the end of the agent's spoken goodbye, and the inactivity and
maximum-duration limits. Time comes from an injectable :class:`Clock` so tests
can move it forward without waiting.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from channels.consumer import get_handler_name
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from django.http.request import split_domain_port, validate_host

from elevenlabs.simulator import voice
from elevenlabs.simulator.agents import (
    SPOKEN_MESSAGE_PLACEHOLDER,
    SimulatedAgent,
    fill_dynamic_variables,
    simulated_agent,
)
from elevenlabs.simulator.conversations import (
    simulator_finish_conversation,
    simulator_send_post_call_webhook,
    transcript_item,
)
from elevenlabs.simulator.metrics import CONVERSATIONS_ENDED, CONVERSATIONS_STARTED
from elevenlabs.simulator.signed_urls import SignedUrlRefused, simulator_open_conversation
from elevenlabs.simulator.voice import SpeechDetector
from sessions.memory import MEMORY_VARIABLES
from sessions.validators import MAX_DYNAMIC_VARIABLES
from voiceagent.jsonlimits import JsonRejected, loads_bounded
from voiceagent.logging import session_context

logger = logging.getLogger("elevenlabs.simulator")

SUBPROTOCOL = "convai"
CLOSE_NORMAL = 1000
CLOSE_POLICY = 1008
CLOSE_TOO_BIG = 1009
CLOSE_INTERNAL = 1011

# A frame over this ends the conversation with 1009, as a WebSocket server past its size limit does.
# The browser's microphone chunks are ~1.4 KB and its initiation data a few KB.
MAX_FRAME_CHARS = 256 * 1024
# Deeper frames get an error event. ElevenLabs' own messages nest about 6 levels; the client data
# we keep goes into the post-call webhook two levels down, which must stay within its parser's bound.
MAX_FRAME_DEPTH = 32
AUDIO_EVENTS_PER_YIELD = 8  # two seconds of audio, then other conversations on this worker get a turn
MAX_TEXT_CHARS = 4000
MAX_FIRST_MESSAGE_CHARS = 2000
MAX_USER_ID_CHARS = 256
# What a session may hand its client: the caller's variables, and memory's (CONVERSATION_MEMORY).
MAX_CLIENT_DYNAMIC_VARIABLES = MAX_DYNAMIC_VARIABLES + len(MEMORY_VARIABLES)

# Where each server event keeps its payload: mostly "<type>_event", with ElevenLabs' exceptions.
EVENT_KEYS = {
    "conversation_initiation_metadata": "conversation_initiation_metadata_event",
    "agent_response": "agent_response_event",
    "audio": "audio_event",
    "user_transcript": "user_transcription_event",
    "interruption": "interruption_event",
    "ping": "ping_event",
    "agent_tool_response": "agent_tool_response",
    "error": "error_event",
}


class Clock:
    """Monotonic seconds and sleeping. Tests substitute a clock they move by hand."""

    def now(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


@dataclass(frozen=True)
class SimulatorTimings:
    """How the simulated agent keeps time. Defaults follow ElevenLabs' where it has them."""

    ping_interval: float = 10.0
    inactivity_timeout: float = 60.0  # ElevenLabs' transport_receive_timeout
    max_duration: float = 600.0  # ElevenLabs' default max_duration_seconds
    end_of_speech_silence: float = 0.8
    min_speech: float = 0.1
    initiation_wait: float = 1.0  # how long to wait for the client's initiation data before greeting anyway
    tick: float = 0.25
    speech_rms_threshold: float = 500.0

    @classmethod
    def from_settings(cls) -> SimulatorTimings:
        return cls(
            ping_interval=settings.SIMULATOR_PING_INTERVAL_SECONDS,
            inactivity_timeout=settings.SIMULATOR_INACTIVITY_TIMEOUT_SECONDS,
            max_duration=settings.SIMULATOR_MAX_DURATION_SECONDS,
            end_of_speech_silence=settings.SIMULATOR_END_OF_SPEECH_SILENCE_SECONDS,
            speech_rms_threshold=settings.SIMULATOR_SPEECH_RMS_THRESHOLD,
        )


class ClientDataError(ValueError):
    """The client's conversation_initiation_client_data is not shaped as the protocol says."""


@dataclass
class ClientData:
    text_only: bool | None = None
    first_message: str | None = None
    language: str | None = None
    user_id: str | None = None
    dynamic_variables: dict[str, Any] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict)


def _object(value: Any, name: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ClientDataError(f"{name} must be an object")
    return value


def parse_client_data(message: dict[str, Any]) -> ClientData:
    """Read the overrides we act on and check the shape of the rest. Raises :class:`ClientDataError`."""
    override = _object(message.get("conversation_config_override"), "conversation_config_override")
    agent = _object(override.get("agent"), "conversation_config_override.agent")
    _object(override.get("tts"), "conversation_config_override.tts")
    conversation = _object(override.get("conversation"), "conversation_config_override.conversation")
    _object(agent.get("prompt"), "conversation_config_override.agent.prompt")

    text_only = conversation.get("text_only")
    if text_only is not None and not isinstance(text_only, bool):
        raise ClientDataError("conversation_config_override.conversation.text_only must be a boolean")
    first_message = agent.get("first_message")
    if first_message is not None and (
        not isinstance(first_message, str) or len(first_message) > MAX_FIRST_MESSAGE_CHARS
    ):
        raise ClientDataError(f"first_message must be a string of at most {MAX_FIRST_MESSAGE_CHARS} characters")
    language = agent.get("language")
    if language is not None and (not isinstance(language, str) or len(language) > 16):
        raise ClientDataError("language must be a language code")
    user_id = message.get("user_id")
    if user_id is not None and (not isinstance(user_id, str) or len(user_id) > MAX_USER_ID_CHARS):
        raise ClientDataError(f"user_id must be a string of at most {MAX_USER_ID_CHARS} characters")
    variables = _object(message.get("dynamic_variables"), "dynamic_variables")
    if len(variables) > MAX_CLIENT_DYNAMIC_VARIABLES:
        raise ClientDataError(f"at most {MAX_CLIENT_DYNAMIC_VARIABLES} dynamic_variables are accepted")
    for name, value in variables.items():
        if value is not None and not isinstance(value, (str, int, float, bool)):
            raise ClientDataError(f"dynamic variable {name!r} must be a string, number or boolean")
    raw = {key: value for key, value in message.items() if key != "type"}
    return ClientData(
        text_only=text_only,
        first_message=first_message,
        language=language,
        user_id=user_id,
        dynamic_variables=variables,
        raw=raw,
    )


def origin_allowed(scope: dict[str, Any]) -> bool:
    """Allow no Origin (server-side SDKs send none), the host the socket was reached at, or an ALLOWED_HOSTS host."""
    headers = {name.lower(): value for name, value in scope.get("headers", [])}
    origin = headers.get(b"origin")
    if origin is None:
        return True
    parts = urlsplit(origin.decode("latin-1"))
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return False  # "null" (sandboxed pages, file://) and anything stranger
    origin_host = parts.hostname.lower()
    host_header = headers.get(b"host")
    if host_header:
        served_host, _port = split_domain_port(host_header.decode("latin-1"))
        if served_host and served_host.strip("[]") == origin_host:
            return True
    allowed = list(settings.ALLOWED_HOSTS)
    if settings.DEBUG and not allowed:
        allowed = [".localhost", "127.0.0.1", "[::1]"]  # what Django itself allows then
    return validate_host(f"[{origin_host}]" if ":" in origin_host else origin_host, allowed)


class SimulatedAgentConsumer(AsyncWebsocketConsumer):
    """One conversation with a scripted agent, spoken over ElevenLabs' ConvAI WebSocket protocol."""

    def __init__(self, *args, clock: Clock | None = None, timings: SimulatorTimings | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.clock = clock or Clock()
        self.timings = timings or SimulatorTimings.from_settings()
        self.conversation_id: str | None = None
        self.session_id: Any = None
        self.agent: SimulatedAgent | None = None
        self.text_only = False
        self.client_data: ClientData | None = None
        self.transcript: list[dict[str, Any]] = []
        self.greeted = False
        self.user_turns = 0
        self.started_at = 0.0
        self.last_activity = 0.0
        self.playing_until = 0.0  # when the client will have played all the agent audio sent so far
        self.speaking_item: int | None = None  # transcript index of the agent turn being played
        self.hangup_at: float | None = None
        self.next_ping_at = 0.0
        self.pings_sent: dict[int, float] = {}
        self.last_ping_ms: int | None = None
        self.detector: SpeechDetector | None = None
        self._event_id = 0
        self._ping_id = 0
        self._closed = False
        self._runner: asyncio.Task | None = None
        self._finishing: asyncio.Task | None = None

    # --- connecting ------------------------------------------------------------------------

    async def connect(self) -> None:
        offered = self.scope.get("subprotocols") or []
        # Browsers fail the handshake unless we pick the protocol they offered; others reject one they didn't offer.
        await self.accept(SUBPROTOCOL if SUBPROTOCOL in offered else None)
        if not origin_allowed(self.scope):
            await self._refuse("Origin not allowed")
            return
        try:
            conversation = await database_sync_to_async(simulator_open_conversation)(
                query_string=self.scope.get("query_string", b"")
            )
        except SignedUrlRefused as exc:
            await self._refuse(exc.reason)
            return
        except Exception:  # the database, most likely; the client should hear why rather than see a bare 1006
            logger.exception("simulated agent could not open a conversation")
            await self._close(CLOSE_INTERNAL, "The simulated agent is unavailable")
            return

        self.conversation_id = conversation.conversation_id
        self.session_id = conversation.session_id
        self.agent = simulated_agent(conversation.agent_type)
        self.text_only = conversation.text_only
        self.started_at = self.last_activity = self.clock.now()
        self.next_ping_at = self.started_at + self.timings.ping_interval
        self.detector = SpeechDetector(
            threshold=self.timings.speech_rms_threshold,
            min_speech_secs=self.timings.min_speech,
            end_silence_secs=self.timings.end_of_speech_silence,
        )
        self._log(logging.INFO, "simulated %s agent connected (%s)", conversation.agent_type, self.conversation_id)
        CONVERSATIONS_STARTED.labels(conversation.agent_type).inc()
        # First, always: the browser client waits for exactly this before anything else counts.
        await self._send_event(
            "conversation_initiation_metadata",
            {
                "conversation_id": self.conversation_id,
                "agent_output_audio_format": voice.AUDIO_FORMAT,
                "user_input_audio_format": voice.AUDIO_FORMAT,
            },
        )
        self._runner = asyncio.ensure_future(self._run())

    async def _refuse(self, reason: str) -> None:
        logger.warning("simulated agent refused a connection: %s", reason)
        await self._close(CLOSE_POLICY, reason)

    async def _close(self, code: int, reason: str) -> None:
        """Close with ElevenLabs' code and reason, or as near as the server allows.

        Daphne (``runserver``) only sends 1000 or 3000-4999 and drops the reason: it
        raises on 1008 or 1011. There the reason goes out first as an error event
        (visible in the browser's frame inspector and to SDKs that read it), and the
        code moves to the private range with the same last digits (1008 → 4008),
        which the browser client still reports as an error, not as a hang-up.
        """
        self._closed = True
        try:
            await self.close(code=code, reason=reason)
        except Exception:
            fallback = 4000 + code % 1000
            logger.warning("the server refused close code %s; closing with %s instead", code, fallback)
            await self._send_event("error", {"code": code, "message": reason, "error_type": "websocket_disconnect"})
            await self.close(code=fallback, reason=reason)

    # --- messages from the client ----------------------------------------------------------------

    async def dispatch(self, message: dict[str, Any]) -> None:
        """Channels' dispatch without its per-message ``close_old_connections``.

        Channels runs that before every message, in the one thread Django keeps for
        sync code, where /healthz and every other sync view also wait their turn:
        with the microphone's 31 chunks a second per conversation, fifty
        conversations queued ~1,500 hops a second there. Nothing here touches the
        database outside ``database_sync_to_async``, which closes old connections
        itself, in its own thread, around each call.
        """
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if self.conversation_id is None or self._finishing is not None:
            return  # refused or ending: nothing more to say
        try:
            await self._receive(text_data, bytes_data)
        except Exception:
            self._log(logging.ERROR, "simulated agent failed on a client message", exc_info=True)
            await self._end(CLOSE_INTERNAL, "Internal error in the simulated agent", "Internal error")

    async def _receive(self, text_data: str | None, bytes_data: bytes | None) -> None:
        if len(text_data if text_data is not None else bytes_data or b"") > MAX_FRAME_CHARS:
            reason = f"Message too big (over {MAX_FRAME_CHARS} characters)"
            await self._end(CLOSE_TOO_BIG, reason, f"Client sent a message over {MAX_FRAME_CHARS} characters")
            return
        if text_data is None:
            await self._send_error("Binary frames are not part of the protocol; send JSON text.")
            return
        try:
            # Bounded: a deep frame would otherwise turn json.loads' recursion into a RecursionError, and a NUL
            # or a huge number in the client data would break what we store.
            message = loads_bounded(text_data, max_depth=MAX_FRAME_DEPTH)
        except JsonRejected as exc:
            await self._send_error(exc.message)
            return
        if not isinstance(message, dict):
            await self._send_error("Message must be a JSON object.")
            return
        if "user_audio_chunk" in message:  # the one client message without a type
            await self._on_user_audio(message["user_audio_chunk"])
            return
        kind = message.get("type")
        if kind == "conversation_initiation_client_data":
            await self._on_client_data(message)
        elif kind == "user_message":
            await self._on_user_message(message)
        elif kind == "pong":
            self._on_pong(message)
        elif kind == "user_activity":
            self.last_activity = self.clock.now()
        elif kind in ("contextual_update", "feedback", "client_tool_result", "mcp_tool_approval_result"):
            pass  # accepted; the script has no use for them
        else:
            logger.debug("simulated agent ignores a %r message", kind)

    async def _on_client_data(self, message: dict[str, Any]) -> None:
        if self.client_data is not None:
            return  # only the first one counts, as with ElevenLabs
        try:
            data = parse_client_data(message)
        except ClientDataError as exc:
            await self._end(
                CLOSE_POLICY, f"Invalid conversation_initiation_client_data: {exc}"[:120], f"Invalid overrides: {exc}"
            )
            return
        self.client_data = data
        if data.text_only is not None:
            self.text_only = data.text_only
        await self._greet()

    async def _on_user_message(self, message: dict[str, Any]) -> None:
        text = message.get("text")
        if not isinstance(text, str) or not text.strip():
            await self._send_error("user_message needs a non-empty text.")
            return
        await self._user_turn(text.strip()[:MAX_TEXT_CHARS], medium="text")

    async def _on_user_audio(self, chunk: Any) -> None:
        if not isinstance(chunk, str) or len(chunk) > MAX_FRAME_CHARS:
            await self._send_error("user_audio_chunk must be a base64 string.")
            return
        try:
            pcm = base64.b64decode(chunk, validate=True)
        except (binascii.Error, ValueError):
            await self._send_error("user_audio_chunk is not valid base64.")
            return
        assert self.detector is not None
        change = self.detector.feed(pcm)
        now = self.clock.now()
        if change == SpeechDetector.STARTED:
            self.last_activity = now
            if now < self.playing_until:
                await self._interrupt(now)
        elif change == SpeechDetector.ENDED:
            await self._user_turn(SPOKEN_MESSAGE_PLACEHOLDER, medium="audio")

    def _on_pong(self, message: dict[str, Any]) -> None:
        event_id = message.get("event_id")
        sent = self.pings_sent.pop(event_id, None) if isinstance(event_id, int) else None
        if sent is not None:
            self.last_ping_ms = max(0, round((self.clock.now() - sent) * 1000))

    # --- the agent's side ----------------------------------------------------------------------

    async def _greet(self) -> None:
        if self.greeted:
            return
        self.greeted = True
        assert self.agent is not None
        data = self.client_data or ClientData()
        text = data.first_message if data.first_message is not None else self.agent.greeting(data.dynamic_variables)
        text = fill_dynamic_variables(text, data.dynamic_variables).strip()
        if text:  # an empty first message means the agent waits for the user, as with ElevenLabs
            await self._say(text)

    async def _user_turn(self, text: str, *, medium: str) -> None:
        assert self.agent is not None
        await self._greet()
        now = self.clock.now()
        self.last_activity = now
        self.transcript.append(
            transcript_item(role="user", message=text, time_in_call_secs=self._call_secs(now), source_medium=medium)
        )
        await self._send_event("user_transcript", {"user_transcript": text, "event_id": self._next_event_id()})
        reply, ends_call = self.agent.reply_to(text, turn=self.user_turns)
        self.user_turns += 1
        await self._say(fill_dynamic_variables(reply, self._variables()))
        if ends_call:
            # Hang up once the goodbye has been heard, not in the middle of it.
            self.hangup_at = max(now, self.playing_until)
            if self.hangup_at <= now:
                await self._hang_up()

    async def _say(self, text: str) -> None:
        assert self.agent is not None
        now = self.clock.now()
        event_id = self._next_event_id()
        self.transcript.append(
            transcript_item(
                role="agent",
                message=text,
                time_in_call_secs=self._call_secs(now),
                source_medium="text" if self.text_only else "audio",
            )
        )
        await self._send_event("agent_response", {"agent_response": text, "event_id": event_id})
        if self.text_only:
            return  # the client would buffer audio forever in a text-only conversation
        pitch_hz = self.agent.pitch_hz
        # The agents' lines come from the cache; a new line (an override, filled-in variables) is encoded
        # in a thread, since a long one takes milliseconds the other conversations on this loop would wait.
        audio = voice.spoken_audio_if_cached(text, pitch_hz=pitch_hz) or await asyncio.to_thread(
            voice.spoken_audio, text, pitch_hz=pitch_hz
        )
        for index, chunk in enumerate(audio.chunks, start=1):
            await self._send_event("audio", {"audio_base_64": chunk, "event_id": event_id})
            if index % AUDIO_EVENTS_PER_YIELD == 0:
                await asyncio.sleep(0)  # each event is compressed on the loop by the server; share it
        self.playing_until = max(now, self.playing_until) + audio.seconds
        self.speaking_item = len(self.transcript) - 1

    async def _interrupt(self, now: float) -> None:
        # A fresh id: the client drops queued audio and ignores audio events older than it.
        await self._send_event("interruption", {"event_id": self._next_event_id()})
        if self.speaking_item is not None:
            self.transcript[self.speaking_item]["interrupted"] = True
        self.playing_until = now
        if self.hangup_at is not None:
            self.hangup_at = now

    async def _hang_up(self) -> None:
        event_id = self._next_event_id()
        call_id = f"sim_end_call_{event_id}"
        if self.transcript and self.transcript[-1]["role"] == "agent":
            self.transcript[-1]["tool_calls"].append(
                {"type": "system", "tool_name": "end_call", "request_id": call_id, "params_as_json": "{}"}
            )
        await self._send_event(
            "agent_tool_response",
            {
                "tool_name": "end_call",
                "tool_call_id": call_id,
                "tool_type": "system",
                "is_error": False,
                "is_called": True,
                "event_id": event_id,
            },
        )
        await self._end(CLOSE_NORMAL, "Agent ended the call", "end_call tool was called.")

    async def _ping(self, now: float) -> None:
        self._ping_id += 1
        self.pings_sent = {self._ping_id: now}  # one outstanding ping is enough to measure latency
        await self._send_event("ping", {"event_id": self._ping_id, "ping_ms": self.last_ping_ms})

    async def _run(self) -> None:
        """What happens because time passes rather than because the client said something."""
        timings = self.timings
        try:
            while self._finishing is None:
                await self.clock.sleep(timings.tick)
                if self._finishing is not None:
                    return
                now = self.clock.now()
                if not self.greeted and now - self.started_at >= timings.initiation_wait:
                    await self._greet()
                assert self.detector is not None
                if self.detector.in_speech:
                    self.last_activity = now
                if self.hangup_at is not None and now >= self.hangup_at:
                    await self._hang_up()
                    return
                if now - self.started_at >= timings.max_duration:
                    await self._end(CLOSE_NORMAL, "Maximum call duration reached", "Maximum duration exceeded")
                    return
                if now - max(self.last_activity, self.playing_until) >= timings.inactivity_timeout:
                    seconds = round(timings.inactivity_timeout)
                    await self._end(
                        CLOSE_NORMAL, f"No user input for {seconds} seconds", f"No user input for {seconds} seconds"
                    )
                    return
                if now >= self.next_ping_at:
                    self.next_ping_at = now + timings.ping_interval
                    await self._ping(now)
        except asyncio.CancelledError:
            raise
        except Exception:
            self._log(logging.ERROR, "simulated agent's timer failed", exc_info=True)
            await self._end(CLOSE_INTERNAL, "Internal error in the simulated agent", "Internal error")

    # --- ending ---------------------------------------------------------------------------------

    async def _end(self, code: int, close_reason: str, termination_reason: str) -> None:
        """The agent ends the conversation: store it, close the socket, send the webhook."""
        finishing = self._start_finishing(termination_reason)
        if not self._closed:
            await self._close(code, close_reason)
        # Shielded: the client's disconnect cancels the timer task, not the finishing work.
        await asyncio.shield(finishing)

    async def disconnect(self, code: int) -> None:
        self._closed = True
        if self._runner is not None:
            self._runner.cancel()
        if self.conversation_id is None:
            return
        await asyncio.shield(self._start_finishing(f"Client disconnected: {code}"))

    def _start_finishing(self, termination_reason: str) -> asyncio.Task:
        if self._finishing is None:
            self._finishing = asyncio.ensure_future(self._finish(termination_reason))
        return self._finishing

    async def _finish(self, termination_reason: str) -> None:
        assert self.conversation_id is not None
        data = self.client_data or ClientData()
        try:
            stored = await database_sync_to_async(simulator_finish_conversation)(
                conversation_id=self.conversation_id,
                transcript=self.transcript,
                termination_reason=termination_reason,
                client_data=data.raw,
                text_only=self.text_only,
            )
        except Exception:
            self._log(logging.ERROR, "could not store simulated conversation %s", self.conversation_id, exc_info=True)
            return
        if not stored:
            return
        self._log(
            logging.INFO,
            "simulated conversation %s ended (%s) after %d turns",
            self.conversation_id,
            termination_reason,
            len(self.transcript),
        )
        delivered = False
        try:
            # Not thread-sensitive: the POST goes to our own server, whose view must not wait for this thread.
            delivered = await database_sync_to_async(simulator_send_post_call_webhook, thread_sensitive=False)(
                conversation_id=self.conversation_id
            )
        except Exception:
            self._log(logging.ERROR, "post-call webhook for %s failed", self.conversation_id, exc_info=True)
        assert self.agent is not None
        CONVERSATIONS_ENDED.labels(self.agent.agent_type, "delivered" if delivered else "failed").inc()

    # --- helpers ------------------------------------------------------------------------------------

    def _variables(self) -> dict[str, Any]:
        return self.client_data.dynamic_variables if self.client_data else {}

    def _next_event_id(self) -> int:
        self._event_id += 1
        return self._event_id

    def _call_secs(self, now: float) -> int:
        return max(0, int(now - self.started_at))

    async def _send_event(self, kind: str, payload: dict[str, Any]) -> None:
        await self.send(text_data=json.dumps({"type": kind, EVENT_KEYS[kind]: payload}))

    async def _send_error(self, message: str) -> None:
        # An error event reaches the client's onError and leaves the conversation open.
        await self._send_event("error", {"code": CLOSE_POLICY, "message": message, "error_type": "invalid_message"})

    def _log(self, level: int, message: str, *args: Any, exc_info: bool = False) -> None:
        with session_context(self.session_id):
            logger.log(level, message, *args, exc_info=exc_info, stacklevel=2)
