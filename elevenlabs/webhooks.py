"""ElevenLabs' webhook signature: ``ElevenLabs-Signature: t=<unix secs>,v0=<hex>``.

``v0`` is the hex HMAC-SHA256 of ``f"{t}.{raw_body}"`` under the webhook's secret.
The body of a ``post_call_audio`` delivery can be tens of megabytes, so the MAC is
computed chunk by chunk while the body is copied to a spool file: the raw body is
never held in memory whole. The header is checked (shape and freshness) before a
single byte of the body is read, so a stale or malformed request costs nothing.

The simulated agent signs its own webhooks with :func:`sign` and :func:`signing_secret`.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import IO, Protocol

from django.conf import settings

SIGNATURE_HEADER = "ElevenLabs-Signature"
# ElevenLabs' own helpers refuse signatures older than 30 minutes; they have no
# future bound, but a timestamp far ahead can only be a forged or broken clock.
MAX_AGE_SECONDS = 30 * 60
MAX_FUTURE_SECONDS = 5 * 60
# More v0 values than this is not a secret rotation, it is someone guessing.
MAX_SIGNATURES = 8
MAX_HEADER_LENGTH = 1024
READ_CHUNK_BYTES = 64 * 1024

_HEX_SHA256 = re.compile(r"[0-9a-fA-F]{64}")
_DERIVATION_LABEL = b"voiceagent.elevenlabs.simulated-webhook-secret.v1"


class SignatureError(Exception):
    """The delivery is not signed by the holder of our secret (or not recently)."""

    def __init__(self, reason: str):
        self.reason = reason
        super().__init__(reason)


class BodyTooLarge(Exception):
    """The body is larger than we accept for a webhook."""

    def __init__(self, limit: int):
        self.limit = limit
        super().__init__(f"body exceeds {limit} bytes")


class Readable(Protocol):
    def read(self, size: int = ..., /) -> bytes: ...


@dataclass(frozen=True)
class SignedBody:
    """What we know about a verified body that now sits in the spool file."""

    timestamp: int
    size: int
    sha256: str


def signing_secret() -> str:
    """The secret webhooks must be signed with; "" when none is configured (then nothing is accepted).

    In simulation mode without a configured secret, the simulated agent still has to
    sign its webhooks to our own endpoint: both sides derive the same secret from
    SECRET_KEY. It is an HMAC of a fixed label, so it reveals nothing of SECRET_KEY.
    """
    configured = (getattr(settings, "ELEVENLABS_WEBHOOK_SECRET", "") or "").strip()
    if configured:
        return configured
    if getattr(settings, "SIMULATION_MODE", False) and settings.SECRET_KEY:
        return hmac.new(settings.SECRET_KEY.encode(), _DERIVATION_LABEL, hashlib.sha256).hexdigest()
    return ""


def _mac(secret: str, timestamp: str) -> hmac.HMAC:
    mac = hmac.new(secret.encode(), digestmod=hashlib.sha256)
    mac.update(f"{timestamp}.".encode())
    return mac


def sign(body: bytes, *, secret: str, timestamp: int | None = None) -> str:
    """The ``ElevenLabs-Signature`` header value for ``body``, as ElevenLabs would send it."""
    if not secret:
        raise ValueError("cannot sign with an empty secret")
    t = str(int(time.time()) if timestamp is None else int(timestamp))
    mac = _mac(secret, t)
    mac.update(body)
    return f"t={t},v0={mac.hexdigest()}"


def parse_signature_header(header: str | None) -> tuple[str, list[str]]:
    """Split the header into its timestamp (as sent) and its v0 signatures, refusing any other shape."""
    if not header or not header.strip():
        raise SignatureError("missing signature header")
    if len(header) > MAX_HEADER_LENGTH:
        raise SignatureError("malformed signature header")
    timestamp: str | None = None
    signatures: list[str] = []
    for part in header.split(","):
        key, sep, value = part.strip().partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key or not value:
            raise SignatureError("malformed signature header")
        if key == "t":
            if timestamp is not None or not value.isascii() or not value.isdigit():
                raise SignatureError("malformed signature header")
            timestamp = value
        elif key == "v0":
            if not _HEX_SHA256.fullmatch(value):
                raise SignatureError("malformed signature header")
            signatures.append(value.lower())
        # Other schemes (v1=...) may appear one day; they are not ours to check.
    if timestamp is None or not signatures or len(signatures) > MAX_SIGNATURES:
        raise SignatureError("malformed signature header")
    return timestamp, signatures


def verify_signature(
    *,
    header: str | None,
    secret: str,
    body: bytes | None = None,
    chunks: Iterable[bytes] | None = None,
    now: float | None = None,
) -> int:
    """Check ``header`` against the body (``body`` whole, or ``chunks`` as they are read); return its timestamp.

    The header's shape and age are checked before ``chunks`` is consumed. Any one of
    several ``v0`` values may match (ElevenLabs may send more than one while a secret
    is rotated). Raises :class:`SignatureError` with a short reason otherwise.
    """
    if (body is None) == (chunks is None):
        raise TypeError("pass exactly one of body or chunks")
    if not secret:
        raise SignatureError("no signing secret configured")
    raw_timestamp, signatures = parse_signature_header(header)
    timestamp = int(raw_timestamp)
    current = time.time() if now is None else now
    if current - timestamp > MAX_AGE_SECONDS:
        raise SignatureError("signature timestamp too old")
    if timestamp - current > MAX_FUTURE_SECONDS:
        raise SignatureError("signature timestamp in the future")
    # The MAC covers the timestamp exactly as sent ("0123" and "123" sign differently).
    mac = _mac(secret, raw_timestamp)
    for chunk in [body] if body is not None else chunks:
        mac.update(chunk)
    expected = mac.hexdigest()
    # Compare against every candidate, without stopping early, in constant time each.
    matched = False
    for candidate in signatures:
        matched |= hmac.compare_digest(expected, candidate)
    if not matched:
        raise SignatureError("signature mismatch")
    return timestamp


def _copy_in_chunks(stream: Readable, spool: IO[bytes], digest, *, max_bytes: int) -> Iterator[bytes]:
    total = 0
    while chunk := stream.read(READ_CHUNK_BYTES):
        total += len(chunk)
        if total > max_bytes:
            raise BodyTooLarge(max_bytes)
        spool.write(chunk)
        digest.update(chunk)
        yield chunk


def spool_signed_body(
    *,
    stream: Readable,
    header: str | None,
    secret: str,
    spool: IO[bytes],
    max_bytes: int,
    now: float | None = None,
) -> SignedBody:
    """Copy the request body from ``stream`` to ``spool`` while verifying its signature.

    On success ``spool`` is rewound to the start of the body. Raises
    :class:`SignatureError` or :class:`BodyTooLarge`; the spool's content is then garbage.
    """
    digest = hashlib.sha256()
    size_before = spool.tell()
    timestamp = verify_signature(
        header=header,
        secret=secret,
        chunks=_copy_in_chunks(stream, spool, digest, max_bytes=max_bytes),
        now=now,
    )
    size = spool.tell() - size_before
    spool.seek(size_before)
    return SignedBody(timestamp=timestamp, size=size, sha256=digest.hexdigest())
