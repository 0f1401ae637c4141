"""How the admin shows the JSON the service keeps: readable, escaped, never raw."""

from __future__ import annotations

import json
from typing import Any

from django.utils.html import format_html, format_html_join


def pretty_json(value: Any, *, limit: int | None = None) -> str:
    """Indented JSON in a <pre>, cut at ``limit`` characters; "-" when empty."""
    if not value:
        return "-"
    text = json.dumps(value, indent=2, ensure_ascii=False)
    if limit is not None and len(text) > limit:
        text = text[:limit] + "\n… (truncated)"
    return format_html("<pre>{}</pre>", text)


def transcript_table(turns: Any) -> str:
    """ElevenLabs' transcript items as a table of role, time in call and message; "-" when empty."""
    if not turns:
        return "-"
    rows = (
        (turn.get("role", "?"), turn.get("time_in_call_secs", ""), turn.get("message") or "")
        for turn in turns
        if isinstance(turn, dict)
    )
    return format_html("<table>{}</table>", format_html_join("", "<tr><th>{}</th><td>{}s</td><td>{}</td></tr>", rows))
