"""Short-lived credentials that let a browser talk to an agent without our API key.

Real mode asks ElevenLabs for a signed WebSocket URL (valid 15 minutes) or a
WebRTC conversation token (valid 10 minutes). Simulation mode mints a signed
URL to the local simulated agent; only WebSocket is simulated, so a WebRTC
request gets the WebSocket form there.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from urllib.parse import parse_qs, urlsplit

from django.conf import settings
from django.utils import timezone

from elevenlabs import client as elevenlabs_client
from elevenlabs.client import CONVERSATION_ID
from voiceagent.errors import ApplicationError

logger = logging.getLogger("voiceagent.elevenlabs.credentials")

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


@dataclass(frozen=True)
class Credential:
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


def agent_id_for(agent_type: str, *, simulation: bool) -> str:
    configured = getattr(settings, AGENT_ID_SETTINGS[agent_type], "")
    if configured:
        return configured
    if simulation:
        from elevenlabs.simulator import simulator_agent_id

        return simulator_agent_id(agent_type)
    raise AgentNotConfigured(agent_type)


def resolve_connection_type(*, text_only: bool) -> str:
    # The browser client runs text-only sessions over WebSocket; voice defaults to WebRTC unless configured.
    return "websocket" if text_only else settings.ELEVENLABS_CONNECTION_TYPE


def credential_mint(
    *,
    session,
    agent_id: str,
    connection_type: str,
    text_only: bool,
) -> Credential:
    """Mint a credential for ``agent_id``. Raises ElevenLabsError when ElevenLabs refuses or fails."""
    now = timezone.now()
    if session.simulation:
        from elevenlabs.simulator import simulator_mint_signed_url

        minted = simulator_mint_signed_url(
            session=session,
            agent_id=agent_id,
            agent_type=session.agent_type,
            text_only=text_only,
        )
        return Credential(
            connection_type="websocket",
            agent_id=agent_id,
            expires_at=minted["expires_at"],
            simulation=True,
            signed_url=minted["signed_url"],
            conversation_id=minted["conversation_id"],
        )

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
