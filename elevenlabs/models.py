"""What voiceagent keeps about ElevenLabs itself: the webhook ledger (the simulator keeps its own conversations)."""

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
