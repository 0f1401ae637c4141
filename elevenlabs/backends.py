"""The seam between the start flow, the reconciler and whoever holds the conversations.

A session's conversations are held by ElevenLabs, or, for a session with
``simulation=True``, by the simulated agent. Both implement
:class:`ConversationBackend` with ElevenLabs' shapes (the same :class:`Credential`,
the same conversation details), so the code above the seam has no ``if simulation``:
it asks :func:`backend_for` once per session and talks to what it gets.

The simulated agent is an app of its own (``elevenlabs.simulator``) that this module
never imports: its backend is named by the ``ELEVENLABS_SIMULATOR_BACKEND`` setting
(a dotted path, as EMAIL_BACKEND names a mail backend), which settings sets only
when the app is installed (``SIMULATOR_ENABLED``).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import IO, Any, Protocol
from urllib.parse import parse_qs, urlsplit

from django.conf import settings
from django.utils import timezone
from django.utils.module_loading import import_string

from elevenlabs import client as elevenlabs_client
from elevenlabs.client import CONVERSATION_ID
from voiceagent.errors import ApplicationError

logger = logging.getLogger("voiceagent.elevenlabs.credentials")

# How long a credential opens a conversation: ElevenLabs' figures, which the simulated agent keeps too.
SIGNED_URL_LIFETIME = timedelta(minutes=15)
CONVERSATION_TOKEN_LIFETIME = timedelta(minutes=10)
AGENT_ID_SETTINGS = {"support": "ELEVENLABS_SUPPORT_AGENT_ID", "sales": "ELEVENLABS_SALES_AGENT_ID"}


class AgentNotConfigured(ApplicationError):
    """The agent type has no ElevenLabs agent id configured."""

    status = 400
    code = "agent_not_configured"

    def __init__(self, agent_type: str):
        self.agent_type = agent_type
        self.variable = AGENT_ID_SETTINGS[agent_type]
        super().__init__(
            f"No {agent_type} agent is configured: set {self.variable} to its ElevenLabs agent id.",
            variable=self.variable,
        )


class SimulationUnavailable(ApplicationError):
    """A session asked for the simulated agent on a deployment that leaves it out (the caller's 400)."""

    status = 400
    code = "simulation_unavailable"

    def __init__(self) -> None:
        super().__init__(
            "Simulated sessions are not available here: the simulated agent is not installed "
            "(SIMULATOR_ENABLED=false).",
            variable="SIMULATOR_ENABLED",
        )


@dataclass(frozen=True)
class Credential:
    """What lets a browser open one conversation without our API key, and the conversation it opens."""

    connection_type: str
    agent_id: str
    expires_at: datetime
    simulation: bool
    signed_url: str | None = None
    conversation_token: str | None = None
    conversation_id: str | None = None

    def as_response(self) -> dict:
        """The `elevenlabs_conversation` object of the start contract (no empty credential keys)."""
        body = asdict(self)
        for key in ("signed_url", "conversation_token", "conversation_id"):
            if body[key] is None:
                del body[key]
        return body


class ConversationBackend(Protocol):
    """Who holds a session's conversations. Shapes are ElevenLabs' whoever implements it."""

    def agent_id(self, agent_type: str) -> str:
        """The agent that answers ``agent_type`` sessions. Raises :class:`AgentNotConfigured`."""
        ...

    def agent_type_of(self, agent_id: str) -> str | None:
        """The agent type that ``agent_id`` (an agent asking about an inbound call) answers as; None if none."""
        ...

    def mint_credential(self, *, session: Any, agent_id: str, connection_type: str, text_only: bool) -> Credential:
        """A credential for one conversation with ``agent_id``; raises ElevenLabsError when refused."""
        ...

    def get_conversation(self, conversation_id: str) -> dict[str, Any]:
        """The conversation as ``GET /v1/convai/conversations/{id}`` returns it; raises ElevenLabsError."""
        ...

    def download_audio(self, conversation_id: str, fileobj: IO[bytes]) -> int | None:
        """Stream the call's recording into ``fileobj``; the bytes written, or None when there is none."""
        ...


def configured_agent_id(agent_type: str) -> str:
    """The ElevenLabs agent id configured for ``agent_type`` ("" when none is)."""
    return getattr(settings, AGENT_ID_SETTINGS[agent_type], "")


class ElevenLabsBackend:
    """ElevenLabs itself, through the HTTP client (elevenlabs.client)."""

    def agent_id(self, agent_type: str) -> str:
        if configured := configured_agent_id(agent_type):
            return configured
        raise AgentNotConfigured(agent_type)

    def agent_type_of(self, agent_id: str) -> str | None:
        return next((t for t in AGENT_ID_SETTINGS if agent_id and configured_agent_id(t) == agent_id), None)

    def mint_credential(self, *, session: Any, agent_id: str, connection_type: str, text_only: bool) -> Credential:
        now = timezone.now()
        client = elevenlabs_client.get_client()
        if connection_type == "websocket":
            # Asked with include_conversation_id so that the session knows its conversation before any client
            # reports it (the signature then opens one conversation only).
            body = client.get_signed_url(agent_id, include_conversation_id=True)
            return Credential(
                connection_type="websocket",
                agent_id=agent_id,
                expires_at=now + SIGNED_URL_LIFETIME,
                simulation=False,
                signed_url=body["signed_url"],
                conversation_id=_valid_conversation_id(body.get("conversation_id"))
                or _valid_conversation_id(_query_param(body["signed_url"], "conversation_id")),
            )
        body = client.get_conversation_token(agent_id, participant_name=session.customer_id)
        return Credential(
            connection_type="webrtc",
            agent_id=agent_id,
            expires_at=now + CONVERSATION_TOKEN_LIFETIME,
            simulation=False,
            conversation_token=body["token"],
            conversation_id=_valid_conversation_id(body.get("conversation_id")),
        )

    def get_conversation(self, conversation_id: str) -> dict[str, Any]:
        return elevenlabs_client.get_client().get_conversation(conversation_id)

    def download_audio(self, conversation_id: str, fileobj: IO[bytes]) -> int | None:
        return elevenlabs_client.get_client().download_conversation_audio(conversation_id, fileobj)


def backend_for(*, simulation: bool) -> ConversationBackend:
    """The backend for a session: ElevenLabs, or the simulated agent when ``simulation`` (and it is installed).

    Raises :class:`SimulationUnavailable` when simulation is asked for and ELEVENLABS_SIMULATOR_BACKEND names none.
    """
    if not simulation:
        return ElevenLabsBackend()
    path = getattr(settings, "ELEVENLABS_SIMULATOR_BACKEND", "")
    if not path:
        raise SimulationUnavailable()
    return import_string(path)()


def agent_answering(agent_id: str) -> tuple[str, bool] | None:
    """The agent type ``agent_id`` answers as and whether it is the simulated agent; None when no agent of ours has it.

    A configured agent id is ElevenLabs' agent; the simulated agent's own ids count only where it is installed.
    """
    if agent_type := ElevenLabsBackend().agent_type_of(agent_id):
        return agent_type, False
    try:
        simulator = backend_for(simulation=True)
    except SimulationUnavailable:
        return None
    if agent_type := simulator.agent_type_of(agent_id):
        return agent_type, True
    return None


def _query_param(url: str, name: str) -> str | None:
    values = parse_qs(urlsplit(url).query).get(name) or []
    return values[0] if len(values) == 1 else None


def _valid_conversation_id(value) -> str | None:
    """``value`` if it is shaped like a conversation id, else None (the session then stays unbound)."""
    if value is None:
        return None
    if isinstance(value, str) and CONVERSATION_ID.match(value):
        return value
    logger.warning("ElevenLabs returned a conversation id of an unexpected shape; the session stays unbound")
    return None
