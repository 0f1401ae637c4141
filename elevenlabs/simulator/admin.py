"""Operators' read-only view of the simulated agent's conversations."""

from __future__ import annotations

from django.contrib import admin

from elevenlabs.admin import ReadOnlyAdmin, session_admin_link
from elevenlabs.simulator.models import SimulatedConversation
from voiceagent.admin_display import transcript_table


@admin.register(SimulatedConversation)
class SimulatedConversationAdmin(ReadOnlyAdmin):
    list_display = ["conversation_id", "agent_type", "status", "session_link", "created_at", "ended_at"]
    list_filter = ["status", "agent_type"]
    search_fields = ["conversation_id"]
    fields = [
        "conversation_id",
        "agent_id",
        "agent_type",
        "status",
        "session_link",
        "text_only",
        "created_at",
        "expires_at",
        "connected_at",
        "ended_at",
        "termination_reason",
        "webhook_sent_at",
        "transcript_pretty",
    ]
    readonly_fields = fields

    @admin.display(description="session", ordering="session")
    def session_link(self, conversation: SimulatedConversation) -> str:
        return session_admin_link(conversation.session_id)

    @admin.display(description="transcript")
    def transcript_pretty(self, conversation: SimulatedConversation) -> str:
        return transcript_table(conversation.transcript)
