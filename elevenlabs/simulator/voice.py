"""The simulated agent's voice and its ear for the user's speech.

The "voice" is a quiet tone, one syllable-like burst per word at 150 words a
minute, so that a browser plays audio for as long as the words would take to
say. The ear is a loudness detector over the microphone's PCM stream.
"""

from __future__ import annotations

import base64
import math
import re
import sys
import threading
from array import array
from collections import OrderedDict
from dataclasses import dataclass
from functools import cache

AUDIO_FORMAT = "pcm_16000"
SAMPLE_RATE = 16000
BYTES_PER_SECOND = SAMPLE_RATE * 2  # 16-bit mono
WORDS_PER_MINUTE = 150
SECONDS_PER_WORD = 60 / WORDS_PER_MINUTE
AUDIO_CHUNK_BYTES = BYTES_PER_SECOND // 4  # a quarter second per audio event
# Quiet: peaks around -20 dBFS, so the tone never startles anyone wearing headphones.
VOICE_AMPLITUDE = 3000

_WORD = re.compile(r"[\w'’]+")


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
