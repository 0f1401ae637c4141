"""A voice session's whole life: every write to a session goes through here.

Each transition runs in one transaction that locks the row (SELECT ... FOR
UPDATE on PostgreSQL; on SQLite the IMMEDIATE transaction mode takes the write
lock at BEGIN), re-reads the status, and either moves it along an allowed edge
and writes one timeline row, or returns the session unchanged when it is
already where the caller wants it. So concurrent "end" calls produce one end.
"""

from __future__ import annotations

import logging
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from sessions.models import EndReason, SessionEvent, Status, VoiceSession
from voiceagent.logging import session_context

logger = logging.getLogger("voiceagent.sessions")

ALLOWED = {
    Status.CREATED: {Status.CONNECTING, Status.ENDED, Status.FAILED},
    Status.CONNECTING: {Status.ACTIVE, Status.ENDED, Status.FAILED},
    Status.ACTIVE: {Status.ENDED, Status.FAILED},
    Status.ENDED: set(),
    Status.FAILED: set(),
}


class SessionError(Exception):
    """A request about a session that its current state does not allow."""

    code = "invalid_request"


class InvalidTransition(SessionError):
    code = "invalid_transition"

    def __init__(self, session: VoiceSession, target: str):
        self.session = session
        self.current_status = session.status
        self.target = target
        super().__init__(f"Session {session.id} is {session.status}; it cannot become {target}.")


class ConversationAlreadyClaimed(SessionError):
    code = "conversation_claimed"

    def __init__(self, conversation_id: str):
        self.conversation_id = conversation_id
        super().__init__(f"Conversation {conversation_id} already belongs to another session.")


def _lock(session: VoiceSession | str) -> VoiceSession:
    pk = session.pk if isinstance(session, VoiceSession) else session
    return VoiceSession.objects.select_for_update().get(pk=pk)


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
    SessionEvent.objects.create(
        session=session, kind=kind, from_status=previous, to_status=target, payload=payload or {}
    )
    with session_context(session.pk):
        logger.info("session %s -> %s (%s)", previous, target, kind)
    return session


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
) -> VoiceSession:
    with transaction.atomic():
        session = VoiceSession.objects.create(
            customer_id=customer_id,
            created_by=user if getattr(user, "is_authenticated", False) else None,
            agent_type=agent_type,
            direction=direction,
            locale=locale,
            simulation=simulation,
            dynamic_variables=dynamic_variables or {},
            phone_number=phone_number,
        )
        SessionEvent.objects.create(
            session=session,
            kind="created",
            to_status=Status.CREATED,
            payload={"agent_type": agent_type, "direction": direction, "simulation": simulation},
        )
    with session_context(session.pk):
        logger.info("session created for customer %s (%s, %s)", customer_id, agent_type, direction)
    return session


def session_mark_connecting(
    *, session: VoiceSession, agent_id: str, connection_type: str, simulation: bool, payload: dict | None = None
) -> VoiceSession:
    """A credential was minted for ``agent_id``: the client may now connect."""
    with transaction.atomic():
        locked = _lock(session)
        return _move(
            locked,
            Status.CONNECTING,
            kind="connecting",
            payload={"agent_id": agent_id, "connection_type": connection_type, **(payload or {})},
            agent_id=agent_id,
            connection_type=connection_type,
            simulation=simulation,
        )


def session_activate(*, session: VoiceSession, conversation_id: str) -> VoiceSession:
    """The client reported the connection with ElevenLabs' ``conversation_id``."""
    try:
        with transaction.atomic():
            locked = _lock(session)
            if locked.status == Status.ACTIVE and locked.conversation_id == conversation_id:
                return locked
            if locked.conversation_id and locked.conversation_id != conversation_id:
                raise ConversationAlreadyClaimed(locked.conversation_id)
            claimed = (
                VoiceSession.objects.filter(conversation_id=conversation_id).exclude(pk=locked.pk).exists()
            )
            if claimed:
                raise ConversationAlreadyClaimed(conversation_id)
            return _move(
                locked,
                Status.ACTIVE,
                kind="active",
                payload={"conversation_id": conversation_id},
                conversation_id=conversation_id,
                started_at=timezone.now(),
            )
    except IntegrityError:  # another session claimed it between our check and our write
        raise ConversationAlreadyClaimed(conversation_id) from None


def session_end(
    *, session: VoiceSession, reason: str = EndReason.USER, payload: dict | None = None
) -> VoiceSession:
    """End the session. Ending a session that has already ended (or failed) returns it unchanged."""
    with transaction.atomic():
        locked = _lock(session)
        if locked.is_terminal:
            return locked
        return _move(
            locked,
            Status.ENDED,
            kind="ended",
            payload={"reason": reason, **(payload or {})},
            end_reason=reason,
            ended_at=timezone.now(),
        )


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
            kind="failed",
            payload={"code": code, "message": message, "upstream_status": upstream_status, **(payload or {})},
            failure_code=code[:64],
            failure_message=message,
            upstream_status=upstream_status,
            end_reason=EndReason.ERROR,
            ended_at=timezone.now(),
        )


def session_record_event(*, session: VoiceSession, kind: str, payload: dict | None = None) -> SessionEvent:
    """Add a timeline row that changes no status (a client event, a webhook note)."""
    event = SessionEvent.objects.create(session=session, kind=kind, payload=payload or {})
    with session_context(session.pk):
        logger.info("session event %s %s", kind, payload or {})
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
    newer copy and writes no second transition.
    """
    metadata = conversation.get("metadata") or {}
    analysis = conversation.get("analysis") or {}
    with transaction.atomic():
        locked = _lock(session)
        locked.transcript = conversation.get("transcript") or []
        locked.analysis = analysis
        locked.call_metadata = metadata
        locked.call_successful = (analysis.get("call_successful") or "")[:16]
        locked.transcript_summary = analysis.get("transcript_summary") or ""
        duration = metadata.get("call_duration_secs")
        locked.call_duration_secs = int(duration) if isinstance(duration, (int, float)) and duration >= 0 else None
        locked.termination_reason = (metadata.get("termination_reason") or "")[:255]
        first_time = locked.post_call_received_at is None
        locked.post_call_received_at = timezone.now()
        locked.save(
            update_fields=[
                "transcript",
                "analysis",
                "call_metadata",
                "call_successful",
                "transcript_summary",
                "call_duration_secs",
                "termination_reason",
                "post_call_received_at",
                "updated_at",
            ]
        )
        if first_time:
            SessionEvent.objects.create(
                session=locked,
                kind="post_call",
                payload={"source": source, "call_successful": locked.call_successful,
                         "turns": len(locked.transcript)},
            )
        if not locked.is_terminal:
            locked = _move(
                locked,
                Status.ENDED,
                kind="ended",
                payload={"reason": end_reason, "source": source},
                end_reason=end_reason,
                ended_at=timezone.now(),
            )
    return locked
