"""The simulated ElevenLabs agent: credentials, scripted agents, conversation details, post-call webhook.

With no API key configured (or when a session asks for it), voiceagent talks to
this stand-in instead of ElevenLabs. It keeps ElevenLabs' contracts so that the
rest of the project cannot tell the difference except by the ``sim_`` ids:

- a signed WebSocket URL, valid 15 minutes and usable once
  (:func:`simulator_mint_signed_url`; the socket itself is
  :mod:`elevenlabs.consumers`);
- conversation details shaped like ``GET /v1/convai/conversations/{id}``
  (:func:`simulator_get_conversation`);
- a ``post_call_transcription`` webhook, signed like ElevenLabs signs it, POSTed
  to our own ``/elevenlabs/webhook`` when a conversation ends
  (:func:`simulator_send_post_call_webhook`).

The agents follow fixed scripts, so a conversation is deterministic. Their
"voice" is a quiet tone, one syllable-like burst per word at 150 words a minute,
so that a browser plays audio for as long as the words would take to say.
"""

from __future__ import annotations

import base64
import hmac
import json
import logging
import math
import re
import sys
import threading
import time
import uuid
from array import array
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from typing import Any
from urllib.parse import parse_qs, urlencode

import requests
from django.utils import timezone
from django.utils.crypto import salted_hmac

from elevenlabs.models import SimulatedConversation
from elevenlabs.webhooks import SIGNATURE_HEADER, sign, simulator_signing_secret
from voiceagent.public_url import require_public_base_url, websocket_base

logger = logging.getLogger("elevenlabs.simulator")

SIMULATOR_PATH = "simulator/v1/convai/conversation"
WEBHOOK_PATH = "/elevenlabs/webhook"
SIGNED_URL_LIFETIME = timedelta(minutes=15)

SIGNED_PARAMS = ("agent_id", "conversation_id", "expires")
SIGNATURE_PARAM = "conversation_signature"
_SIGNATURE_SALT = "voiceagent.elevenlabs.simulator.signed-url.v1"

AUDIO_FORMAT = "pcm_16000"
SAMPLE_RATE = 16000
BYTES_PER_SECOND = SAMPLE_RATE * 2  # 16-bit mono
WORDS_PER_MINUTE = 150
SECONDS_PER_WORD = 60 / WORDS_PER_MINUTE
AUDIO_CHUNK_BYTES = BYTES_PER_SECOND // 4  # a quarter second per audio event
# Quiet: peaks around -20 dBFS, so the tone never startles anyone wearing headphones.
VOICE_AMPLITUDE = 3000

SPOKEN_MESSAGE_PLACEHOLDER = "(spoken message)"
WEBHOOK_TIMEOUT = (3.05, 15.0)

_WORD = re.compile(r"[\w'’]+")
_VARIABLE = re.compile(r"\{\{\s*([A-Za-z_][\w]*)\s*\}\}")
_GOODBYE = re.compile(r"\b(bye|goodbye|good bye|bye bye|that'?s all|hang up|end (the )?call)\b", re.I)


class SignedUrlRefused(Exception):
    """A connection attempt that must be refused (closed with 1008 and ``reason``)."""

    def __init__(self, reason: str):
        self.reason = reason
        super().__init__(reason)


# --- The scripted agents -----------------------------------------------------------------


@dataclass(frozen=True)
class SimulatedAgent:
    """One scripted agent: what it says first, its replies in order, and how it says goodbye."""

    agent_type: str
    name: str
    first_message: str
    replies: tuple[str, ...]
    fallback: str
    farewell: str
    pitch_hz: float

    # (pattern, reply): questions the agent recognises whenever they come, before the scripted turns.
    topics: tuple[tuple[re.Pattern[str], str], ...] = ()

    def reply_to(self, text: str, *, turn: int) -> tuple[str, bool]:
        """The reply to the user's ``turn``-th message (0-based) and whether the agent then ends the call."""
        if _GOODBYE.search(text):
            return self.farewell, True
        for pattern, reply in self.topics:
            if pattern.search(text):
                return reply, False
        if turn < len(self.replies):
            return self.replies[turn], False
        return self.fallback, False


AGENTS: dict[str, SimulatedAgent] = {
    "support": SimulatedAgent(
        agent_type="support",
        name="Sam",
        first_message=(
            "Hi, thanks for calling support. This is Sam, your simulated support agent. What can I help you with today?"
        ),
        replies=(
            "I'm sorry to hear that. Could you give me the email address or the order number on your account, "
            "so I can look into it?",
            "Thank you, I have found your account. The problem started after the last update, "
            "and I have just reset that setting on our side.",
            "Could you try again now and tell me whether it works?",
            "Great, I'm glad that fixed it. Is there anything else I can help you with?",
        ),
        fallback="I have added that to your case notes. Is there anything else I can help you with?",
        farewell="Thanks for calling support. Have a great day, goodbye!",
        pitch_hz=165.0,
        topics=(
            (
                re.compile(r"\b(order|delivery|delivered|package|parcel|shipping|shipment)\b", re.I),
                "I'm sorry about your order. Could you give me the order number, so I can see where it is?",
            ),
            (
                re.compile(r"\b(password|log ?in|sign ?in|locked out)\b", re.I),
                "I can help with that. I have just sent a password reset link to the email address on your "
                "account; it stays valid for one hour.",
            ),
            (
                re.compile(r"\b(refund|charged?|invoice|billing|bill)\b", re.I),
                "Let me look at your billing. Refunds go back to the original payment method within five to seven "
                "business days.",
            ),
        ),
    ),
    "sales": SimulatedAgent(
        agent_type="sales",
        name="Alex",
        first_message=(
            "Hello! This is Alex from the sales team, your simulated sales agent. "
            "Are you looking for a plan for yourself or for your team?"
        ),
        replies=(
            "Got it. Roughly how many people would be using it?",
            "For a team that size the Business plan is usually the best fit: "
            "it includes shared workspaces, priority support and volume pricing.",
            "I can set up a fourteen day free trial for you right now. Shall I send the details by email?",
            "Perfect, the details are on their way. Is there anything else you would like to know?",
        ),
        fallback="That's a great question; I'll include the answer in the email I send you. Anything else?",
        farewell="Thanks for your time, it was a pleasure talking to you. Goodbye!",
        pitch_hz=230.0,
        topics=(
            (
                re.compile(r"\b(prices?|pricing|costs?|how much|expensive|cheap)\b", re.I),
                "The Starter plan is nineteen dollars per user a month, and Business is forty-nine, with volume "
                "pricing from twenty seats. Which sounds closer to what you need?",
            ),
            (
                re.compile(r"\b(trial|demo)\b", re.I),
                "I can set up a fourteen day free trial right now, no card needed. Shall I send the details by email?",
            ),
            (
                re.compile(r"\b(discounts?|deal|annual|yearly)\b", re.I),
                "Paying yearly saves two months, and teams of more than fifty get a further ten percent off.",
            ),
        ),
    ),
}


def simulated_agent(agent_type: str) -> SimulatedAgent:
    try:
        return AGENTS[agent_type]
    except KeyError:
        raise ValueError(f"unknown agent type {agent_type!r}; expected one of {sorted(AGENTS)}") from None


def simulator_agent_id(agent_type: str) -> str:
    """The agent id the simulator answers to when no real agent id is configured."""
    simulated_agent(agent_type)
    return f"sim_{agent_type}_agent"


def fill_dynamic_variables(text: str, variables: dict[str, Any]) -> str:
    """Replace ``{{name}}`` with the client's dynamic variable, as ElevenLabs does; unknown names stay as written."""

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        return str(variables[name]) if name in variables else match.group(0)

    return _VARIABLE.sub(value, text)


# --- Credentials ---------------------------------------------------------------------------


def _signature(agent_id: str, conversation_id: str, expires: str) -> str:
    # JSON of the list keeps the fields apart whatever characters they hold.
    message = json.dumps([agent_id, conversation_id, expires])
    return salted_hmac(_SIGNATURE_SALT, message, algorithm="sha256").hexdigest()


def simulator_mint_signed_url(*, session, agent_id: str, agent_type: str, text_only: bool) -> dict:
    """Create a conversation waiting for its client and the signed URL that opens it.

    The URL and the post-call webhook's target are on PUBLIC_BASE_URL (:func:`require_public_base_url`).
    Returns ``{"signed_url", "conversation_id", "expires_at"}``.
    """
    simulated_agent(agent_type)
    http_base = require_public_base_url()
    ws_base = websocket_base(http_base)

    conversation_id = f"sim_conv_{uuid.uuid4().hex}"
    # Whole seconds: the URL carries the expiry, and the row must agree with it exactly.
    expires_at = (timezone.now() + SIGNED_URL_LIFETIME).replace(microsecond=0)
    expires = str(int(expires_at.timestamp()))
    SimulatedConversation.objects.create(
        conversation_id=conversation_id,
        agent_id=agent_id,
        agent_type=agent_type,
        session=session,
        expires_at=expires_at,
        text_only=text_only,
        http_base=http_base,
    )
    query = urlencode(
        {
            "agent_id": agent_id,
            "conversation_id": conversation_id,
            "expires": expires,
            SIGNATURE_PARAM: _signature(agent_id, conversation_id, expires),
        }
    )
    return {
        "signed_url": f"{ws_base}/{SIMULATOR_PATH}?{query}",
        "conversation_id": conversation_id,
        "expires_at": expires_at,
    }


def simulator_verify_signed_url(query_string: str | bytes, *, now: float | None = None) -> tuple[str, str]:
    """Check a signed URL's query string; return its ``(agent_id, conversation_id)``.

    Only the signed parameters are looked at: clients append their own
    (``source=js_sdk&version=...``). Each signed parameter must appear exactly once,
    so that nobody can smuggle in a second value the server might read instead.
    Raises :class:`SignedUrlRefused`.
    """
    if isinstance(query_string, bytes):
        query_string = query_string.decode("latin-1")
    params = parse_qs(query_string, keep_blank_values=True)
    values: dict[str, str] = {}
    for name in (*SIGNED_PARAMS, SIGNATURE_PARAM):
        found = params.get(name, [])
        if len(found) != 1 or not found[0]:
            raise SignedUrlRefused("Invalid conversation signature")
        values[name] = found[0]
    expected = _signature(values["agent_id"], values["conversation_id"], values["expires"])
    if not hmac.compare_digest(expected.encode(), values[SIGNATURE_PARAM].encode()):
        raise SignedUrlRefused("Invalid conversation signature")
    if not values["expires"].isdigit() or int(values["expires"]) <= (time.time() if now is None else now):
        raise SignedUrlRefused("Signed URL has expired")
    return values["agent_id"], values["conversation_id"]


def simulator_claim_conversation(*, agent_id: str, conversation_id: str) -> SimulatedConversation:
    """Move the conversation from initiated to in-progress: a signed URL opens one conversation, once.

    One conditional UPDATE decides, so two sockets racing with the same URL get one winner.
    """
    now = timezone.now()
    claimed = SimulatedConversation.objects.filter(
        pk=conversation_id,
        agent_id=agent_id,
        status=SimulatedConversation.Status.INITIATED,
        expires_at__gt=now,
    ).update(status=SimulatedConversation.Status.IN_PROGRESS, connected_at=now)
    conversation = SimulatedConversation.objects.filter(pk=conversation_id).first()
    if claimed == 1 and conversation is not None:
        return conversation
    if conversation is None or conversation.agent_id != agent_id:
        raise SignedUrlRefused("Unknown conversation")
    if conversation.status != SimulatedConversation.Status.INITIATED:
        raise SignedUrlRefused("Signed URL has already been used")
    raise SignedUrlRefused("Signed URL has expired")


def simulator_open_conversation(*, query_string: str | bytes) -> SimulatedConversation:
    """Verify a connection's signed URL and claim its conversation. Raises :class:`SignedUrlRefused`."""
    agent_id, conversation_id = simulator_verify_signed_url(query_string)
    return simulator_claim_conversation(agent_id=agent_id, conversation_id=conversation_id)


# --- The agent's voice and the user's speech ----------------------------------------------------


def count_words(text: str) -> int:
    return len(_WORD.findall(text))


def speech_duration_secs(text: str) -> float:
    """How long ``text`` takes to say at 150 words a minute (at least one word's time)."""
    return max(1, count_words(text)) * SECONDS_PER_WORD


@cache
def _syllable(pitch_hz: float) -> bytes:
    """One word's sound: a soft voiced burst with a falling pitch, then a short pause (PCM16 LE)."""
    total = round(SAMPLE_RATE * SECONDS_PER_WORD)
    voiced = int(total * 0.75)
    samples = array("h", bytes(2 * total))
    phase = 0.0
    for i in range(voiced):
        progress = i / voiced
        frequency = pitch_hz * (1.08 - 0.16 * progress)  # a gentle fall, as a spoken syllable has
        phase += 2 * math.pi * frequency / SAMPLE_RATE
        envelope = math.sin(math.pi * progress) ** 2
        wave = math.sin(phase) + 0.35 * math.sin(2 * phase) + 0.15 * math.sin(3 * phase)
        samples[i] = int(VOICE_AMPLITUDE * envelope * wave / 1.5)
    if sys.byteorder == "big":
        samples.byteswap()
    return samples.tobytes()


def synthesize_speech(text: str, *, pitch_hz: float) -> bytes:
    """PCM16 mono 16 kHz for ``text``: one syllable per word, its pitch varied by the word so it isn't a beep."""
    words = _WORD.findall(text) or ["…"]
    steps = (1.0, 1.12, 0.93)
    return b"".join(_syllable(round(pitch_hz * steps[len(word) % 3], 1)) for word in words)


def pcm_chunks(pcm: bytes, size: int = AUDIO_CHUNK_BYTES) -> list[bytes]:
    return [pcm[start : start + size] for start in range(0, len(pcm), size)]


@dataclass(frozen=True)
class SpokenAudio:
    """A line as the agent says it: base64 audio events' payloads and how long they play."""

    chunks: tuple[str, ...]
    seconds: float

    @property
    def size(self) -> int:
        return sum(len(chunk) for chunk in self.chunks)


class SpokenAudioCache:
    """The most recently spoken lines' encoded audio, bounded by the characters it holds.

    An agent's audio is a pure function of (text, pitch), and the agents mostly say
    their fixed lines, so fifty callers greeted at once share one encoding. Bounded
    by size, not count: a client's first_message override can be 2,000 characters
    (about 6 MB of base64), and lines larger than a quarter of the budget are not kept.
    """

    def __init__(self, max_chars: int):
        self.max_chars = max_chars
        self._lines: OrderedDict[tuple[str, float], SpokenAudio] = OrderedDict()
        self._chars = 0
        self._lock = threading.Lock()  # speech may be encoded in worker threads

    def cached(self, text: str, pitch_hz: float) -> SpokenAudio | None:
        key = (text, pitch_hz)
        with self._lock:
            if (audio := self._lines.get(key)) is not None:
                self._lines.move_to_end(key)
            return audio

    def get(self, text: str, pitch_hz: float) -> SpokenAudio:
        if (audio := self.cached(text, pitch_hz)) is not None:
            return audio
        key = (text, pitch_hz)
        audio = _encode_speech(text, pitch_hz)
        if audio.size <= self.max_chars // 4:
            with self._lock:
                if key not in self._lines:
                    self._lines[key] = audio
                    self._chars += audio.size
                while self._chars > self.max_chars:
                    _key, dropped = self._lines.popitem(last=False)
                    self._chars -= dropped.size
        return audio

    def clear(self) -> None:
        with self._lock:
            self._lines.clear()
            self._chars = 0


def _encode_speech(text: str, pitch_hz: float) -> SpokenAudio:
    pcm = synthesize_speech(text, pitch_hz=pitch_hz)
    chunks = tuple(base64.b64encode(chunk).decode("ascii") for chunk in pcm_chunks(pcm))
    return SpokenAudio(chunks=chunks, seconds=len(pcm) / BYTES_PER_SECOND)


# Every line of both scripted agents takes about 6 MB; twice that leaves room for overrides and filled-in variables.
SPOKEN_AUDIO_CACHE_CHARS = 16 * 1024 * 1024
_spoken_audio = SpokenAudioCache(SPOKEN_AUDIO_CACHE_CHARS)


def spoken_audio(text: str, *, pitch_hz: float) -> SpokenAudio:
    """The audio events' payloads for the agent saying ``text``: encoded once, then served from the cache."""
    return _spoken_audio.get(text, pitch_hz)


def spoken_audio_if_cached(text: str, *, pitch_hz: float) -> SpokenAudio | None:
    """The cached audio for ``text``, or None: lets the caller encode a new line off the event loop."""
    return _spoken_audio.cached(text, pitch_hz)


def pcm_rms(pcm: bytes) -> float:
    """Root-mean-square level of PCM16 little-endian samples (0 to 32768)."""
    samples = array("h")
    samples.frombytes(pcm[: len(pcm) - len(pcm) % 2])
    if not samples:
        return 0.0
    if sys.byteorder == "big":
        samples.byteswap()
    # sumprod runs in C: the microphone sends 31 chunks a second per conversation, and this runs on the event loop.
    return math.sqrt(math.sumprod(samples, samples) / len(samples))


class SpeechDetector:
    """Finds where the user starts and stops talking in the microphone stream, by loudness.

    Time is counted in samples received, not wall-clock time: the browser streams
    ~32 ms chunks continuously, silence included, so the stream is its own clock.
    """

    STARTED = "started"
    ENDED = "ended"

    def __init__(self, *, threshold: float, min_speech_secs: float, end_silence_secs: float):
        self.threshold = threshold
        self.min_speech = round(min_speech_secs * SAMPLE_RATE)
        self.end_silence = round(end_silence_secs * SAMPLE_RATE)
        self.in_speech = False
        self._speech = 0
        self._silence = 0

    def feed(self, pcm: bytes) -> str | None:
        """Take one chunk; return STARTED when speech begins, ENDED when it has been quiet long enough after it."""
        samples = len(pcm) // 2
        if pcm_rms(pcm) >= self.threshold:
            self._silence = 0
            self._speech += samples
            if not self.in_speech and self._speech >= self.min_speech:
                self.in_speech = True
                return self.STARTED
            return None
        if not self.in_speech:
            self._speech = 0  # a click or a breath, not the start of speech
            return None
        self._silence += samples
        if self._silence >= self.end_silence:
            self.in_speech = False
            self._speech = self._silence = 0
            return self.ENDED
        return None


# --- Conversation details ----------------------------------------------------------------------


def transcript_item(
    *, role: str, message: str, time_in_call_secs: int, source_medium: str, interrupted: bool = False
) -> dict[str, Any]:
    """One transcript entry in ElevenLabs' shape."""
    return {
        "role": role,
        "message": message,
        "time_in_call_secs": time_in_call_secs,
        "tool_calls": [],
        "tool_results": [],
        "feedback": None,
        "interrupted": interrupted,
        "original_message": None,
        "source_medium": source_medium,
        "conversation_turn_metrics": None,
    }


def _unix(moment: datetime | None) -> int | None:
    return int(moment.timestamp()) if moment else None


def _analysis(conversation: SimulatedConversation) -> dict[str, Any]:
    agent = simulated_agent(conversation.agent_type)
    user_turns = sum(1 for item in conversation.transcript if item.get("role") == "user")
    agent_turns = sum(1 for item in conversation.transcript if item.get("role") == "agent")
    engaged = "success" if user_turns else "failure"
    reason = conversation.termination_reason or "still in progress"
    return {
        "call_successful": engaged,
        "call_summary_title": f"Simulated {conversation.agent_type} call",
        "transcript_summary": (
            f"A customer talked with {agent.name}, the simulated {conversation.agent_type} agent: "
            f"{user_turns} customer and {agent_turns} agent turns. The call ended: {reason}."
        ),
        "evaluation_criteria_results": {
            "customer_engaged": {
                "criteria_id": "customer_engaged",
                "result": engaged,
                "rationale": f"The customer sent {user_turns} message(s).",
            }
        },
        "data_collection_results": {
            "agent_type": {
                "data_collection_id": "agent_type",
                "value": conversation.agent_type,
                "rationale": "Set by the simulated agent.",
            }
        },
    }


def simulator_get_conversation(conversation_id: str) -> dict[str, Any]:
    """The conversation as ``GET /v1/convai/conversations/{id}`` returns it.

    Like ElevenLabs, the transcript is there once the conversation has ended.
    Raises ``SimulatedConversation.DoesNotExist`` for an unknown id.
    """
    conversation = SimulatedConversation.objects.get(pk=conversation_id)
    client_data = conversation.client_data or {}
    override = client_data.get("conversation_config_override") or {}
    language = (override.get("agent") or {}).get("language") or "en"
    started = conversation.connected_at
    ended = conversation.ended_at
    if started is None:
        duration = 0
    else:
        duration = max(0, int(((ended or timezone.now()) - started).total_seconds()))
    return {
        "conversation_id": conversation.conversation_id,
        "agent_id": conversation.agent_id,
        "status": conversation.status,
        "user_id": client_data.get("user_id"),
        "transcript": list(conversation.transcript),
        "metadata": {
            "start_time_unix_secs": _unix(started or conversation.created_at),
            "call_duration_secs": duration,
            "cost": 0,
            "termination_reason": conversation.termination_reason,
            "error": None,
            "main_language": language,
            "phone_call": None,
        },
        "analysis": _analysis(conversation) if conversation.status == SimulatedConversation.Status.DONE else None,
        "conversation_initiation_client_data": client_data or None,
        "has_audio": False,
        "has_user_audio": False,
        "has_response_audio": False,
    }


def simulator_finish_conversation(
    *,
    conversation_id: str,
    transcript: list[dict[str, Any]],
    termination_reason: str,
    client_data: dict[str, Any],
    text_only: bool,
) -> bool:
    """Store the ended conversation (status done). Returns False if it had already ended."""
    finished = (
        SimulatedConversation.objects.filter(pk=conversation_id)
        .exclude(status__in=[SimulatedConversation.Status.DONE, SimulatedConversation.Status.FAILED])
        .update(
            status=SimulatedConversation.Status.DONE,
            ended_at=timezone.now(),
            transcript=transcript,
            termination_reason=termination_reason[:255],
            client_data=client_data,
            text_only=text_only,
        )
    )
    return finished == 1


# --- The post-call webhook ------------------------------------------------------------------------


def post_call_envelope(conversation_id: str) -> dict[str, Any]:
    return {
        "type": "post_call_transcription",
        "event_timestamp": int(time.time()),
        "data": simulator_get_conversation(conversation_id),
    }


def simulator_send_post_call_webhook(*, conversation_id: str) -> bool:
    """POST the signed ``post_call_transcription`` webhook to our own endpoint, as ElevenLabs would.

    Failures are logged, never raised: like ElevenLabs, the sender gives up and the
    reconciler can still fetch the conversation. Only a 200 counts as delivered.
    """
    conversation = SimulatedConversation.objects.get(pk=conversation_id)
    if not conversation.http_base:
        logger.warning("simulated conversation %s has no webhook address; nothing sent", conversation_id)
        return False
    body = json.dumps(post_call_envelope(conversation_id), separators=(",", ":")).encode()
    url = f"{conversation.http_base}{WEBHOOK_PATH}"
    headers = {
        "Content-Type": "application/json",
        SIGNATURE_HEADER: sign(body, secret=simulator_signing_secret()),
        "User-Agent": "voiceagent-simulated-agent",
    }
    try:
        # No redirects: a redirected POST turns into a GET and the webhook would be lost quietly.
        response = requests.post(url, data=body, headers=headers, timeout=WEBHOOK_TIMEOUT, allow_redirects=False)
    except requests.RequestException as exc:
        logger.warning("post-call webhook for %s to %s failed: %s", conversation_id, url, type(exc).__name__)
        return False
    if response.status_code != 200:
        logger.warning(
            "post-call webhook for %s to %s answered %s: %s",
            conversation_id,
            url,
            response.status_code,
            response.text[:200],
        )
        return False
    SimulatedConversation.objects.filter(pk=conversation_id).update(webhook_sent_at=timezone.now())
    logger.info("post-call webhook for %s delivered to %s", conversation_id, url)
    return True
