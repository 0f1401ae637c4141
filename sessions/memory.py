"""Memory across calls: what a new conversation is told about the customer's previous calls."""

from __future__ import annotations


def memory_variables(*, customer_id: str, exclude_session_id=None) -> dict:
    return {"previous_call_count": 0, "previous_call_summary": ""}
