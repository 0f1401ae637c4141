"""The shape of ElevenLabs' post-call conversation data, checked before any of it is stored.

The same object arrives two ways: as the ``data`` of a ``post_call_transcription``
webhook and as the body of ``GET /v1/convai/conversations/{id}`` (the reconciler).
:func:`post_call_problem` is the one check both paths run, so a wrong type (a number
where a string belongs, an infinite or negative duration) is refused where it comes
in, naming the field, instead of failing inside the session's transaction.
"""

from __future__ import annotations

import math
from typing import Any

from sessions.post_call import MAX_CALL_COST, MAX_CALL_DURATION_SECS

_OPTIONAL_STRINGS = {
    "status": ("status",),
    "metadata.termination_reason": ("metadata", "termination_reason"),
    "analysis.call_successful": ("analysis", "call_successful"),
    "analysis.transcript_summary": ("analysis", "transcript_summary"),
    "analysis.call_summary_title": ("analysis", "call_summary_title"),
    "metadata.main_language": ("metadata", "main_language"),
}


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    return {bool: "a boolean", int: "a number", float: "a number", str: "a string", list: "an array"}.get(
        type(value), "an object"
    )


def post_call_problem(conversation: Any, *, prefix: str = "") -> str | None:
    """What keeps ``conversation`` from being stored, naming the field (under ``prefix``); None when it can be."""
    if not isinstance(conversation, dict):
        return f"{prefix.rstrip('.') or 'the conversation'} must be an object, not {_kind(conversation)}."
    for name, kind in (("transcript", list), ("metadata", dict), ("analysis", dict)):
        value = conversation.get(name)
        if value is not None and not isinstance(value, kind):
            return f"{prefix}{name} must be {'an array' if kind is list else 'an object'}, not {_kind(value)}."
    for index, turn in enumerate(conversation.get("transcript") or []):
        if not isinstance(turn, dict):
            return f"{prefix}transcript[{index}] must be an object, not {_kind(turn)}."
    for field, path in _OPTIONAL_STRINGS.items():
        value = conversation
        for key in path:
            value = (value or {}).get(key)
        if value is not None and not isinstance(value, str):
            return f"{prefix}{field} must be a string, not {_kind(value)}."
    for name, unit, maximum in (
        ("call_duration_secs", "a number of seconds", MAX_CALL_DURATION_SECS),
        ("cost", "a number of credits", MAX_CALL_COST),
    ):
        value = (conversation.get("metadata") or {}).get(name)
        if value is not None and (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or not math.isfinite(value)
            or not 0 <= value <= maximum
        ):
            return f"{prefix}metadata.{name} must be {unit} from 0 to {maximum}."
    has_audio = conversation.get("has_audio")
    if has_audio is not None and not isinstance(has_audio, bool):
        return f"{prefix}has_audio must be true or false, not {_kind(has_audio)}."
    return None
