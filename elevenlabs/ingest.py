"""What a verified post-call webhook delivery does: the business rules behind POST /elevenlabs/webhook.

Every accepted delivery leaves one :class:`WebhookDelivery` row. The ledger row is
inserted *before* the delivery touches a session, inside the same transaction, and
the partial unique constraint ``webhook_once_per_conversation`` lets one
processed-or-unmatched row exist per (event type, conversation). So the same
delivery arriving twice, even at the same moment in two workers, is applied once;
the loser's insert fails and it is recorded as a duplicate instead.

A delivery for a conversation no session has claimed yet is kept as ``unmatched``
(audio goes to MEDIA_ROOT/pending-audio/) and applied by
:func:`webhook_attach_pending` once a session claims the conversation.

Memory: the body is parsed from the spool file with ijson, so the only large
object in memory is the base64 audio string, which is decoded slice by slice
into a temporary file; the decoded audio never sits in memory whole.
"""

from __future__ import annotations

import binascii
import logging
import tempfile
from dataclasses import dataclass, field
from typing import IO, Any

import ijson
from django.conf import settings
from django.core.files import File
from django.core.files.storage import Storage
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.text import get_valid_filename

from elevenlabs.models import WebhookDelivery, WebhookOutcome
from elevenlabs.postcall import post_call_problem
from elevenlabs.webhooks import SignedBody
from sessions.errors import InvalidTransition
from sessions.models import EventKind, VoiceSession
from sessions.redaction import redact_conversation
from sessions.services.lifecycle import (
    session_fail,
    session_record_event,
    session_store_audio,
    session_store_post_call,
)
from sessions.validators import CONVERSATION_ID
from voiceagent.faults import database_unavailable
from voiceagent.jsonlimits import JsonRejected, JsonShapeScanner, path_of_nul
from voiceagent.logging import session_context

logger = logging.getLogger("voiceagent.elevenlabs.webhook")

TRANSCRIPTION = "post_call_transcription"
AUDIO = "post_call_audio"
CALL_INITIATION_FAILURE = "call_initiation_failure"
KNOWN_TYPES = frozenset({TRANSCRIPTION, AUDIO, CALL_INITIATION_FAILURE})

PENDING_AUDIO_DIR = "pending-audio"
# A multiple of 4, so every slice but the last is whole base64 quanta without padding.
DECODE_SLICE_CHARS = 1024 * 1024
# Unknown event types are kept for inspection only while they are small.
MAX_IGNORED_PAYLOAD_BYTES = 256 * 1024


class MalformedDelivery(Exception):
    """A correctly signed body that is not a delivery we can use (answered 400; the ledger notes it as malformed)."""

    def __init__(self, message: str, *, event_type: str = "", conversation_id: str = ""):
        self.event_type = event_type
        self.conversation_id = conversation_id
        super().__init__(message)


class NotASimulatedConversation(Exception):
    """A delivery signed with the simulated agent's key for a conversation no simulated session holds."""

    def __init__(self, conversation_id: str):
        self.conversation_id = conversation_id
        super().__init__("Signed by the simulated agent, but the conversation is not a simulated session's.")


class DeliveryProcessingFailed(Exception):
    """Applying a delivery failed unexpectedly; it was rolled back and noted in the ledger (answered 500)."""

    def __init__(self, delivery: WebhookDelivery):
        self.delivery = delivery
        super().__init__(delivery.error)


@dataclass
class Envelope:
    event_type: str
    event_timestamp: int | None
    conversation_id: str
    agent_id: str
    # The event's data without full_audio: what the ledger row keeps.
    data: dict[str, Any]
    audio: IO[bytes] | None = field(default=None, repr=False)
    audio_bytes: int = 0


def _audio_storage() -> Storage:
    return VoiceSession._meta.get_field("audio").storage


def _short_str(value: Any, *, name: str, max_length: int, required: bool) -> str:
    if value is None or value == "":
        if required:
            raise MalformedDelivery(f"{name} is missing.")
        return ""
    if not isinstance(value, str) or len(value) > max_length:
        raise MalformedDelivery(f"{name} must be a string of at most {max_length} characters.")
    return value


def _conversation_id(value: Any, *, required: bool) -> str:
    conversation_id = _short_str(value, name="data.conversation_id", max_length=128, required=required)
    # It names files (audio) and is matched against sessions: an id-shaped token only.
    if conversation_id and not CONVERSATION_ID.fullmatch(conversation_id):
        raise MalformedDelivery("data.conversation_id must be letters, digits and . _ : - only.")
    return conversation_id


def _decode_audio(encoded: Any, out: IO[bytes]) -> int:
    """Decode base64 ``encoded`` into ``out`` slice by slice; return the decoded size."""
    if not isinstance(encoded, str) or not encoded:
        raise MalformedDelivery("data.full_audio must be a non-empty base64 string.")
    total = 0
    length = len(encoded)
    for start in range(0, length, DECODE_SLICE_CHARS):
        piece = encoded[start : start + DECODE_SLICE_CHARS]
        try:
            if start + DECODE_SLICE_CHARS < length and piece.endswith("="):
                raise ValueError("padding before the end")  # each slice alone would decode; the whole would not
            chunk = binascii.a2b_base64(piece, strict_mode=True)
        except (binascii.Error, ValueError):
            raise MalformedDelivery("data.full_audio is not valid base64.")
        out.write(chunk)
        total += len(chunk)
    out.seek(0)
    return total


def _read_size(body_bytes: int) -> int:
    """How much ijson reads at a time: about an eighth of the body.

    yajl re-lexes a string token from its start each time a read ends inside it
    (lloyd/yajl#202), so a 27 MB base64 string read 64 KiB at a time takes
    seconds (quadratic); in eight reads it takes tens of milliseconds.
    """
    return min(max(body_bytes // 8, 64 * 1024), 32 * 1024 * 1024)


def parse_delivery(body: IO[bytes], *, body_bytes: int) -> Envelope:
    """Read the envelope ``{type, event_timestamp, data}`` from ``body``; audio is decoded to a temp file.

    The caller owns ``envelope.audio`` and must close it. Raises :class:`MalformedDelivery`.
    """
    scanner = _check_shape(body, body_bytes=body_bytes)
    fields: dict[str, Any] = {}
    try:
        # kvitems streams the top-level members; only full_audio is large, and it is a single str.
        for key, value in ijson.kvitems(body, "", use_float=True, buf_size=_read_size(body_bytes)):
            fields[key] = value
    except (ijson.JSONError, UnicodeDecodeError, ValueError) as exc:
        if "overflow" in str(exc):  # yajl refuses integers past 64 bits and floats past double range
            raise MalformedDelivery("A number is out of range: integers must fit in 64 bits.")
        raise MalformedDelivery("Body is not valid JSON.")
    if scanner.saw_nul_escape and (where := path_of_nul(fields)) is not None:
        # PostgreSQL's jsonb cannot hold U+0000; nothing we keep may contain it.
        raise MalformedDelivery(f"{where or 'a key'} contains the NUL character (\\u0000).")
    event_type = _short_str(fields.get("type"), name="type", max_length=64, required=True)
    known = event_type in KNOWN_TYPES
    data = fields.get("data")
    if not isinstance(data, dict):
        if known:
            raise MalformedDelivery("data must be an object.")
        data = {"data": data}
    event_timestamp = fields.get("event_timestamp")
    if event_timestamp is not None and (not isinstance(event_timestamp, int) or isinstance(event_timestamp, bool)):
        raise MalformedDelivery("event_timestamp must be a whole number of seconds.")
    envelope = Envelope(
        event_type=event_type,
        event_timestamp=event_timestamp,
        conversation_id=_conversation_id(data.get("conversation_id"), required=known),
        agent_id=_short_str(data.get("agent_id"), name="data.agent_id", max_length=128, required=False),
        data=data,
    )
    if event_type == TRANSCRIPTION:
        if problem := post_call_problem(data, prefix="data."):
            raise MalformedDelivery(problem, event_type=event_type, conversation_id=envelope.conversation_id)
    elif event_type == AUDIO:
        # Popped, so that once it is decoded nothing refers to the base64 string any more.
        encoded = data.pop("full_audio", None)
        audio = tempfile.TemporaryFile()
        try:
            envelope.audio_bytes = _decode_audio(encoded, audio)
        except BaseException:
            audio.close()
            raise
        del encoded
        envelope.audio = audio
        data["audio_bytes"] = envelope.audio_bytes
    elif event_type == CALL_INITIATION_FAILURE:
        _short_str(data.get("failure_reason"), name="data.failure_reason", max_length=255, required=False)
    elif body_bytes > MAX_IGNORED_PAYLOAD_BYTES:
        envelope.data = {"omitted": f"{body_bytes} bytes", "keys": sorted(str(k) for k in data)[:50]}
    return envelope


def _check_shape(body: IO[bytes], *, body_bytes: int) -> JsonShapeScanner:
    """Refuse a body nested too deep or holding too many values before ijson builds any of it.

    ijson's cost grows with depth times size (it builds each event's path), so a deep
    body would hold the GIL for minutes; the scan reads the spool once more in C-speed
    slices and rewinds it. A 50 MB audio body is one long string: a memchr per read.
    """
    scanner = JsonShapeScanner(max_depth=settings.JSON_MAX_DEPTH, max_items=settings.ELEVENLABS_WEBHOOK_MAX_JSON_ITEMS)
    start = body.tell()
    read_size = _read_size(body_bytes)
    try:
        while chunk := body.read(read_size):
            scanner.feed(chunk)
    except JsonRejected as exc:
        raise MalformedDelivery(exc.message)
    body.seek(start)
    return scanner


def _record_malformed(exc: MalformedDelivery, signed: SignedBody) -> WebhookDelivery:
    """Note a signed delivery we refused, with why; its content is not kept."""
    return WebhookDelivery.objects.create(
        event_type=exc.event_type[:64],
        conversation_id=exc.conversation_id,
        signature_timestamp=signed.timestamp,
        body_sha256=signed.sha256,
        body_bytes=signed.size,
        payload={},
        outcome=WebhookOutcome.MALFORMED,
        error=str(exc)[:1000],
        processed_at=timezone.now(),
    )


def webhook_ingest(*, body: IO[bytes], signed: SignedBody) -> WebhookDelivery:
    """Apply one verified delivery read from ``body``; return its ledger row.

    Raises :class:`MalformedDelivery` (noted in the ledger as malformed), :class:`NotASimulatedConversation`
    (nothing stored) or :class:`DeliveryProcessingFailed`.
    """
    try:
        envelope = parse_delivery(body, body_bytes=signed.size)
    except MalformedDelivery as exc:
        _record_malformed(exc, signed)
        raise
    if signed.by_simulator and not (
        envelope.conversation_id
        and VoiceSession.objects.filter(conversation_id=envelope.conversation_id, simulation=True).exists()
    ):
        if envelope.audio is not None:
            envelope.audio.close()
        raise NotASimulatedConversation(envelope.conversation_id)
    try:
        delivery = _record(envelope, signed)
    finally:
        if envelope.audio is not None:
            envelope.audio.close()
    if delivery.outcome == WebhookOutcome.UNMATCHED:
        # A session may have claimed the conversation while our transaction was open (and its
        # webhook_attach_pending ran before our row was visible): attach now so nothing is stranded.
        claimant = VoiceSession.objects.filter(conversation_id=delivery.conversation_id).first()
        if claimant is not None:
            webhook_attach_pending(session=claimant)
            delivery.refresh_from_db()
    with session_context(delivery.session_id):
        logger.info(
            "webhook %s conversation=%s outcome=%s bytes=%d%s",
            delivery.event_type,
            delivery.conversation_id or "-",
            delivery.outcome,
            signed.size,
            f" note={delivery.error}" if delivery.error else "",
        )
    return delivery


def _record(envelope: Envelope, signed: SignedBody) -> WebhookDelivery:
    ledger = {
        "event_type": envelope.event_type,
        "conversation_id": envelope.conversation_id,
        "agent_id": envelope.agent_id,
        "event_timestamp": envelope.event_timestamp,
        "signature_timestamp": signed.timestamp,
        "body_sha256": signed.sha256,
        "body_bytes": signed.size,
        "payload": envelope.data,
    }
    known = envelope.event_type in KNOWN_TYPES
    try:
        with transaction.atomic():
            session = (
                VoiceSession.objects.filter(conversation_id=envelope.conversation_id).first()
                if envelope.conversation_id
                else None
            )
            if not known:
                return WebhookDelivery.objects.create(
                    **ledger, session=session, outcome=WebhookOutcome.IGNORED, processed_at=timezone.now()
                )
            outcome = WebhookOutcome.PROCESSED if session else WebhookOutcome.UNMATCHED
            if session is not None and envelope.event_type == TRANSCRIPTION:
                # The transcript goes onto the session; the ledger keeps a summary, not a second copy.
                ledger["payload"] = transcription_summary(envelope.data)
            elif session is None:
                ledger["payload"] = _as_kept(envelope)
            try:
                with transaction.atomic():
                    delivery = WebhookDelivery.objects.create(**ledger, session=session, outcome=outcome)
            except IntegrityError:
                # Already processed (or parked as unmatched) by an earlier or concurrent delivery.
                return WebhookDelivery.objects.create(
                    **{**ledger, "payload": {}},
                    session=session,
                    outcome=WebhookOutcome.DUPLICATE,
                    processed_at=timezone.now(),
                )
            if session is not None:
                _apply(delivery, session, audio=envelope.audio, data=envelope.data)
            elif envelope.audio is not None:
                name = _audio_storage().save(
                    f"{PENDING_AUDIO_DIR}/{get_valid_filename(envelope.conversation_id)}.mp3", File(envelope.audio)
                )
                delivery.payload = {**delivery.payload, "audio_path": name}
                delivery.save(update_fields=["payload"])
            return delivery
    except Exception as exc:
        if database_unavailable(exc):
            # Locked or unreachable: nothing was stored, and noting the attempt would wait as long again.
            # The view answers 503 and ElevenLabs sends the delivery again.
            raise
        logger.exception("webhook %s conversation=%s failed", envelope.event_type, envelope.conversation_id or "-")
        # Everything above was rolled back; note the attempt so an operator sees it. A retry may still succeed
        # because an ignored row does not count towards "once per conversation".
        failed = WebhookDelivery.objects.create(
            **{**ledger, "payload": {} if envelope.audio is not None else _as_kept(envelope)},
            outcome=WebhookOutcome.IGNORED,
            error=f"processing failed: {type(exc).__name__}",
        )
        raise DeliveryProcessingFailed(failed) from exc


def _as_kept(envelope: Envelope) -> dict[str, Any]:
    """The event's data as the ledger may keep it: a transcription waiting for its session (or one whose
    processing failed) is masked like a stored one when TRANSCRIPT_REDACTION is on."""
    if envelope.event_type == TRANSCRIPTION and settings.TRANSCRIPT_REDACTION:
        return redact_conversation(envelope.data).conversation
    return envelope.data


def transcription_summary(data: dict[str, Any]) -> dict[str, Any]:
    """What the ledger keeps of a transcription once it is stored on its session."""
    analysis = data.get("analysis") or {}
    return {
        "stored_on_session": True,
        "status": data.get("status"),
        "turns": len(data.get("transcript") or []),
        "call_successful": analysis.get("call_successful") if isinstance(analysis, dict) else None,
    }


def _apply(
    delivery: WebhookDelivery, session: VoiceSession, *, audio: IO[bytes] | None, data: dict[str, Any] | None = None
) -> None:
    """Apply ``delivery`` (``data``, by default its payload, and its audio file if any) to ``session``;
    mark it processed. Runs inside the caller's transaction.
    """
    data = delivery.payload if data is None else data
    with session_context(session.pk):
        if delivery.event_type == TRANSCRIPTION:
            session_store_post_call(session=session, conversation=data, source="webhook")
            delivery.payload = transcription_summary(data)
        elif delivery.event_type == AUDIO:
            stored = session_store_audio(
                session=session,
                content=audio if isinstance(audio, File) else File(audio),
                filename=f"{get_valid_filename(delivery.conversation_id)}.mp3",
                size=data.get("audio_bytes"),
            )
            delivery.payload = {**data, "audio_path": stored.audio.name}
        elif delivery.event_type == CALL_INITIATION_FAILURE:
            reason = data.get("failure_reason") or "unknown"
            try:
                session_fail(
                    session=session,
                    code=CALL_INITIATION_FAILURE,
                    message=f"ElevenLabs could not start the call: {reason}.",
                    payload={"failure_reason": reason, "source": "webhook"},
                )
            except InvalidTransition as exc:
                # The session already ended normally; keep the report on its timeline, change nothing else.
                session_record_event(
                    session=session, kind=EventKind.CALL_INITIATION_FAILURE, payload={"failure_reason": reason}
                )
                delivery.error = f"not marked failed: session is already {exc.current_status}"
    delivery.session = session
    delivery.outcome = WebhookOutcome.PROCESSED
    delivery.processed_at = timezone.now()
    delivery.save(update_fields=["session", "outcome", "processed_at", "payload", "error"])


def unmatched_delivery_before(conversation_id: str, moment) -> bool:
    """Whether a delivery for ``conversation_id`` has waited unclaimed since before ``moment``."""
    return WebhookDelivery.objects.filter(
        conversation_id=conversation_id, outcome=WebhookOutcome.UNMATCHED, received_at__lt=moment
    ).exists()


def webhook_attach_pending(*, session: VoiceSession) -> int:
    """Apply the unmatched deliveries for ``session.conversation_id``; return how many were applied.

    Call it once a session has claimed its conversation id. Safe to call repeatedly
    and concurrently: each delivery is applied once.
    """
    if not session.conversation_id:
        return 0
    pending = WebhookDelivery.objects.filter(
        conversation_id=session.conversation_id, outcome=WebhookOutcome.UNMATCHED
    ).order_by("received_at", "id")
    attached = 0
    for pk in list(pending.values_list("pk", flat=True)):
        storage = _audio_storage()
        pending_path = ""
        try:
            with transaction.atomic():
                delivery = (
                    WebhookDelivery.objects.select_for_update().filter(pk=pk, outcome=WebhookOutcome.UNMATCHED).first()
                )
                if delivery is None:  # attached meanwhile by another caller
                    continue
                current = VoiceSession.objects.get(pk=session.pk)
                pending_path = delivery.payload.get("audio_path", "") if delivery.event_type == AUDIO else ""
                if pending_path:
                    with storage.open(pending_path, "rb") as audio:
                        _apply(delivery, current, audio=audio)
                else:
                    _apply(delivery, current, audio=None)
        except Exception as exc:
            logger.exception("attaching webhook delivery %s to session %s failed", pk, session.pk)
            WebhookDelivery.objects.filter(pk=pk).update(error=f"attach failed: {type(exc).__name__}")
            continue
        if pending_path:
            storage.delete(pending_path)
        attached += 1
    if attached:
        with session_context(session.pk):
            logger.info("attached %d pending webhook deliveries for conversation %s", attached, session.conversation_id)
    return attached
