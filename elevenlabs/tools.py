"""Server tools: what the agent may ask our server mid-conversation (``POST /elevenlabs/tools/<name>``).

Each tool is a webhook tool in ElevenLabs whose JSON body carries its arguments and, bound to
ElevenLabs' system variables, ``conversation_id`` (and for phone calls ``call_sid`` and
``caller_id``). A call finds its session by conversation id, else by call sid (an inbound call,
whose conversation id the session learns here and binds), runs, and lands on the session's
timeline with its arguments, its result or error and the time it took. A tool that fails
unexpectedly is logged and answered 503 ``tool_failed``, never a 500.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rest_framework import serializers
from rest_framework.exceptions import ValidationError

from elevenlabs.ingest import unmatched_delivery_before, webhook_attach_pending
from elevenlabs.serializers import CustomerHistoryInput, ScheduleCallbackInput, ToolCallInput
from sessions.errors import ConversationAlreadyClaimed
from sessions.models import EventKind, Status, VoiceSession
from sessions.selectors import customer_recent_calls
from sessions.services.callbacks import callback_schedule
from sessions.services.lifecycle import session_activate, session_bind_conversation, session_record_event
from voiceagent.errors import ApplicationError
from voiceagent.faults import database_unavailable
from voiceagent.logging import session_context

logger = logging.getLogger("voiceagent.elevenlabs.tools")

# The body's keys that are ElevenLabs' system variables, not the tool's arguments.
SYSTEM_FIELDS = frozenset(ToolCallInput().fields)
HISTORY_LENGTH = 5


@dataclass(frozen=True)
class ServerTool:
    name: str
    arguments: type[serializers.Serializer]
    run: Callable[..., dict[str, Any]]


class UnknownTool(ApplicationError):
    status = 404
    code = "unknown_tool"

    def __init__(self, name: str):
        super().__init__(f"There is no tool {name!r}; the tools are: {', '.join(TOOLS)}.", tools=list(TOOLS))


class ToolSessionNotFound(ApplicationError):
    status = 404
    code = "session_not_found"

    def __init__(self, conversation_id: str, call_sid: str):
        known = f"conversation_id {conversation_id}" + (f" or call_sid {call_sid}" if call_sid else "")
        super().__init__(f"No session has {known}.")


class ToolFailed(ApplicationError):
    status = 503
    code = "tool_failed"

    def __init__(self, name: str):
        super().__init__(f"The tool {name} failed; it has been logged.")


# --- The tools ------------------------------------------------------------------------------------


def customer_history(*, session: VoiceSession, customer_id: str | None = None) -> dict[str, Any]:
    """The customer's last ended calls (the session's own customer unless another is named)."""
    customer = customer_id or session.customer_id
    calls = customer_recent_calls(customer_id=customer, exclude_session_id=session.pk, limit=HISTORY_LENGTH)
    return {
        "customer_id": customer,
        "calls": [
            {
                "date": (call.ended_at or call.created_at).isoformat(),
                "agent": call.agent_type,
                "outcome": call.call_successful or "unknown",
                "summary_title": call.summary_title,
                "summary": call.transcript_summary,
            }
            for call in calls
        ],
    }


def schedule_callback(*, session: VoiceSession, when, reason: str, phone_number: str = "") -> dict[str, Any]:
    """A follow-up call to the customer at ``when``, on ``phone_number`` or the number they called from."""
    number = phone_number or session.phone_number
    if not number:
        raise ValidationError({"phone_number": ["The caller's number is withheld: ask for a number to call back."]})
    callback = callback_schedule(session=session, requested_time=when, reason=reason, phone_number=number)
    return {"scheduled": True, "callback_id": callback.pk, "when": callback.requested_time.isoformat()}


TOOLS: dict[str, ServerTool] = {
    tool.name: tool
    for tool in (
        ServerTool("customer_history", CustomerHistoryInput, customer_history),
        ServerTool("schedule_callback", ScheduleCallbackInput, schedule_callback),
    )
}


def tool_named(name: str) -> ServerTool:
    try:
        return TOOLS[name]
    except KeyError:
        raise UnknownTool(name) from None


# --- Finding the session --------------------------------------------------------------------------


def tool_session(*, conversation_id: str, call_sid: str = "", **_: Any) -> VoiceSession:
    """The session of the conversation calling a tool: by its conversation id, else by its call's sid.

    Found by call sid, the session is bound to the conversation on first sight, by the rules of every
    binding (no takeover of a conversation another session holds, nor of one whose post-call data
    waited since before the session existed), and the call is live: connecting becomes active.
    """
    session = VoiceSession.objects.filter(conversation_id=conversation_id).first()
    if session is not None:
        return session
    session = VoiceSession.objects.filter(call_sid=call_sid).first() if call_sid else None
    if session is None:
        raise ToolSessionNotFound(conversation_id, call_sid)
    if not session.conversation_id and unmatched_delivery_before(conversation_id, session.created_at):
        raise ConversationAlreadyClaimed(conversation_id)
    session = session_bind_conversation(session=session, conversation_id=conversation_id, source="tool_call")
    if session.status == Status.CONNECTING:
        session = session_activate(session=session, conversation_id=conversation_id)
    webhook_attach_pending(session=session)
    return session


# --- Running a tool -------------------------------------------------------------------------------


def tool_arguments(body: dict[str, Any]) -> dict[str, Any]:
    """The tool's own arguments: the body without ElevenLabs' system variables."""
    return {name: value for name, value in body.items() if name not in SYSTEM_FIELDS}


def _error_of(exc: Exception) -> dict[str, Any]:
    if isinstance(exc, ValidationError):
        detail = exc.detail if isinstance(exc.detail, dict) else {"": exc.detail}
        return {"code": "invalid", "fields": {name: [str(m) for m in messages] for name, messages in detail.items()}}
    if isinstance(exc, ApplicationError):
        return {"code": exc.code, "message": exc.message}
    return {"code": ToolFailed.code, "exception": type(exc).__name__}


def tool_call(*, tool: ServerTool, session: VoiceSession, arguments: dict[str, Any]) -> dict[str, Any]:
    """Run ``tool`` for ``session`` with ``arguments``; the call lands on the session's timeline either way.

    Bad arguments raise DRF's ValidationError (400 naming the field); a refusal its ApplicationError; an
    unavailable database propagates (503); anything else is logged and raised as :class:`ToolFailed`.
    """
    started = time.perf_counter()
    with session_context(session.pk):
        try:
            given = tool.arguments(data=arguments)
            given.is_valid(raise_exception=True)
            result = tool.run(session=session, **given.validated_data)
        except Exception as exc:
            if database_unavailable(exc):
                raise
            _record(session, tool, arguments, started, error=_error_of(exc))
            if isinstance(exc, (ValidationError, ApplicationError)):
                raise
            logger.exception("tool %s failed", tool.name)
            raise ToolFailed(tool.name) from exc
        _record(session, tool, arguments, started, result=result)
    return result


def _record(session: VoiceSession, tool: ServerTool, arguments: dict[str, Any], started: float, **outcome) -> None:
    elapsed_ms = round((time.perf_counter() - started) * 1000, 1)
    session_record_event(
        session=session,
        kind=EventKind.TOOL_CALL,
        payload={"tool": tool.name, "arguments": arguments, **outcome, "ms": elapsed_ms},
    )
