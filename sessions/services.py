"""A voice session's whole life: every write to a session goes through here.

Each transition runs in one transaction that locks the row (SELECT ... FOR
UPDATE on PostgreSQL; on SQLite the IMMEDIATE transaction mode takes the write
lock at BEGIN), re-reads the status, and either moves it along an allowed edge
and writes one timeline row, or returns the session unchanged when it is
already where the caller wants it. So concurrent "end" calls produce one end.
"""

from __future__ import annotations

import logging
import tempfile
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.core.files import File
from django.db import IntegrityError, transaction
from django.utils import timezone

from sessions.models import ConnectionType, Direction, EndReason, EventKind, SessionEvent, Status, VoiceSession
from voiceagent.logging import session_context
from voiceagent.public_url import require_public_base_url

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


class ConversationMismatch(SessionError):
    """The client reports a conversation other than the one bound to the session when it started."""

    code = "conversation_mismatch"

    def __init__(self, session: VoiceSession, conversation_id: str):
        self.conversation_id = conversation_id
        self.bound_conversation_id = session.conversation_id
        super().__init__(
            f"Session {session.id} is bound to another conversation; {conversation_id} is not its conversation."
        )


class StartFailed(SessionError):
    """ElevenLabs refused or failed while starting; the session has been marked failed."""

    code = "upstream_error"

    def __init__(self, session: VoiceSession, error: Exception):
        self.session = session
        self.error = error
        super().__init__(str(error))


class OutboundUnavailable(SessionError):
    code = "outbound_unavailable"


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
    SessionEvent.objects.create(
        session=session, kind=kind, from_status=previous, to_status=target, payload=payload or {}
    )
    _log_after_commit(session.pk, "session %s -> %s (%s)", previous, target, kind)
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
            idempotency_key=idempotency_key or None,
        )
        SessionEvent.objects.create(
            session=session,
            kind=EventKind.CREATED,
            to_status=Status.CREATED,
            payload={"agent_type": agent_type, "direction": direction, "simulation": simulation},
        )
        _log_after_commit(session.pk, "session created for customer %s (%s, %s)", customer_id, agent_type, direction)
    return session


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


def session_end(*, session: VoiceSession, reason: str = EndReason.USER, payload: dict | None = None) -> VoiceSession:
    """End the session. Ending a session that has already ended (or failed) returns it unchanged."""
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
    event = SessionEvent.objects.create(session=session, kind=kind, payload=payload or {})
    _log_after_commit(session.pk, "session event %s %s", kind, payload or {})
    return event


# VoiceSession.call_duration_secs is a PositiveIntegerField: 32-bit signed on every database.
MAX_CALL_DURATION_SECS = 2**31 - 1


def _of_type(value: Any, kind: type, default: Any) -> Any:
    return value if isinstance(value, kind) else default


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
    # Callers check the shape first (elevenlabs.postcall); whatever slips through is dropped, never a crash.
    metadata = _of_type(conversation.get("metadata"), dict, {})
    analysis = _of_type(conversation.get("analysis"), dict, {})
    with transaction.atomic():
        locked = _lock(session)
        locked.transcript = _of_type(conversation.get("transcript"), list, [])
        locked.analysis = analysis
        locked.call_metadata = metadata
        locked.call_successful = _of_type(analysis.get("call_successful"), str, "")[:16]
        locked.transcript_summary = _of_type(analysis.get("transcript_summary"), str, "")
        duration = metadata.get("call_duration_secs")
        locked.call_duration_secs = (
            int(duration)
            if isinstance(duration, (int, float))
            and not isinstance(duration, bool)
            and 0 <= duration <= MAX_CALL_DURATION_SECS
            else None
        )
        locked.termination_reason = _of_type(metadata.get("termination_reason"), str, "")[:255]
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
                "call_successful",
                "transcript_summary",
                "call_duration_secs",
                "termination_reason",
                "started_at",
                "post_call_received_at",
                "updated_at",
            ]
        )
        if first_time:
            session_record_event(
                session=locked,
                kind=EventKind.POST_CALL,
                payload={"source": source, "call_successful": locked.call_successful, "turns": len(locked.transcript)},
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


# --- Starting a conversation ----------------------------------------------------------------


def session_start(
    *,
    user,
    customer_id: str,
    agent_type: str,
    locale: str = "en-US",
    direction: str = Direction.INBOUND,
    dynamic_variables: dict[str, Any] | None = None,
    text_only: bool = False,
    simulation: bool = False,
    phone_number: str = "",
    idempotency_key: str | None = None,
) -> tuple[VoiceSession, dict[str, Any], bool]:
    """Create a session and start its conversation in one step.

    Returns ``(session, elevenlabs_conversation, replayed)``. Configuration
    problems raise before anything is stored. When ElevenLabs fails, the
    session is kept, marked failed with the remote status and message, and
    :class:`StartFailed` is raised. A repeated ``idempotency_key`` returns the
    first request's session without starting (or dialling) again.
    """
    from elevenlabs.credentials import agent_id_for

    simulation = simulation or settings.SIMULATION_MODE
    agent_id = agent_id_for(agent_type, simulation=simulation)
    if simulation:
        require_public_base_url()  # before anything is stored
    outbound_call = direction == Direction.OUTBOUND and bool(phone_number)
    if outbound_call:
        _check_outbound_possible(simulation=simulation)

    if idempotency_key:
        replay = _replay(user, idempotency_key)
        if replay is not None:
            return replay
    try:
        session = session_create(
            user=user,
            customer_id=customer_id,
            agent_type=agent_type,
            direction=direction,
            locale=locale,
            simulation=simulation,
            dynamic_variables=dynamic_variables,
            phone_number=phone_number,
            idempotency_key=idempotency_key,
        )
    except IntegrityError:  # the same key raced us: the other request owns the start
        replay = _replay(user, idempotency_key)
        if replay is None:
            raise
        return replay

    if outbound_call:
        session = session_dial(session=session, agent_id=agent_id)
        return session, _phone_conversation(session), False
    session, credential = session_connect(session=session, agent_id=agent_id, text_only=text_only)
    return session, credential.as_response(), False


def session_connect(*, session: VoiceSession, agent_id: str | None = None, text_only: bool):
    """Mint a browser credential for a created session and move it to connecting (or failed).

    Returns ``(session, credential)`` with the session as it now is.
    """
    from elevenlabs.credentials import agent_id_for, credential_mint, resolve_connection_type

    if session.status != Status.CREATED:
        raise InvalidTransition(session, Status.CONNECTING)
    if session.simulation:
        require_public_base_url()
    agent_id = agent_id or agent_id_for(session.agent_type, simulation=session.simulation)
    connection_type = resolve_connection_type(text_only=text_only)
    with session_context(session.pk):
        try:
            credential = credential_mint(
                session=session,
                agent_id=agent_id,
                connection_type=connection_type,
                text_only=text_only,
            )
        except Exception as exc:
            raise StartFailed(_fail_from_upstream(session, exc), exc) from exc
    connecting = session_mark_connecting(
        session=session,
        agent_id=agent_id,
        connection_type=credential.connection_type,
        simulation=credential.simulation,
        conversation_id=credential.conversation_id,
        payload={"expires_at": credential.expires_at.isoformat(), "text_only": text_only},
    )
    return connecting, credential


def session_dial(*, session: VoiceSession, agent_id: str) -> VoiceSession:
    """Start an outbound phone call through ElevenLabs (Twilio or SIP trunk, from settings)."""
    from elevenlabs.client import get_client

    with session_context(session.pk):
        try:
            result = get_client().outbound_call(
                provider=settings.ELEVENLABS_OUTBOUND_PROVIDER,
                agent_id=agent_id,
                agent_phone_number_id=settings.ELEVENLABS_PHONE_NUMBER_ID,
                to_number=session.phone_number,
                conversation_initiation_client_data={
                    "user_id": session.customer_id,
                    "dynamic_variables": session.dynamic_variables,
                },
            )
        except Exception as exc:
            raise StartFailed(_fail_from_upstream(session, exc), exc) from exc
    call_id = result.get("callSid") or result.get("sip_call_id") or ""
    conversation_id = result.get("conversation_id") or None
    session = session_mark_connecting(
        session=session,
        agent_id=agent_id,
        connection_type=ConnectionType.PHONE,
        simulation=False,
        conversation_id=conversation_id,
        payload={
            "provider": settings.ELEVENLABS_OUTBOUND_PROVIDER,
            "call_id": call_id,
            "message": result.get("message", ""),
        },
    )
    if conversation_id:
        # ElevenLabs accepted and is dialling: the conversation exists from here on.
        session = session_activate(session=session, conversation_id=conversation_id)
    return session


def _check_outbound_possible(*, simulation: bool) -> None:
    if simulation:
        raise OutboundUnavailable("Outbound phone calls are not simulated; set ELEVENLABS_API_KEY to place real calls.")
    if not settings.ELEVENLABS_PHONE_NUMBER_ID:
        raise OutboundUnavailable(
            "Outbound calls need ELEVENLABS_PHONE_NUMBER_ID, the id of the agent's phone number in ElevenLabs."
        )


def _phone_conversation(session: VoiceSession) -> dict[str, Any]:
    return {
        "connection_type": ConnectionType.PHONE.value,
        "agent_id": session.agent_id,
        "conversation_id": session.conversation_id,
        "simulation": False,
    }


def _replay(user, key: str) -> tuple[VoiceSession, dict[str, Any], bool] | None:
    owner = user if getattr(user, "is_authenticated", False) else None
    session = VoiceSession.objects.filter(created_by=owner, idempotency_key=key).first()
    if session is None:
        return None
    # Browser credentials are single-use and never stored, so a replay says what was started, without one.
    conversation = {
        "connection_type": session.connection_type,
        "agent_id": session.agent_id,
        "conversation_id": session.conversation_id,
        "simulation": session.simulation,
        "replayed": True,
    }
    return session, conversation, True


def _fail_from_upstream(session: VoiceSession, exc: Exception) -> VoiceSession:
    from elevenlabs.client import ElevenLabsError

    if isinstance(exc, ElevenLabsError):
        return session_fail(session=session, code=exc.code, message=exc.message, upstream_status=exc.status)
    logger.exception("starting session %s failed", session.pk)
    return session_fail(
        session=session, code="internal_error", message="Starting the conversation failed; see the log."
    )


# --- What only the browser sees ---------------------------------------------------------------

DISCONNECT_END_REASONS = {"user": EndReason.USER, "agent": EndReason.AGENT}


def session_client_event(*, session: VoiceSession, event_type: str, data: dict[str, Any]) -> VoiceSession:
    """Apply an event reported by the browser client: `connected` activates, `disconnect` ends or fails."""
    if event_type == "connected":
        from elevenlabs.ingest import unmatched_delivery_before, webhook_attach_pending

        conversation_id = data["conversation_id"]
        if not session.conversation_id and unmatched_delivery_before(conversation_id, session.created_at):
            # Post-call data for this conversation arrived before the session existed: the session cannot have
            # opened it, so a client reporting it is trying to read someone else's call.
            raise ConversationAlreadyClaimed(conversation_id)
        session = session_activate(session=session, conversation_id=conversation_id)
        webhook_attach_pending(session=session)
        session.refresh_from_db()
        return session
    session_record_event(session=session, kind=EventKind(f"client.{event_type}"), payload=data)
    if event_type == "disconnect":
        reason = data.get("reason")
        if reason in DISCONNECT_END_REASONS:
            return session_end(session=session, reason=DISCONNECT_END_REASONS[reason], payload=data)
        close_code = data.get("close_code")
        message = data.get("message") or f"The connection closed with code {close_code}."
        if session.status == Status.ENDED:
            return session
        return session_fail(
            session=session,
            code=f"closed_{close_code}" if close_code else "disconnected",
            message=message,
            payload={"close_code": close_code},
        )
    return session


# --- Reconciliation (run from cron, possibly on several machines at once) ------------------------

FINISHED_CONVERSATION_STATUSES = {"done", "failed"}


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


def session_reconcile(*, session: VoiceSession, fetch_conversation, download_audio=None) -> str:
    """Fill in post-call data from ElevenLabs' conversation details when no webhook brought it.

    ``fetch_conversation(conversation_id) -> dict`` is the real client or the
    simulator. With ``download_audio(conversation_id, fileobj) -> int``, the
    recording is fetched too when ElevenLabs has one (the audio webhook is best
    left off: its base64 bodies are large). Returns what happened: "stored",
    "in_progress" (ElevenLabs is still on it; try again later) or
    "already_stored". Safe to run twice at once: storing is idempotent and the
    session ends once.
    """
    if session.post_call_received_at is not None:
        return "already_stored"
    conversation = fetch_conversation(session.conversation_id)
    if conversation.get("status") not in FINISHED_CONVERSATION_STATUSES:
        return "in_progress"
    stored = session_store_post_call(
        session=session, conversation=conversation, source="reconciler", end_reason=EndReason.UPSTREAM
    )
    if download_audio is not None and conversation.get("has_audio") and not stored.audio:
        # Streamed to a temporary file first: a broken download leaves no partial recording behind.
        with tempfile.TemporaryFile() as recording:
            size = download_audio(session.conversation_id, recording)
            recording.seek(0)
            session_store_audio(
                session=stored, content=File(recording), filename=f"{session.conversation_id}.mp3", size=size
            )
    return "stored"
