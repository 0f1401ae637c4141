"""Memory across calls: what an agent is told about the customer's previous calls.

With ``CONVERSATION_MEMORY=true`` every new session carries two dynamic variables that an agent's
prompt or first message can use (``{{previous_call_count}}``, ``{{previous_call_summary}}``):
how many of the customer's sessions have ended, and the summary of the latest one that has a
summary. A customer is its ``customer_id``, whoever started the session; a caller who withheld
their number (``anonymous-<call sid>``) is nobody to remember.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings

from sessions.models import Status, VoiceSession

PREVIOUS_CALL_COUNT = "previous_call_count"
PREVIOUS_CALL_SUMMARY = "previous_call_summary"
MEMORY_VARIABLES = (PREVIOUS_CALL_COUNT, PREVIOUS_CALL_SUMMARY)
SUMMARY_MAX_CHARS = 500
ANONYMOUS_PREFIX = "anonymous-"


def memory_variables(*, customer_id: str, exclude_session_id=None) -> dict[str, Any]:
    """``{"previous_call_count": int, "previous_call_summary": str}`` for ``customer_id``.

    Counts the customer's ended sessions (but ``exclude_session_id``, the session being started) and
    takes the latest one's summary that has one, at most 500 characters. 0 and "" when memory is off,
    for anonymous callers, and when there is nothing to remember: an agent that declares the variables
    fails a call that lacks them, so both are always there.
    """
    if not settings.CONVERSATION_MEMORY or customer_id.startswith(ANONYMOUS_PREFIX):
        return {PREVIOUS_CALL_COUNT: 0, PREVIOUS_CALL_SUMMARY: ""}
    ended = VoiceSession.objects.filter(customer_id=customer_id, status=Status.ENDED)
    if exclude_session_id is not None:
        ended = ended.exclude(pk=exclude_session_id)
    count = ended.count()
    summary = ""
    if count:
        latest = (
            ended.exclude(transcript_summary="")
            .order_by("-ended_at", "-created_at")
            .values_list("transcript_summary", flat=True)
            .first()
        )
        summary = _shortened(latest or "")
    return {PREVIOUS_CALL_COUNT: count, PREVIOUS_CALL_SUMMARY: summary}


def _shortened(text: str) -> str:
    text = text.strip()
    if len(text) <= SUMMARY_MAX_CHARS:
        return text
    return text[: SUMMARY_MAX_CHARS - 1].rstrip() + "…"
