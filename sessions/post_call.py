"""The facts of a finished call, read out of ElevenLabs' conversation details.

One reading for everything that stores post-call data: the webhook and the reconciler (through
``session_store_post_call``) and the migration that filled these columns for sessions stored before
they existed. Pure: a dict in, column values out; whatever has the wrong type or range is left empty.
"""

from __future__ import annotations

from typing import Any

from sessions.models import CallOutcome

# Both columns are PositiveIntegerFields: 32-bit signed on every database.
MAX_CALL_DURATION_SECS = 2**31 - 1
MAX_CALL_COST = 2**31 - 1


def _of_type(value: Any, kind: type, default: Any) -> Any:
    return value if isinstance(value, kind) else default


def _count(value: Any, maximum: int) -> int | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= maximum:
        return None
    return int(value)


def call_outcome(value: Any) -> str:
    """``analysis.call_successful`` as one of our outcomes: success, failure, or unknown for anything else."""
    return value if value in (CallOutcome.SUCCESS, CallOutcome.FAILURE) else CallOutcome.UNKNOWN


def post_call_facts(conversation: dict[str, Any]) -> dict[str, Any]:
    """The typed columns of a session, from a conversation (webhook ``data`` or GET conversation)."""
    metadata = _of_type(conversation.get("metadata"), dict, {})
    analysis = _of_type(conversation.get("analysis"), dict, {})
    return {
        "call_successful": call_outcome(analysis.get("call_successful")),
        "transcript_summary": _of_type(analysis.get("transcript_summary"), str, ""),
        "summary_title": _of_type(analysis.get("call_summary_title"), str, "")[:255],
        "call_duration_secs": _count(metadata.get("call_duration_secs"), MAX_CALL_DURATION_SECS),
        "cost": _count(metadata.get("cost"), MAX_CALL_COST),
        "termination_reason": _of_type(metadata.get("termination_reason"), str, "")[:255],
        "main_language": _of_type(metadata.get("main_language"), str, "")[:35],
    }


POST_CALL_FACT_FIELDS = tuple(post_call_facts({}))
