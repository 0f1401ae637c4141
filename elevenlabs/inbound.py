"""Inbound phone calls: ElevenLabs asks who is calling before its agent speaks.

ElevenLabs answers a Twilio or SIP number and, with the agent's "conversation initiation client
data" webhook on, POSTs ``{caller_id, agent_id, called_number, call_sid}`` to
``/elevenlabs/conversation-init``. The answer opens the session that owns the call and tells
the agent what to know about the caller through dynamic variables. The conversation's id is
not in the question: the session learns it from the first tool call or, failing that, from the
post-call webhook, which carries the call sid (elevenlabs.ingest).
"""

from __future__ import annotations

import logging
from typing import Any

from elevenlabs.backends import agent_answering
from sessions.memory import memory_variables
from sessions.services.lifecycle import session_answer_inbound_call
from sessions.validators import E164
from voiceagent.errors import ApplicationError
from voiceagent.logging import session_context

logger = logging.getLogger("voiceagent.elevenlabs.inbound")

CLIENT_DATA_TYPE = "conversation_initiation_client_data"
# Twilio's stand-ins for a number the network did not pass on (anonymous, restricted, unavailable,
# unknown, blocked): well-formed E.164, but nobody's number.
WITHHELD_NUMBERS = frozenset({"+266696687", "+7378742833", "+86282452253", "+8656696", "+2562533"})
# What the agent is told when there is nothing to remember. The variables are always there: an agent
# that declares a variable fails a call that lacks it.
NO_MEMORY = {"previous_call_count": 0, "previous_call_summary": ""}


class UnknownAgent(ApplicationError):
    status = 404
    code = "unknown_agent"

    def __init__(self, agent_id: str):
        super().__init__(
            f"No agent here has the id {agent_id}: set ELEVENLABS_SUPPORT_AGENT_ID or ELEVENLABS_SALES_AGENT_ID "
            "to the id of the agent that answers this number.",
            agent_id=agent_id,
        )


def caller_number(caller_id: str | None) -> str:
    """The caller's E.164 number, or "" when it is withheld ("", "anonymous", a provider's stand-in...)."""
    number = (caller_id or "").strip()
    if not E164.match(number) or number in WITHHELD_NUMBERS:
        return ""
    return number


def _variable_values(variables: dict[str, Any]) -> dict[str, str | int | float | bool]:
    # ElevenLabs takes strings, numbers and booleans only; anything else would fail the call.
    return {
        name: "" if value is None else value
        for name, value in variables.items()
        if value is None or isinstance(value, (str, int, float, bool))
    }


def inbound_call_answer(*, caller_id: str | None, agent_id: str, called_number: str | None, call_sid: str) -> dict:
    """Open (or, for a repeated question, find) the session of this call; return ElevenLabs' client data.

    Raises :class:`UnknownAgent` when no agent of ours has ``agent_id``: no session is made.
    """
    answering = agent_answering(agent_id)
    if answering is None:
        logger.warning("inbound call %s for unknown agent %s refused", call_sid, agent_id)
        raise UnknownAgent(agent_id)
    agent_type, simulated = answering
    number = caller_number(caller_id)
    # A withheld number names nobody: the call is a customer of its own, and remembers nothing.
    customer_id = number or f"anonymous-{call_sid}"
    # Read before the session is written (the new call is none of the previous ones), outside its transaction.
    memory = memory_variables(customer_id=customer_id, exclude_session_id=None) if number else {}
    session, created = session_answer_inbound_call(
        customer_id=customer_id,
        phone_number=number,
        agent_type=agent_type,
        agent_id=agent_id,
        simulation=simulated,
        call_sid=call_sid,
        dynamic_variables={
            "customer_id": customer_id,
            "agent_type": agent_type,
            "caller_withheld": not number,
            **NO_MEMORY,
            **_variable_values(memory),
        },
        payload={"called_number": called_number or "", "caller_withheld": not number},
    )
    if not created:
        with session_context(session.pk):
            logger.info("inbound call %s asked about again: its session is unchanged", call_sid)
    return {
        "type": CLIENT_DATA_TYPE,
        "dynamic_variables": {"session_id": str(session.pk), **session.dynamic_variables},
    }
