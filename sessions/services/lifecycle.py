"""A voice session's life: every write to a session goes through here.

Each transition runs in one transaction that locks the row (SELECT ... FOR
UPDATE on PostgreSQL; on SQLite the IMMEDIATE transaction mode takes the write
lock at BEGIN), re-reads the status, and either moves it along an allowed edge
and writes one timeline row, or returns the session unchanged when it is
already where the caller wants it. So concurrent "end" calls produce one end.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from sessions.errors import ConversationAlreadyClaimed, ConversationMismatch, InvalidTransition
from sessions.memory import PREVIOUS_CALL_COUNT, PREVIOUS_CALL_SUMMARY, memory_variables
from sessions.metrics import count_transition
from sessions.models import (
    TERMINAL_STATUSES,
    ConnectionType,
    Direction,
    EndReason,
    EventKind,
    SessionEvent,
    Status,
    VoiceSession,
)
from sessions.platform import session_runs_simulated
from sessions.post_call import POST_CALL_FACT_FIELDS, post_call_facts
from sessions.redaction import redact_conversation
from voiceagent.logging import session_context
from voiceagent.prepared_writes import PreparedInsert

logger = logging.getLogger("voiceagent.sessions")

ALLOWED = {
    Status.CREATED: {Status.CONNECTING, Status.ENDED, Status.FAILED},
    Status.CONNECTING: {Status.ACTIVE, Status.ENDED, Status.FAILED},
    Status.ACTIVE: {Status.ENDED, Status.FAILED},
    Status.ENDED: set(),
    Status.FAILED: set(),
}


# Every session and every transition writes these rows: their INSERTs are compiled once (issue 10).
_insert_session = PreparedInsert(VoiceSession)
_insert_event = PreparedInsert(SessionEvent)


def _lock(session: VoiceSession | str) -> VoiceSession:
    pk = session.pk if isinstance(session, VoiceSession) else session
    # The owner comes along (every response names it) but only the session row is locked.
    return VoiceSession.objects.select_related("created_by").select_for_update(of=("self",)).get(pk=pk)


def _move(
    session: VoiceSession,
    target: Status,
    *,
    kind: str,
    payload: dict[str, Any] | None = None,
    **fields: Any,
) -> VoiceSession:
    """Move a locked ``session`` to ``target`` and write its timeline row."""
    if target not in ALLOWED[Status(session.status)]:
        raise InvalidTransition(session, target)
    previous = session.status
    session.status = target
    for name, value in fields.items():
        setattr(session, name, value)
    session.save(update_fields=["status", "updated_at", *fields])
    _insert_event(
        SessionEvent(session=session, kind=kind, from_status=previous, to_status=target, payload=payload or {})
    )
    _log_after_commit(session.pk, "session %s -> %s (%s)", previous, target, kind)
    transaction.on_commit(partial(count_transition, previous, target, session.agent_type))
    return session


def _end(locked: VoiceSession, reason: str, payload: dict[str, Any] | None = None) -> VoiceSession:
    """Move a locked, open ``session`` to ended for ``reason`` (the one way every end is written)."""
    return _move(
        locked,
        Status.ENDED,
        kind=EventKind.ENDED,
        payload={"reason": reason, **(payload or {})},
        end_reason=reason,
        ended_at=timezone.now(),
    )


def _log_after_commit(session_id, message: str, *args: Any) -> None:
    """Log once the transaction commits: only what happened is logged, and the file lock the
    log handler takes is never held together with the database's write lock."""

    def log() -> None:
        with session_context(session_id):
            logger.info(message, *args)

    transaction.on_commit(log)


def session_create(
    *,
    customer_id: str,
    user=None,
    agent_type: str = "support",
    direction: str = "inbound",
    locale: str = "en-US",
    simulation: bool = False,
    dynamic_variables: dict[str, Any] | None = None,
    phone_number: str = "",
    idempotency_key: str | None = None,
) -> VoiceSession:
    """A new session; it runs against the simulated agent when asked, or when the platform says so by default.

    With CONVERSATION_MEMORY, its dynamic variables gain the customer's previous calls (sessions.memory;
    they take the place of variables of the same names the caller sent), noted on the timeline.
    """
    simulation = session_runs_simulated(simulation)
    # Read before the transaction, which then holds the write lock only for the inserts.
    remembered = memory_variables(customer_id=customer_id) if settings.CONVERSATION_MEMORY else None
    with transaction.atomic():
        session = _insert_session(
            VoiceSession(
                customer_id=customer_id,
                created_by=user if getattr(user, "is_authenticated", False) else None,
                agent_type=agent_type,
                direction=direction,
                locale=locale,
                simulation=simulation,
                dynamic_variables={**(dynamic_variables or {}), **(remembered or {})},
                phone_number=phone_number,
                idempotency_key=idempotency_key or None,
            )
        )
        if remembered is not None:
            # How much was remembered, not what: the summary itself is in the session's dynamic variables.
            session_record_event(
                session=session,
                kind=EventKind.MEMORY,
                payload={
                    PREVIOUS_CALL_COUNT: remembered[PREVIOUS_CALL_COUNT],
                    "previous_call_summary_chars": len(remembered[PREVIOUS_CALL_SUMMARY]),
                },
            )
        _log_after_commit(session.pk, "session created for customer %s (%s, %s)", customer_id, agent_type, direction)
        transaction.on_commit(partial(count_transition, "", Status.CREATED, agent_type))
    return session


def session_answer_inbound_call(
    *,
    customer_id: str,
    phone_number: str,
    agent_type: str,
    agent_id: str,
    simulation: bool,
    call_sid: str,
    dynamic_variables: dict[str, Any],
    payload: dict[str, Any] | None = None,
) -> tuple[VoiceSession, bool]:
    """The session of an inbound phone call the agent platform is answering, and whether it is new.

    It is born connecting (the call rings through to the agent; there is no credential to mint),
    with the timeline row of that move, in one transaction of two statements:
    ElevenLabs asks while the caller's phone rings. The platform may ask again about the same call
    (a retried webhook): ``call_sid`` is unique, so the second ask gets the first one's session, unchanged.
    """
    simulation = session_runs_simulated(simulation)
    try:
        with transaction.atomic():
            session = VoiceSession.objects.create(
                customer_id=customer_id,
                agent_type=agent_type,
                direction=Direction.INBOUND,
                simulation=simulation,
                phone_number=phone_number,
                dynamic_variables=dynamic_variables,
                status=Status.CONNECTING,
                agent_id=agent_id,
                connection_type=ConnectionType.PHONE,
                call_sid=call_sid,
            )
            answered = SessionEvent(
                session=session,
                kind=EventKind.INBOUND_CALL,
                from_status=Status.CREATED,
                to_status=Status.CONNECTING,
                payload={"agent_id": agent_id, "call_sid": call_sid, **(payload or {})},
            )
            _insert_event(answered)
            _log_after_commit(
                session.pk, "inbound call %s answered for customer %s (%s)", call_sid, customer_id, agent_type
            )
            transaction.on_commit(partial(count_transition, "", Status.CREATED, agent_type))
            transaction.on_commit(partial(count_transition, Status.CREATED, Status.CONNECTING, agent_type))
        return session, True
    except IntegrityError:  # asked about again (or twice at the same moment): the call has its session
        return VoiceSession.objects.get(call_sid=call_sid), False


def session_mark_connecting(
    *,
    session: VoiceSession,
    agent_id: str,
    connection_type: str,
    simulation: bool,
    conversation_id: str | None = None,
    payload: dict | None = None,
) -> VoiceSession:
    """A credential was minted for ``agent_id``: the client may now connect.

    ``conversation_id`` is the conversation the credential opens, when the minting
    told us (the simulator always does, ElevenLabs in the token response or beside
    the signed URL): the session is bound to it from here on, so post-call webhooks
    find the session whatever client holds the credential.
    """
    try:
        with transaction.atomic():
            locked = _lock(session)
            fields = {"agent_id": agent_id, "connection_type": connection_type, "simulation": simulation}
            if conversation_id:
                fields["conversation_id"] = conversation_id
            connecting = _move(
                locked,
                Status.CONNECTING,
                kind=EventKind.CONNECTING,
                payload={"agent_id": agent_id, "connection_type": connection_type, **(payload or {})},
                **fields,
            )
            if conversation_id:
                session_record_event(
                    session=connecting,
                    kind=EventKind.CONVERSATION_BOUND,
                    payload={"conversation_id": conversation_id, "source": "credential"},
                )
            return connecting
    except IntegrityError:  # another session holds the id ElevenLabs (or the simulator) just gave us
        raise ConversationAlreadyClaimed(conversation_id) from None


def session_activate(*, session: VoiceSession, conversation_id: str) -> VoiceSession:
    """The client reported the connection with ElevenLabs' ``conversation_id``.

    A session bound at start accepts only its own conversation (another id is a
    :class:`ConversationMismatch`, nothing changed). An unbound one (ElevenLabs gave
    no id) takes the reported id unless another session holds it; whether an older
    unmatched delivery forbids it is the caller's check (:func:`session_client_event`).
    """
    try:
        with transaction.atomic():
            locked = _lock(session)
            if locked.conversation_id and locked.conversation_id != conversation_id:
                raise ConversationMismatch(locked, conversation_id)
            if locked.status == Status.ACTIVE:
                return locked
            if not locked.conversation_id:
                claimed = VoiceSession.objects.filter(conversation_id=conversation_id).exclude(pk=locked.pk).exists()
                if claimed:
                    raise ConversationAlreadyClaimed(conversation_id)
            return _move(
                locked,
                Status.ACTIVE,
                kind=EventKind.ACTIVE,
                payload={"conversation_id": conversation_id},
                conversation_id=conversation_id,
                started_at=locked.started_at or timezone.now(),
            )
    except IntegrityError:  # another session claimed it between our check and our write
        raise ConversationAlreadyClaimed(conversation_id) from None


def session_bind_conversation(*, session: VoiceSession, conversation_id: str, source: str) -> VoiceSession:
    """Bind ``session``, which the platform opened without telling us its conversation (an inbound phone
    call), to ``conversation_id`` learnt later (a tool call, a post-call webhook matched by its call sid).

    The rules of :func:`session_activate`: a session bound to another conversation refuses it
    (:class:`ConversationMismatch`), and a conversation another session holds is not taken over
    (:class:`ConversationAlreadyClaimed`). Binding the bound conversation again changes nothing.
    The status is left as it is.
    """
    try:
        with transaction.atomic():
            locked = _lock(session)
            if locked.conversation_id == conversation_id:
                return locked
            if locked.conversation_id:
                raise ConversationMismatch(locked, conversation_id)
            if VoiceSession.objects.filter(conversation_id=conversation_id).exclude(pk=locked.pk).exists():
                raise ConversationAlreadyClaimed(conversation_id)
            locked.conversation_id = conversation_id
            locked.save(update_fields=["conversation_id", "updated_at"])
            session_record_event(
                session=locked,
                kind=EventKind.CONVERSATION_BOUND,
                payload={"conversation_id": conversation_id, "source": source},
            )
            return locked
    except IntegrityError:  # another session claimed it between our check and our write
        raise ConversationAlreadyClaimed(conversation_id) from None


def session_end(*, session: VoiceSession, reason: str = EndReason.USER, payload: dict | None = None) -> VoiceSession:
    """End the session. Ending a session that has already ended (or failed) returns it unchanged."""
    if session.is_terminal:
        # No lock, no write transaction: an ended session never ends again, and most ends are repeats
        # (a client's retry, a page's unload beside its explicit end). On SQLite every write
        # transaction queues for the one writer; these no longer do.
        return session
    with transaction.atomic():
        locked = _lock(session)
        if locked.is_terminal:
            return locked
        return _end(locked, reason, payload)


def session_fail(
    *,
    session: VoiceSession,
    code: str,
    message: str,
    upstream_status: int | None = None,
    payload: dict | None = None,
) -> VoiceSession:
    """Mark the session failed with the reason. Failing a failed session returns it unchanged."""
    with transaction.atomic():
        locked = _lock(session)
        if locked.status == Status.FAILED:
            return locked
        return _move(
            locked,
            Status.FAILED,
            kind=EventKind.FAILED,
            payload={"code": code, "message": message, "upstream_status": upstream_status, **(payload or {})},
            failure_code=code[:64],
            failure_message=message,
            upstream_status=upstream_status,
            end_reason=EndReason.ERROR,
            ended_at=timezone.now(),
        )


def session_record_event(*, session: VoiceSession, kind: str, payload: dict | None = None) -> SessionEvent:
    """Add a timeline row that changes no status (a client event, a webhook note)."""
    event = _insert_event(SessionEvent(session=session, kind=kind, payload=payload or {}))
    _log_after_commit(session.pk, "session event %s %s", kind, payload or {})
    return event


def session_store_post_call(
    *,
    session: VoiceSession,
    conversation: dict[str, Any],
    source: str,
    end_reason: str = EndReason.WEBHOOK,
) -> VoiceSession:
    """Store ElevenLabs' conversation details (webhook ``data`` or GET conversation) on the session.

    Fills transcript, analysis and metadata; ends the session if it is still open.
    Storing the same conversation again overwrites the post-call fields with the
    newer copy and writes no second transition. With TRANSCRIPT_REDACTION, transcript and
    summaries are masked first (sessions.redaction), and the timeline counts what was masked.
    """
    redacted = None
    if settings.TRANSCRIPT_REDACTION:
        # Before the transaction: masking a long transcript takes a while, and no lock is needed for it.
        redacted = redact_conversation(conversation)
        conversation = redacted.conversation
    # Callers check the shape first (elevenlabs.postcall); whatever slips through is dropped, never a crash.
    metadata = conversation.get("metadata") if isinstance(conversation.get("metadata"), dict) else {}
    analysis = conversation.get("analysis") if isinstance(conversation.get("analysis"), dict) else {}
    transcript = conversation.get("transcript") if isinstance(conversation.get("transcript"), list) else []
    with transaction.atomic():
        locked = _lock(session)
        if locked.pruned_at is None:
            locked.transcript = transcript
            locked.analysis = analysis
            locked.call_metadata = metadata
        # else retention removed this call's payloads already: a late copy brings back only the facts.
        for field, value in post_call_facts(conversation).items():
            setattr(locked, field, value)
        if locked.started_at is None:
            # No client reported the connection (an API client, a phone call): the call's own start time.
            locked.started_at = _from_unix(metadata.get("start_time_unix_secs"))
        first_time = locked.post_call_received_at is None
        locked.post_call_received_at = timezone.now()
        locked.save(
            update_fields=[
                "transcript",
                "analysis",
                "call_metadata",
                *POST_CALL_FACT_FIELDS,
                "started_at",
                "post_call_received_at",
                "updated_at",
            ]
        )
        if first_time:
            session_record_event(
                session=locked,
                kind=EventKind.POST_CALL,
                payload={"source": source, "call_successful": locked.call_successful, "turns": len(transcript)},
            )
            if redacted is not None:
                session_record_event(
                    session=locked, kind=EventKind.REDACTED, payload={"source": source, **redacted.counts}
                )
        if not locked.is_terminal:
            locked = _end(locked, end_reason, {"source": source})
    return locked


# Plausible call start times: anything outside is a broken or hostile value, not a date to store.
_EARLIEST_CALL = datetime(2020, 1, 1, tzinfo=UTC)
_LATEST_CALL = datetime(2100, 1, 1, tzinfo=UTC)


def _from_unix(value: Any) -> datetime | None:
    if not isinstance(value, int) or isinstance(value, bool):
        return None
    if not _EARLIEST_CALL.timestamp() <= value < _LATEST_CALL.timestamp():
        return None
    return datetime.fromtimestamp(value, tz=UTC)


def session_store_audio(*, session: VoiceSession, content, filename: str, size: int | None = None) -> VoiceSession:
    """Keep the call's recording (a django File) as the session's audio, and note it on the timeline.

    Only the audio column is written, under the row lock, so a concurrent status change is kept.
    """
    with transaction.atomic():
        locked = _lock(session)
        locked.audio.save(filename, content, save=False)
        locked.save(update_fields=["audio", "updated_at"])
        session_record_event(
            session=locked, kind=EventKind.POST_CALL_AUDIO, payload={"bytes": size, "file": locked.audio.name}
        )
    return locked


def session_expire_if_stale(*, session: VoiceSession, cutoff) -> bool:
    """End a session stuck in connecting/active since before ``cutoff`` (reason timeout).

    The staleness is checked again under the row lock, so a session that moved
    on while the caller was looking is left alone. Returns whether it ended.
    """
    with transaction.atomic():
        locked = _lock(session)
        since = locked.started_at if locked.status == Status.ACTIVE else locked.updated_at
        if locked.status not in (Status.CONNECTING, Status.ACTIVE) or since is None or since >= cutoff:
            return False
        _end(locked, EndReason.TIMEOUT, {"stuck_in": locked.status, "since": since.isoformat()})
    return True


@dataclass(frozen=True)
class Pruned:
    """What retention removed from one session."""

    transcript: bool
    recording: bool


def session_prune(*, session: VoiceSession | str, ended_before: datetime, audio_only: bool = False) -> Pruned | None:
    """Remove what a call left behind from a session that ended before ``ended_before``; keep the row.

    Goes: the stored transcript, analysis and call metadata, and the messages the browser reported
    (their timeline rows stay, without the words), and the recording. With ``audio_only``, only the
    recording. Stays: the session, its timeline, and the post-call columns (outcome, duration, cost,
    summary...) that filters and analytics read. One short transaction under the row lock, which checks
    again that the session qualifies (None when it no longer does); the recording's file is deleted
    once the transaction has committed, so a rollback never leaves a session pointing at a deleted file.
    """
    with transaction.atomic():
        locked = _lock(session)
        if locked.status not in TERMINAL_STATUSES or locked.ended_at is None or locked.ended_at >= ended_before:
            return None
        prune_payloads = not audio_only and locked.pruned_at is None
        recording = locked.audio.name
        if not prune_payloads and not recording:
            return None
        fields = ["updated_at"]
        payload: dict[str, Any] = {"ended_before": ended_before.isoformat(), "audio_only": audio_only}
        if prune_payloads:
            live_messages = SessionEvent.objects.filter(session=locked, kind=EventKind.CLIENT_MESSAGE)
            payload.update(
                transcript_turns=len(locked.transcript),
                analysis=bool(locked.analysis),
                call_metadata=bool(locked.call_metadata),
                live_messages=live_messages.update(payload={"pruned": True}),
            )
            locked.transcript, locked.analysis, locked.call_metadata = [], {}, {}
            locked.pruned_at = timezone.now()
            fields += ["transcript", "analysis", "call_metadata", "pruned_at"]
        if recording:
            storage = locked.audio.storage
            locked.audio = ""
            fields.append("audio")
            transaction.on_commit(lambda: _delete_recording(storage, recording, locked.pk))
        payload["recording"] = bool(recording)
        locked.save(update_fields=fields)
        session_record_event(session=locked, kind=EventKind.PRUNED, payload=payload)
    return Pruned(transcript=prune_payloads, recording=bool(recording))


def _delete_recording(storage, name: str, session_id) -> None:
    try:
        storage.delete(name)
    except OSError as exc:
        # The session no longer points at it; an operator can remove the file by hand.
        with session_context(session_id):
            logger.warning("pruned recording %s could not be deleted: %s", name, exc)
