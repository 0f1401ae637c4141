"""ElevenLabs' webhook signature: ``ElevenLabs-Signature: t=<unix secs>,v0=<hex>``.

``v0`` is the hex HMAC-SHA256 of ``f"{t}.{raw_body}"`` under the webhook's secret.
The body of a ``post_call_audio`` delivery can be tens of megabytes, so the MAC is
computed chunk by chunk while the body is copied to a spool file: the raw body is
never held in memory whole. The header is checked (shape and freshness) before a
single byte of the body is read, so a stale or malformed request costs nothing.

The simulated agent signs its webhooks with a key of its own (:func:`simulator_signing_secret`,
derived from SECRET_KEY), never with ElevenLabs' secret: a simulated call, which anyone logged in
can start and script, must not yield a body signed with the secret real deliveries are trusted by.
Deliveries it signed are accepted only for simulated sessions' conversations (see ingest).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import IO, Protocol

from django.apps import apps
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
_DERIVATION_LABEL = b"voiceagent.elevenlabs.simulated-webhook-secret.v2"

# Who signed a delivery: the holder of ELEVENLABS_WEBHOOK_SECRET, or our own simulated agent.
ELEVENLABS = "elevenlabs"
SIMULATOR = "simulator"


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
    signed_by: str = ELEVENLABS

    @property
    def by_simulator(self) -> bool:
        return self.signed_by == SIMULATOR


def signing_secret() -> str:
    """ElevenLabs' webhook secret (ELEVENLABS_WEBHOOK_SECRET); "" when none is configured."""
    return (getattr(settings, "ELEVENLABS_WEBHOOK_SECRET", "") or "").strip()


def simulator_signing_secret() -> str:
    """The simulated agent's own signing key: an HMAC of a fixed label under SECRET_KEY, so it reveals
    nothing of SECRET_KEY, and both the simulator and the endpoint derive the same key."""
    return hmac.new(settings.SECRET_KEY.encode(), _DERIVATION_LABEL, hashlib.sha256).hexdigest()


def webhook_signers() -> dict[str, str]:
    """Every key a delivery may be signed with, by signer: ElevenLabs' when configured, and the simulator's
    when it is installed (without it, nothing here signs with its key)."""
    signers = {SIMULATOR: simulator_signing_secret()} if apps.is_installed("elevenlabs.simulator") else {}
    if secret := signing_secret():
        signers[ELEVENLABS] = secret
    return signers


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


def check_signature_header(header: str | None, *, now: float | None = None) -> tuple[str, list[str]]:
    """The header's timestamp (as sent) and v0 signatures, if it is well formed and fresh.

    Needs no body, so a missing, malformed or stale header can be refused before the body
    is read (the ASGI entry point does so). Raises :class:`SignatureError` otherwise.
    """
    raw_timestamp, signatures = parse_signature_header(header)
    timestamp = int(raw_timestamp)
    current = time.time() if now is None else now
    if current - timestamp > MAX_AGE_SECONDS:
        raise SignatureError("signature timestamp too old")
    if timestamp - current > MAX_FUTURE_SECONDS:
        raise SignatureError("signature timestamp in the future")
    return raw_timestamp, signatures


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
    if not secret:
        raise SignatureError("no signing secret configured")
    timestamp, _ = verify_signed_by(header=header, signers={ELEVENLABS: secret}, body=body, chunks=chunks, now=now)
    return timestamp


def verify_signed_by(
    *,
    header: str | None,
    signers: Mapping[str, str],
    body: bytes | None = None,
    chunks: Iterable[bytes] | None = None,
    now: float | None = None,
) -> tuple[int, str]:
    """Like :func:`verify_signature` with several keys: return the timestamp and which signer's key matched."""
    if (body is None) == (chunks is None):
        raise TypeError("pass exactly one of body or chunks")
    signers = {name: secret for name, secret in signers.items() if secret}
    if not signers:
        raise SignatureError("no signing secret configured")
    raw_timestamp, signatures = check_signature_header(header, now=now)
    timestamp = int(raw_timestamp)
    # The MAC covers the timestamp exactly as sent ("0123" and "123" sign differently).
    macs = {name: _mac(secret, raw_timestamp) for name, secret in signers.items()}
    for chunk in [body] if body is not None else chunks:
        for mac in macs.values():
            mac.update(chunk)
    # Compare every key against every candidate, without stopping early, in constant time each.
    matched_by = ""
    for name, mac in macs.items():
        expected = mac.hexdigest()
        matched = False
        for candidate in signatures:
            matched |= hmac.compare_digest(expected, candidate)
        if matched and not matched_by:
            matched_by = name
    if not matched_by:
        raise SignatureError("signature mismatch")
    return timestamp, matched_by


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
    signers: Mapping[str, str],
    spool: IO[bytes],
    max_bytes: int,
    now: float | None = None,
) -> SignedBody:
    """Copy the request body from ``stream`` to ``spool`` while verifying its signature by one of ``signers``.

    On success ``spool`` is rewound to the start of the body. Raises
    :class:`SignatureError` or :class:`BodyTooLarge`; the spool's content is then garbage.
    """
    digest = hashlib.sha256()
    size_before = spool.tell()
    timestamp, signed_by = verify_signed_by(
        header=header,
        signers=signers,
        chunks=_copy_in_chunks(stream, spool, digest, max_bytes=max_bytes),
        now=now,
    )
    size = spool.tell() - size_before
    spool.seek(size_before)
    return SignedBody(timestamp=timestamp, size=size, sha256=digest.hexdigest(), signed_by=signed_by)
