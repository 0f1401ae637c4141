"""The simulated agent behind the seam of :mod:`elevenlabs.backends`, in ElevenLabs' shapes.

Named by the ELEVENLABS_SIMULATOR_BACKEND setting, so that nothing outside this app imports it.
"""

from __future__ import annotations

from typing import IO, Any

from elevenlabs.backends import Credential, configured_agent_id
from elevenlabs.client import ElevenLabsError
from elevenlabs.simulator.agents import AGENTS, simulated_agent, simulator_agent_id
from elevenlabs.simulator.conversations import simulator_get_conversation
from elevenlabs.simulator.models import SimulatedConversation
from elevenlabs.simulator.signed_urls import simulator_mint_signed_url


class SimulatedAgentBackend:
    """The simulated agent: signed URLs to its local WebSocket, its conversations' details, no recordings."""

    def agent_id(self, agent_type: str) -> str:
        """The configured agent's id when there is one (that agent, simulated), else the simulator's own."""
        simulated_agent(agent_type)
        return configured_agent_id(agent_type) or simulator_agent_id(agent_type)

    def agent_type_of(self, agent_id: str) -> str | None:
        """Only the simulator's own ids: a configured agent id is ElevenLabs' agent, even when it is simulated."""
        return next((t for t in AGENTS if simulator_agent_id(t) == agent_id), None)

    def mint_credential(self, *, session: Any, agent_id: str, connection_type: str, text_only: bool) -> Credential:
        # Only WebSocket is simulated: a WebRTC request gets the WebSocket form, which the browser client also speaks.
        minted = simulator_mint_signed_url(
            session=session, agent_id=agent_id, agent_type=session.agent_type, text_only=text_only
        )
        return Credential(
            connection_type="websocket",
            agent_id=agent_id,
            expires_at=minted["expires_at"],
            simulation=True,
            signed_url=minted["signed_url"],
            conversation_id=minted["conversation_id"],
        )

    def get_conversation(self, conversation_id: str) -> dict[str, Any]:
        try:
            return simulator_get_conversation(conversation_id)
        except SimulatedConversation.DoesNotExist:
            # What ElevenLabs answers for a conversation it does not know.
            raise ElevenLabsError(
                "Conversation not found",
                code="conversation_not_found",
                status=404,
                upstream_code="conversation_not_found",
            ) from None

    def download_audio(self, conversation_id: str, fileobj: IO[bytes]) -> int | None:
        return None  # the simulated agent records no audio (its conversations say has_audio: false)
