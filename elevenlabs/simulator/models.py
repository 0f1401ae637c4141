"""The simulated agent's conversations, shaped like ElevenLabs' conversation details."""

from __future__ import annotations

from django.db import models


class SimulatedConversation(models.Model):
    """A conversation held by the simulated agent, shaped like ElevenLabs' conversation details."""

    class Status(models.TextChoices):
        INITIATED = "initiated"
        IN_PROGRESS = "in-progress"
        PROCESSING = "processing"
        DONE = "done"
        FAILED = "failed"

    conversation_id = models.CharField(max_length=128, primary_key=True)
    agent_id = models.CharField(max_length=128)
    agent_type = models.CharField(max_length=16)
    session = models.ForeignKey(
        "voice_sessions.VoiceSession",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="simulated_conversations",
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.INITIATED)
    expires_at = models.DateTimeField(help_text="The signed URL must be used before this.")
    connected_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    text_only = models.BooleanField(default=False)
    http_base = models.CharField(
        max_length=255,
        blank=True,
        help_text="Our own server's base URL: the post-call webhook goes to its /elevenlabs/webhook.",
    )
    client_data = models.JSONField(
        default=dict, blank=True, help_text="The client's conversation_initiation_client_data (overrides, variables)."
    )
    transcript = models.JSONField(default=list, blank=True)
    phone_call = models.JSONField(
        null=True, blank=True, help_text="The phone call it simulates (metadata.phone_call), for an inbound call."
    )
    termination_reason = models.CharField(max_length=255, blank=True)
    webhook_sent_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        # The table the model had when it lived in the elevenlabs app: moving it kept every row.
        db_table = "elevenlabs_simulatedconversation"
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"simulated {self.agent_type} conversation {self.conversation_id} ({self.status})"
