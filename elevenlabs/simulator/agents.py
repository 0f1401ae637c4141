"""The simulated agents: who they are, what they say first, and how they answer.

The agents follow fixed scripts, so a conversation is deterministic.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sessions.memory import PREVIOUS_CALL_COUNT, PREVIOUS_CALL_SUMMARY

_VARIABLE = re.compile(r"\{\{\s*([A-Za-z_][\w]*)\s*\}\}")
_GOODBYE = re.compile(r"\b(bye|goodbye|good bye|bye bye|that'?s all|hang up|end (the )?call)\b", re.I)

# What the transcript says for a user turn heard only as audio: the simulator recognises no words.
SPOKEN_MESSAGE_PLACEHOLDER = "(spoken message)"
# Added to the greeting when the session remembers previous calls (CONVERSATION_MEMORY), as an agent's first
# message would use the variables in ElevenLabs.
REMEMBERED_CALLS = " Welcome back! I can see you have called us {{previous_call_count}} time(s) before."
REMEMBERED_SUMMARY = " Last time: {{previous_call_summary}}"


@dataclass(frozen=True)
class SimulatedAgent:
    """One scripted agent: what it says first, its replies in order, and how it says goodbye."""

    agent_type: str
    name: str
    first_message: str
    replies: tuple[str, ...]
    fallback: str
    farewell: str
    pitch_hz: float

    # (pattern, reply): questions the agent recognises whenever they come, before the scripted turns.
    topics: tuple[tuple[re.Pattern[str], str], ...] = ()

    def greeting(self, variables: dict[str, Any]) -> str:
        """The first message, as a template: with previous calls remembered, it says so (and what the last was)."""
        if previous_call_count(variables) < 1:
            return self.first_message
        summary = variables.get(PREVIOUS_CALL_SUMMARY)
        return self.first_message + REMEMBERED_CALLS + (REMEMBERED_SUMMARY if summary else "")

    def reply_to(self, text: str, *, turn: int) -> tuple[str, bool]:
        """The reply to the user's ``turn``-th message (0-based) and whether the agent then ends the call."""
        if _GOODBYE.search(text):
            return self.farewell, True
        for pattern, reply in self.topics:
            if pattern.search(text):
                return reply, False
        if turn < len(self.replies):
            return self.replies[turn], False
        return self.fallback, False


AGENTS: dict[str, SimulatedAgent] = {
    "support": SimulatedAgent(
        agent_type="support",
        name="Sam",
        first_message=(
            "Hi, thanks for calling support. This is Sam, your simulated support agent. What can I help you with today?"
        ),
        replies=(
            "I'm sorry to hear that. Could you give me the email address or the order number on your account, "
            "so I can look into it?",
            "Thank you, I have found your account. The problem started after the last update, "
            "and I have just reset that setting on our side.",
            "Could you try again now and tell me whether it works?",
            "Great, I'm glad that fixed it. Is there anything else I can help you with?",
        ),
        fallback="I have added that to your case notes. Is there anything else I can help you with?",
        farewell="Thanks for calling support. Have a great day, goodbye!",
        pitch_hz=165.0,
        topics=(
            (
                re.compile(r"\b(order|delivery|delivered|package|parcel|shipping|shipment)\b", re.I),
                "I'm sorry about your order. Could you give me the order number, so I can see where it is?",
            ),
            (
                re.compile(r"\b(password|log ?in|sign ?in|locked out)\b", re.I),
                "I can help with that. I have just sent a password reset link to the email address on your "
                "account; it stays valid for one hour.",
            ),
            (
                re.compile(r"\b(refund|charged?|invoice|billing|bill)\b", re.I),
                "Let me look at your billing. Refunds go back to the original payment method within five to seven "
                "business days.",
            ),
        ),
    ),
    "sales": SimulatedAgent(
        agent_type="sales",
        name="Alex",
        first_message=(
            "Hello! This is Alex from the sales team, your simulated sales agent. "
            "Are you looking for a plan for yourself or for your team?"
        ),
        replies=(
            "Got it. Roughly how many people would be using it?",
            "For a team that size the Business plan is usually the best fit: "
            "it includes shared workspaces, priority support and volume pricing.",
            "I can set up a fourteen day free trial for you right now. Shall I send the details by email?",
            "Perfect, the details are on their way. Is there anything else you would like to know?",
        ),
        fallback="That's a great question; I'll include the answer in the email I send you. Anything else?",
        farewell="Thanks for your time, it was a pleasure talking to you. Goodbye!",
        pitch_hz=230.0,
        topics=(
            (
                re.compile(r"\b(prices?|pricing|costs?|how much|expensive|cheap)\b", re.I),
                "The Starter plan is nineteen dollars per user a month, and Business is forty-nine, with volume "
                "pricing from twenty seats. Which sounds closer to what you need?",
            ),
            (
                re.compile(r"\b(trial|demo)\b", re.I),
                "I can set up a fourteen day free trial right now, no card needed. Shall I send the details by email?",
            ),
            (
                re.compile(r"\b(discounts?|deal|annual|yearly)\b", re.I),
                "Paying yearly saves two months, and teams of more than fifty get a further ten percent off.",
            ),
        ),
    ),
}


def simulated_agent(agent_type: str) -> SimulatedAgent:
    try:
        return AGENTS[agent_type]
    except KeyError:
        raise ValueError(f"unknown agent type {agent_type!r}; expected one of {sorted(AGENTS)}") from None


def simulator_agent_id(agent_type: str) -> str:
    """The agent id the simulator answers to when no real agent id is configured."""
    simulated_agent(agent_type)
    return f"sim_{agent_type}_agent"


def fill_dynamic_variables(text: str, variables: dict[str, Any]) -> str:
    """Replace ``{{name}}`` with the client's dynamic variable, as ElevenLabs does; unknown names stay as written."""

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        return str(variables[name]) if name in variables else match.group(0)

    return _VARIABLE.sub(value, text)


def previous_call_count(variables: dict[str, Any]) -> int:
    """The ``previous_call_count`` dynamic variable as a number (a client may send it as a string); 0 if unusable."""
    value = variables.get(PREVIOUS_CALL_COUNT)
    if isinstance(value, bool):
        return 0
    if isinstance(value, (int, float)):
        return max(0, int(value))
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return 0
