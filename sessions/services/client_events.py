"""What only the client holding the credential sees: connected, mode, messages, errors, disconnect."""

from __future__ import annotations

from typing import Any

from django.conf import settings

from sessions.errors import ConversationAlreadyClaimed
from sessions.models import EndReason, EventKind, Status, VoiceSession
from sessions.platform import agent_platform
from sessions.redaction import redact_text
from sessions.services.lifecycle import (
    session_activate,
    session_end,
    session_fail,
    session_record_event,
)

DISCONNECT_END_REASONS = {"user": EndReason.USER, "agent": EndReason.AGENT}


def session_client_event(*, session: VoiceSession, event_type: str, data: dict[str, Any]) -> VoiceSession:
    """Apply an event reported by the browser client: `connected` activates, `disconnect` ends or fails."""
    if event_type == "connected":
        conversation_id = data["conversation_id"]
        platform = agent_platform()
        if not session.conversation_id and not platform.may_claim(session=session, conversation_id=conversation_id):
            raise ConversationAlreadyClaimed(conversation_id)
        session = session_activate(session=session, conversation_id=conversation_id)
        platform.conversation_claimed(session=session)
        session.refresh_from_db()
        return session
    if event_type == "message" and settings.TRANSCRIPT_REDACTION:
        # What the browser heard is a transcript too: masked like the post-call one before it is stored.
        data = {**data, "message": redact_text(data["message"])}
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
