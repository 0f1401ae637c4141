"""The simulated agent answering a phone call: the inbound loop, offline, over our own HTTP endpoints.

What ElevenLabs does when someone calls the agent's number, done against PUBLIC_BASE_URL as
ElevenLabs would reach it:

1. ask ``POST /elevenlabs/conversation-init`` who is calling (``Authorization: Bearer
   <ELEVENLABS_TOOLS_TOKEN>``), with the simulated agent's own id, so the session is simulated;
2. hold a scripted conversation in which the agent calls the ``customer_history`` server tool
   (``POST /elevenlabs/tools/customer_history``), which binds the conversation to the session;
3. end it and send the signed ``post_call_transcription`` webhook, whose
   ``metadata.phone_call.call_sid`` names the call.

Runs outside any request (manage.py simulate_inbound_call, or a thread the admin starts): it
calls our own server, whose views must not wait for the thread it would hold.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import requests
from django.conf import settings
from django.db import connections
from django.utils import timezone

from elevenlabs.simulator.agents import fill_dynamic_variables, simulated_agent, simulator_agent_id
from elevenlabs.simulator.conversations import (
    simulator_finish_conversation,
    simulator_send_post_call_webhook,
    transcript_item,
)
from elevenlabs.simulator.models import SimulatedConversation
from voiceagent.public_url import require_public_base_url

logger = logging.getLogger("elevenlabs.simulator")

CONVERSATION_INIT_PATH = "/elevenlabs/conversation-init"
TOOLS_PATH = "/elevenlabs/tools"
HTTP_TIMEOUT = (3.05, 15.0)
# The number the simulated caller dials (the agent's), when none is given.
AGENT_NUMBER = "+15550100000"
SECONDS_PER_TURN = 4

CUSTOMER_OPENING = "Hi, I'm calling about my order again."
CUSTOMER_GOODBYE = "Thanks, that's all. Goodbye!"


class SimulatedCallFailed(Exception):
    """Our own server refused a step of the simulated call (the message says which, and its answer)."""


@dataclass(frozen=True)
class SimulatedInboundCall:
    session_id: str
    conversation_id: str
    call_sid: str
    dynamic_variables: dict[str, Any]
    customer_history: dict[str, Any]
    webhook_delivered: bool


def _post(url: str, body: dict[str, Any], token: str) -> requests.Response:
    # No redirects: a redirected POST turns into a GET and the step would be lost quietly.
    return requests.post(
        url,
        json=body,
        headers={"Authorization": f"Bearer {token}", "User-Agent": "voiceagent-simulated-agent"},
        timeout=HTTP_TIMEOUT,
        allow_redirects=False,
    )


def _tools_token() -> str:
    token = settings.ELEVENLABS_TOOLS_TOKEN
    if not token:
        raise SimulatedCallFailed(
            "ELEVENLABS_TOOLS_TOKEN is not set: the conversation-init webhook and the tools accept no call without it."
        )
    return token


def _history_reply(history: dict[str, Any] | None) -> str:
    if history is None:
        return "I'm sorry, I can't see your earlier calls right now. How can I help you today?"
    calls = history.get("calls") or []
    if not calls:
        return "I can't find any earlier calls from this number. How can I help you today?"
    latest = calls[0]
    about = latest.get("summary_title") or latest.get("summary") or "your last call"
    return f"I can see {len(calls)} earlier call(s); the latest was about: {about}. Let's pick up from there."


def simulator_inbound_call(
    *, caller_id: str, agent_type: str = "support", called_number: str = AGENT_NUMBER, base_url: str | None = None
) -> SimulatedInboundCall:
    """Ring the simulated agent from ``caller_id`` and run the call to its post-call webhook.

    Raises :class:`SimulatedCallFailed` when the conversation-init webhook refuses the call; a
    failing tool call is part of the conversation (the agent carries on, as ElevenLabs' would).
    """
    agent = simulated_agent(agent_type)
    base = (base_url or require_public_base_url()).rstrip("/")
    token = _tools_token()
    agent_id = simulator_agent_id(agent_type)
    call_sid = f"CAsim{uuid.uuid4().hex}"

    asked = _post(
        f"{base}{CONVERSATION_INIT_PATH}",
        {"caller_id": caller_id, "agent_id": agent_id, "called_number": called_number, "call_sid": call_sid},
        token,
    )
    if asked.status_code != 200:
        raise SimulatedCallFailed(f"conversation-init answered {asked.status_code}: {asked.text[:300]}")
    variables = asked.json()["dynamic_variables"]

    now = timezone.now()
    conversation = SimulatedConversation.objects.create(
        conversation_id=f"sim_conv_{uuid.uuid4().hex}",
        agent_id=agent_id,
        agent_type=agent_type,
        session_id=variables["session_id"],
        status=SimulatedConversation.Status.IN_PROGRESS,
        expires_at=now,
        connected_at=now,
        text_only=False,
        http_base=base,
        client_data={"dynamic_variables": variables, "user_id": variables.get("customer_id")},
        phone_call={
            "direction": "inbound",
            "type": "twilio",
            "phone_number_id": "sim_phone_number",
            "agent_number": called_number,
            "external_number": caller_id,
            "call_sid": call_sid,
        },
    )
    history, tool_turn = _call_customer_history(base, token, conversation, call_sid, caller_id)
    lines = [
        ("agent", fill_dynamic_variables(agent.first_message, variables)),
        ("user", CUSTOMER_OPENING),
        tool_turn,
        ("agent", _history_reply(history)),
        ("user", CUSTOMER_GOODBYE),
        ("agent", agent.farewell),
    ]
    transcript = []
    for index, line in enumerate(lines):
        if isinstance(line, dict):
            transcript.append({**line, "time_in_call_secs": index * SECONDS_PER_TURN})
            continue
        role, message = line
        transcript.append(
            transcript_item(
                role=role, message=message, time_in_call_secs=index * SECONDS_PER_TURN, source_medium="audio"
            )
        )
    # The call lasted as long as its turns: the post-call data says so.
    SimulatedConversation.objects.filter(pk=conversation.pk).update(
        connected_at=now - timedelta(seconds=len(lines) * SECONDS_PER_TURN)
    )
    simulator_finish_conversation(
        conversation_id=conversation.conversation_id,
        transcript=transcript,
        termination_reason="end_call tool was called.",
        client_data=conversation.client_data,
        text_only=False,
    )
    delivered = simulator_send_post_call_webhook(conversation_id=conversation.conversation_id)
    logger.info(
        "simulated inbound call %s from %s: session %s, conversation %s, webhook %s",
        call_sid,
        caller_id or "a withheld number",
        variables["session_id"],
        conversation.conversation_id,
        "delivered" if delivered else "not delivered",
    )
    return SimulatedInboundCall(
        session_id=variables["session_id"],
        conversation_id=conversation.conversation_id,
        call_sid=call_sid,
        dynamic_variables=variables,
        customer_history=history or {},
        webhook_delivered=delivered,
    )


def _call_customer_history(
    base: str, token: str, conversation: SimulatedConversation, call_sid: str, caller_id: str
) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """The agent calls the customer_history tool as ElevenLabs would; returns its result and the transcript turn."""
    request_id = f"tool_{uuid.uuid4().hex[:12]}"
    body = {"conversation_id": conversation.conversation_id, "call_sid": call_sid, "caller_id": caller_id}
    started = time.perf_counter()
    try:
        answer = _post(f"{base}{TOOLS_PATH}/customer_history", body, token)
        ok = answer.status_code == 200
        result_text = answer.text
    except requests.RequestException as exc:
        ok, result_text = False, f"{type(exc).__name__}"
    latency = round(time.perf_counter() - started, 3)
    turn = transcript_item(
        role="agent", message="Let me look at your previous calls.", time_in_call_secs=0, source_medium="audio"
    )
    turn["tool_calls"] = [
        {
            "type": "webhook",
            "request_id": request_id,
            "tool_name": "customer_history",
            "params_as_json": json.dumps(body),
            "tool_has_been_called": True,
        }
    ]
    turn["tool_results"] = [
        {
            "type": "webhook",
            "request_id": request_id,
            "tool_name": "customer_history",
            "result_value": result_text[:2000],
            "is_error": not ok,
            "tool_has_been_called": True,
            "tool_latency_secs": latency,
        }
    ]
    return (json.loads(result_text) if ok else None), turn


def simulator_inbound_call_in_background(**kwargs: Any) -> threading.Thread:
    """Run :func:`simulator_inbound_call` in a thread of its own (the admin's action): a view calling its own
    server would otherwise hold the one thread that server's views run in. Failures are logged."""

    def run() -> None:
        try:
            simulator_inbound_call(**kwargs)
        except Exception:
            logger.exception("simulated inbound call from %s failed", kwargs.get("caller_id"))
        finally:
            connections.close_all()  # this thread's own connections

    thread = threading.Thread(target=run, name="simulated-inbound-call", daemon=True)
    thread.start()
    return thread
