"""What voiceagent keeps about ElevenLabs itself: the webhook ledger and the simulated agent's conversations."""

from __future__ import annotations

from django.db import models
from django.db.models import Q


class WebhookOutcome(models.TextChoices):
    PROCESSED = "processed", "Processed"
    DUPLICATE = "duplicate", "Duplicate"
    IGNORED = "ignored", "Ignored"
    UNMATCHED = "unmatched", "Unmatched (kept until a session claims the conversation)"
    MALFORMED = "malformed", "Malformed (signed, but refused: see error)"


class WebhookDelivery(models.Model):
    """One accepted (signature-verified) post-call webhook delivery."""

    event_type = models.CharField(max_length=64)
    conversation_id = models.CharField(max_length=128, blank=True, db_index=True)
    agent_id = models.CharField(max_length=128, blank=True)
    event_timestamp = models.BigIntegerField(null=True, blank=True)
    signature_timestamp = models.BigIntegerField(null=True, blank=True)
    received_at = models.DateTimeField(auto_now_add=True, db_index=True)
    processed_at = models.DateTimeField(null=True, blank=True)
    outcome = models.CharField(max_length=16, choices=WebhookOutcome.choices)
    error = models.TextField(blank=True)
    session = models.ForeignKey(
        "voice_sessions.VoiceSession",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="webhook_deliveries",
    )
    body_sha256 = models.CharField(max_length=64, blank=True)
    body_bytes = models.PositiveBigIntegerField(default=0)
    # The event's data, minus bulky fields (audio is stored as a file, not here).
    payload = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-received_at"]
        verbose_name_plural = "webhook deliveries"
        constraints = [
            # One delivery per (type, conversation) is processed; repeats are recorded as duplicates.
            models.UniqueConstraint(
                fields=["event_type", "conversation_id"],
                condition=Q(outcome__in=["processed", "unmatched"]) & ~Q(conversation_id=""),
                name="webhook_once_per_conversation",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.event_type} {self.conversation_id or '-'} ({self.outcome})"


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
    termination_reason = models.CharField(max_length=255, blank=True)
    webhook_sent_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"simulated {self.agent_type} conversation {self.conversation_id} ({self.status})"
