"""Short-lived credentials that let a browser talk to an agent without our API key.

ElevenLabs mints a signed WebSocket URL (valid 15 minutes) or a WebRTC conversation
token (valid 10 minutes); the simulated agent mints a signed URL to its local
WebSocket (only WebSocket is simulated, so a WebRTC request gets that form there).
Which of them a session talks to is the backend seam's choice (:mod:`elevenlabs.backends`),
made from the session's ``simulation`` flag; nothing here branches on it.
"""

from __future__ import annotations

from django.conf import settings

from elevenlabs.backends import Credential, backend_for


def agent_id_for(agent_type: str, *, simulation: bool) -> str:
    """The agent for ``agent_type`` sessions. Raises AgentNotConfigured, or SimulationUnavailable."""
    return backend_for(simulation=simulation).agent_id(agent_type)


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
    """Mint a credential for ``agent_id`` from the session's backend. Raises ElevenLabsError when refused or failed."""
    return backend_for(simulation=session.simulation).mint_credential(
        session=session, agent_id=agent_id, connection_type=connection_type, text_only=text_only
    )
