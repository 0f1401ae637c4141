"""The simulated agent's conversations as ElevenLabs reports them: details, the end, the post-call webhook.

- conversation details shaped like ``GET /v1/convai/conversations/{id}``
  (:func:`simulator_get_conversation`), read by the reconciler through the backend seam;
- a ``post_call_transcription`` webhook, signed like ElevenLabs signs it (with the
  simulator's own key), POSTed to our own ``/elevenlabs/webhook`` on PUBLIC_BASE_URL
  when a conversation ends (:func:`simulator_send_post_call_webhook`).
"""

from __future__ import annotations

import json
import logging
import time
from datetime import datetime
from typing import Any

import requests
from django.utils import timezone

from elevenlabs.simulator.agents import simulated_agent
from elevenlabs.simulator.models import SimulatedConversation
from elevenlabs.webhooks import SIGNATURE_HEADER, sign, simulator_signing_secret

logger = logging.getLogger("elevenlabs.simulator")

WEBHOOK_PATH = "/elevenlabs/webhook"
WEBHOOK_TIMEOUT = (3.05, 15.0)


def transcript_item(
    *, role: str, message: str, time_in_call_secs: int, source_medium: str, interrupted: bool = False
) -> dict[str, Any]:
    """One transcript entry in ElevenLabs' shape."""
    return {
        "role": role,
        "message": message,
        "time_in_call_secs": time_in_call_secs,
        "tool_calls": [],
        "tool_results": [],
        "feedback": None,
        "interrupted": interrupted,
        "original_message": None,
        "source_medium": source_medium,
        "conversation_turn_metrics": None,
    }


def _unix(moment: datetime | None) -> int | None:
    return int(moment.timestamp()) if moment else None


def _analysis(conversation: SimulatedConversation) -> dict[str, Any]:
    agent = simulated_agent(conversation.agent_type)
    user_turns = sum(1 for item in conversation.transcript if item.get("role") == "user")
    agent_turns = sum(1 for item in conversation.transcript if item.get("role") == "agent")
    engaged = "success" if user_turns else "failure"
    reason = conversation.termination_reason or "still in progress"
    return {
        "call_successful": engaged,
        "call_summary_title": f"Simulated {conversation.agent_type} call",
        "transcript_summary": (
            f"A customer talked with {agent.name}, the simulated {conversation.agent_type} agent: "
            f"{user_turns} customer and {agent_turns} agent turns. The call ended: {reason}."
        ),
        "evaluation_criteria_results": {
            "customer_engaged": {
                "criteria_id": "customer_engaged",
                "result": engaged,
                "rationale": f"The customer sent {user_turns} message(s).",
            }
        },
        "data_collection_results": {
            "agent_type": {
                "data_collection_id": "agent_type",
                "value": conversation.agent_type,
                "rationale": "Set by the simulated agent.",
            }
        },
    }


def simulator_get_conversation(conversation_id: str) -> dict[str, Any]:
    """The conversation as ``GET /v1/convai/conversations/{id}`` returns it.

    Like ElevenLabs, the transcript is there once the conversation has ended.
    Raises ``SimulatedConversation.DoesNotExist`` for an unknown id.
    """
    conversation = SimulatedConversation.objects.get(pk=conversation_id)
    client_data = conversation.client_data or {}
    override = client_data.get("conversation_config_override") or {}
    language = (override.get("agent") or {}).get("language") or "en"
    started = conversation.connected_at
    ended = conversation.ended_at
    if started is None:
        duration = 0
    else:
        duration = max(0, int(((ended or timezone.now()) - started).total_seconds()))
    return {
        "conversation_id": conversation.conversation_id,
        "agent_id": conversation.agent_id,
        "status": conversation.status,
        "user_id": client_data.get("user_id"),
        "transcript": list(conversation.transcript),
        "metadata": {
            "start_time_unix_secs": _unix(started or conversation.created_at),
            "call_duration_secs": duration,
            "cost": 0,
            "termination_reason": conversation.termination_reason,
            "error": None,
            "main_language": language,
            "phone_call": conversation.phone_call,
        },
        "analysis": _analysis(conversation) if conversation.status == SimulatedConversation.Status.DONE else None,
        "conversation_initiation_client_data": client_data or None,
        "has_audio": False,
        "has_user_audio": False,
        "has_response_audio": False,
    }


def simulator_finish_conversation(
    *,
    conversation_id: str,
    transcript: list[dict[str, Any]],
    termination_reason: str,
    client_data: dict[str, Any],
    text_only: bool,
) -> bool:
    """Store the ended conversation (status done). Returns False if it had already ended."""
    finished = (
        SimulatedConversation.objects.filter(pk=conversation_id)
        .exclude(status__in=[SimulatedConversation.Status.DONE, SimulatedConversation.Status.FAILED])
        .update(
            status=SimulatedConversation.Status.DONE,
            ended_at=timezone.now(),
            transcript=transcript,
            termination_reason=termination_reason[:255],
            client_data=client_data,
            text_only=text_only,
        )
    )
    return finished == 1


# --- The post-call webhook ------------------------------------------------------------------------


def post_call_envelope(conversation_id: str) -> dict[str, Any]:
    return {
        "type": "post_call_transcription",
        "event_timestamp": int(time.time()),
        "data": simulator_get_conversation(conversation_id),
    }


def simulator_send_post_call_webhook(*, conversation_id: str) -> bool:
    """POST the signed ``post_call_transcription`` webhook to our own endpoint, as ElevenLabs would.

    Failures are logged, never raised: like ElevenLabs, the sender gives up and the
    reconciler can still fetch the conversation. Only a 200 counts as delivered.
    """
    conversation = SimulatedConversation.objects.get(pk=conversation_id)
    if not conversation.http_base:
        logger.warning("simulated conversation %s has no webhook address; nothing sent", conversation_id)
        return False
    body = json.dumps(post_call_envelope(conversation_id), separators=(",", ":")).encode()
    url = f"{conversation.http_base}{WEBHOOK_PATH}"
    headers = {
        "Content-Type": "application/json",
        SIGNATURE_HEADER: sign(body, secret=simulator_signing_secret()),
        "User-Agent": "voiceagent-simulated-agent",
    }
    try:
        # No redirects: a redirected POST turns into a GET and the webhook would be lost quietly.
        response = requests.post(url, data=body, headers=headers, timeout=WEBHOOK_TIMEOUT, allow_redirects=False)
    except requests.RequestException as exc:
        logger.warning("post-call webhook for %s to %s failed: %s", conversation_id, url, type(exc).__name__)
        return False
    if response.status_code != 200:
        logger.warning(
            "post-call webhook for %s to %s answered %s: %s",
            conversation_id,
            url,
            response.status_code,
            response.text[:200],
        )
        return False
    SimulatedConversation.objects.filter(pk=conversation_id).update(webhook_sent_at=timezone.now())
    logger.info("post-call webhook for %s delivered to %s", conversation_id, url)
    return True
