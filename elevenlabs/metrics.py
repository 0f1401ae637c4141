"""ElevenLabs' Prometheus metrics (plumbing: voiceagent/metrics.py).

- ``voiceagent_webhook_deliveries_total{event_type, outcome}``: every POST to the webhook, counted
  once by elevenlabs/views.py with what became of it: the ledger's outcome (processed, unmatched,
  duplicate, ignored, malformed) or the error code it was refused with (invalid_signature,
  webhook_secret_missing, body_too_large, unreadable_body, not_simulated_conversation,
  internal_error);
- ``voiceagent_elevenlabs_api_calls_total{operation, status}`` and
  ``voiceagent_elevenlabs_api_call_duration_seconds{operation}``: every call of
  elevenlabs/client.py, retries included in its one count and its duration.
"""

from __future__ import annotations

import re

from prometheus_client import Counter, Histogram

# Before the body is parsed (a refused signature) the event type is not known.
UNKNOWN_EVENT = "unknown"
# Event types we do not handle are one label value: the sender chooses them, and every
# distinct label value is a series Prometheus keeps.
OTHER_EVENT = "other"

WEBHOOK_DELIVERIES = Counter(
    "voiceagent_webhook_deliveries",
    "POSTs to the post-call webhook, by event type and what became of them.",
    ["event_type", "outcome"],
)

API_CALLS = Counter(
    "voiceagent_elevenlabs_api_calls",
    "Calls to ElevenLabs' API (retries included), by operation and HTTP status (or our error code "
    "when no usable answer came: timeout, connection_error, invalid_response, outbound_call_failed).",
    ["operation", "status"],
)
API_CALL_DURATION = Histogram(
    "voiceagent_elevenlabs_api_call_duration_seconds",
    "Time a call to ElevenLabs' API took, retries and waits between them included, by operation.",
    ["operation"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 60.0),
)

# The client's paths, with a conversation id in place of {id}, and the operation each is.
_OPERATIONS = {
    "/v1/convai/conversation/get-signed-url": "get_signed_url",
    "/v1/convai/conversation/token": "get_conversation_token",
    "/v1/convai/conversations": "list_conversations",
    "/v1/convai/conversations/{id}": "get_conversation",
    "/v1/convai/conversations/{id}/audio": "download_conversation_audio",
    "/v1/convai/twilio/outbound-call": "outbound_call",
    "/v1/convai/sip-trunk/outbound-call": "outbound_call",
}
_CONVERSATION_ID = re.compile(r"^/v1/convai/conversations/[^/]+")


def api_operation(path: str) -> str:
    """The operation a client path calls; ``other`` for a path not in the table."""
    return _OPERATIONS.get(_CONVERSATION_ID.sub("/v1/convai/conversations/{id}", path), "other")


def count_api_call(path: str, status: str, seconds: float) -> None:
    operation = api_operation(path)
    API_CALLS.labels(operation, status).inc()
    API_CALL_DURATION.labels(operation).observe(seconds)


def webhook_event_label(event_type: str, known: frozenset[str]) -> str:
    if not event_type:
        return UNKNOWN_EVENT
    return event_type if event_type in known else OTHER_EVENT


def count_webhook_delivery(event_type: str, outcome: str) -> None:
    WEBHOOK_DELIVERIES.labels(event_type, outcome).inc()
