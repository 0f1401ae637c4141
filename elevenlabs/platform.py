"""ElevenLabs as the sessions domain's agent platform (settings.VOICE_AGENT_PLATFORM names this class)."""

from __future__ import annotations

from django.conf import settings

from elevenlabs.ingest import unmatched_delivery_before, webhook_attach_pending


class ElevenLabsPlatform:
    def simulation_by_default(self) -> bool:
        # Without an API key there is no ElevenLabs to talk to: every session runs against the simulated agent.
        return not settings.ELEVENLABS_API_KEY

    def may_claim(self, *, session, conversation_id: str) -> bool:
        # Post-call data for this conversation that waited since before the session existed: the session cannot
        # have opened that call, so a client reporting it is trying to read someone else's.
        return not unmatched_delivery_before(conversation_id, session.created_at)

    def conversation_claimed(self, *, session) -> None:
        webhook_attach_pending(session=session)
