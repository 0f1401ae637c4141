"""A voice session and its timeline.

Status changes go through :mod:`sessions.services` only; the model holds
single-row helpers and the data.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from rest_framework.authtoken.models import TokenProxy


class AgentType(models.TextChoices):
    SUPPORT = "support", "Support"
    SALES = "sales", "Sales"


class Direction(models.TextChoices):
    INBOUND = "inbound", "Inbound"
    OUTBOUND = "outbound", "Outbound"


class Status(models.TextChoices):
    CREATED = "created", "Created"
    CONNECTING = "connecting", "Connecting"
    ACTIVE = "active", "Active"
    ENDED = "ended", "Ended"
    FAILED = "failed", "Failed"


TERMINAL_STATUSES = frozenset({Status.ENDED, Status.FAILED})


class EndReason(models.TextChoices):
    USER = "user", "Ended by the user"
    AGENT = "agent", "Ended by the agent"
    TIMEOUT = "timeout", "Timed out"
    WEBHOOK = "webhook", "Post-call webhook"
    OPERATOR = "operator", "Ended by an operator"
    ERROR = "error", "Connection error"
    UPSTREAM = "upstream", "Ended at ElevenLabs (found by the reconciler)"


class EventKind(models.TextChoices):
    """What a timeline row records: a transition, a fact learnt about the call, or a client event."""

    CREATED = "created", "Created"
    CONNECTING = "connecting", "Credential minted"
    INBOUND_CALL = "inbound_call", "Inbound call answered"
    CONVERSATION_BOUND = "conversation_bound", "Conversation bound"
    ACTIVE = "active", "Client connected"
    ENDED = "ended", "Ended"
    FAILED = "failed", "Failed"
    POST_CALL = "post_call", "Post-call data stored"
    POST_CALL_AUDIO = "post_call_audio", "Recording stored"
    CALL_INITIATION_FAILURE = "call_initiation_failure", "Call initiation failure reported"
    REDACTED = "redacted", "Personal data masked"
    MEMORY = "memory", "Previous calls remembered"
    PRUNED = "pruned", "Removed by retention"
    TOOL_CALL = "tool_call", "Server tool called"
    CALLBACK_DONE = "callback_done", "Callback done"
    CLIENT_STATUS = "client.status", "Client status"
    CLIENT_MODE = "client.mode", "Client mode"
    CLIENT_MESSAGE = "client.message", "Client message"
    CLIENT_ERROR = "client.error", "Client error"
    CLIENT_DISCONNECT = "client.disconnect", "Client disconnected"


class CallOutcome(models.TextChoices):
    """ElevenLabs' verdict on a call (``analysis.call_successful``); blank until post-call data arrives."""

    SUCCESS = "success", "Success"
    FAILURE = "failure", "Failure"
    UNKNOWN = "unknown", "Unknown"


class ConnectionType(models.TextChoices):
    WEBRTC = "webrtc", "WebRTC"
    WEBSOCKET = "websocket", "WebSocket"
    PHONE = "phone", "Phone call"


class VoiceSession(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    customer_id = models.CharField(max_length=128, db_index=True)
    agent_type = models.CharField(max_length=16, choices=AgentType.choices, default=AgentType.SUPPORT)
    agent_id = models.CharField(max_length=128, blank=True, help_text="ElevenLabs agent the credential was minted for.")
    direction = models.CharField(max_length=16, choices=Direction.choices, default=Direction.INBOUND)
    locale = models.CharField(max_length=35, default="en-US")
    simulation = models.BooleanField(default=False, help_text="Runs against the local simulated agent.")
    # Not indexed alone: session_status_updated (status, updated_at) serves every lookup by status.
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.CREATED)
    connection_type = models.CharField(max_length=16, choices=ConnectionType.choices, blank=True)
    conversation_id = models.CharField(
        max_length=128, null=True, blank=True, unique=True, help_text="ElevenLabs conversation id, once known."
    )
    phone_number = models.CharField(
        max_length=32, blank=True, help_text="Number dialled for outbound calls; the caller's for inbound ones."
    )
    call_sid = models.CharField(
        max_length=64,
        null=True,
        blank=True,
        unique=True,
        help_text="The telephony provider's id of the phone call (Twilio CallSid, SIP Call-ID), once known.",
    )
    dynamic_variables = models.JSONField(default=dict, blank=True)
    idempotency_key = models.CharField(
        max_length=128, null=True, blank=True, help_text="Client-chosen key: a retried start never starts twice."
    )

    # Neither indexed alone: session_owner_created (created_by, created_at) and session_created_facts
    # (created_at, ...) lead with them. Every index is one more B-tree written by every new session.
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="voice_sessions",
        db_index=False,
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    started_at = models.DateTimeField(null=True, blank=True, help_text="When the client reported the connection.")
    ended_at = models.DateTimeField(null=True, blank=True)

    end_reason = models.CharField(max_length=16, choices=EndReason.choices, blank=True)
    failure_code = models.CharField(max_length=64, blank=True)
    failure_message = models.TextField(blank=True)
    upstream_status = models.PositiveSmallIntegerField(null=True, blank=True)

    # Post-call data, from the webhook or the reconciler: the payload as received, and its facts as
    # typed columns that filters, analytics and the admin can reach (sessions.services.lifecycle fills both).
    transcript = models.JSONField(default=list, blank=True)
    analysis = models.JSONField(default=dict, blank=True)
    call_metadata = models.JSONField(default=dict, blank=True)
    call_successful = models.CharField("outcome", max_length=16, choices=CallOutcome.choices, blank=True)
    transcript_summary = models.TextField(blank=True)
    summary_title = models.CharField(max_length=255, blank=True)
    call_duration_secs = models.PositiveIntegerField(null=True, blank=True)
    cost = models.PositiveIntegerField(null=True, blank=True, help_text="ElevenLabs credits (metadata.cost).")
    termination_reason = models.CharField(max_length=255, blank=True)
    main_language = models.CharField(max_length=35, blank=True)
    post_call_received_at = models.DateTimeField(null=True, blank=True)
    audio = models.FileField(upload_to="call-audio/%Y/%m/", blank=True)
    pruned_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="When retention (manage.py prune_sessions) removed the transcript, analysis and recording; "
        "the post-call columns stay.",
    )

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["status", "updated_at"], name="session_status_updated"),
            models.Index(fields=["created_by", "-created_at"], name="session_owner_created"),
            # Retention (prune_sessions) walks the sessions that ended before a day, oldest first.
            # Only ended ones: a new session, whose ended_at is null, writes nothing to it.
            models.Index(fields=["ended_at"], name="session_ended", condition=models.Q(ended_at__isnull=False)),
            # /api/analytics (sessions.analytics) over everyone's sessions: a period of created_at and every
            # column it counts, so both databases answer from the index alone (see bench/analytics.py).
            models.Index(
                fields=["created_at", "agent_type", "status", "call_successful", "call_duration_secs", "cost"],
                name="session_created_facts",
            ),
            # Its failures by code: only failed sessions, by period.
            models.Index(
                fields=["created_at", "failure_code"],
                name="session_failed_created",
                condition=models.Q(status="failed"),
            ),
        ]
        constraints = [
            models.UniqueConstraint(fields=["created_by", "idempotency_key"], name="session_idempotency_key"),
        ]

    def __str__(self) -> str:
        return f"{self.agent_type} session {self.id} ({self.status})"

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES

    @property
    def has_post_call_data(self) -> bool:
        return self.post_call_received_at is not None

    @property
    def recording_filename(self) -> str:
        """What a download of the recording is called: the conversation it recorded, else the session."""
        return f"{self.conversation_id or self.pk}.mp3"


class SessionEvent(models.Model):
    """One row of a session's timeline: a transition or something a client saw."""

    # Not indexed alone: event_session_created (session, created_at) leads with it.
    session = models.ForeignKey(VoiceSession, on_delete=models.CASCADE, related_name="events", db_index=False)
    kind = models.CharField(max_length=48)
    from_status = models.CharField(max_length=16, choices=Status.choices, blank=True)
    to_status = models.CharField(max_length=16, choices=Status.choices, blank=True)
    payload = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [models.Index(fields=["session", "created_at"], name="event_session_created")]

    def __str__(self) -> str:
        return f"{self.kind} at {self.created_at:%Y-%m-%d %H:%M:%S}"


class CallbackStatus(models.TextChoices):
    OPEN = "open", "Open"
    DONE = "done", "Done"


class Callback(models.Model):
    """A follow-up call the agent promised during a session (the ``schedule_callback`` tool)."""

    session = models.ForeignKey(VoiceSession, on_delete=models.CASCADE, related_name="callbacks")
    customer_id = models.CharField(max_length=128, db_index=True)
    phone_number = models.CharField(max_length=32, blank=True, help_text="The number to call back (E.164).")
    requested_time = models.DateTimeField(help_text="When the customer asked to be called back.")
    reason = models.TextField()
    status = models.CharField(max_length=8, choices=CallbackStatus.choices, default=CallbackStatus.OPEN)
    created_at = models.DateTimeField(auto_now_add=True)
    done_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["requested_time", "id"]
        indexes = [models.Index(fields=["status", "requested_time"], name="callback_status_time")]

    def __str__(self) -> str:
        return f"callback to {self.customer_id} at {self.requested_time:%Y-%m-%d %H:%M} ({self.status})"


class ApiToken(TokenProxy):
    """A service's API token as operators see it: named by its first characters, never in full."""

    class Meta:
        proxy = True
        verbose_name = "API token"

    def __str__(self) -> str:
        return f"{self.key[:4]}… ({self.user})"
