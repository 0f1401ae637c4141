"""Input and output shapes of the /voice/sessions API (snake_case, as the prototype had them)."""

from __future__ import annotations

from django.urls import reverse
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from elevenlabs.client import CONVERSATION_ID
from sessions.models import AgentType, Direction, EndReason, SessionEvent, VoiceSession
from sessions.validators import (
    StrictBooleanField,
    choice_field,
    normalize_locale,
    validate_customer_id,
    validate_dynamic_variables,
    validate_phone_number,
)


class SessionCreateInput(serializers.Serializer):
    customer_id = serializers.CharField(max_length=128, validators=[validate_customer_id])
    direction = choice_field(Direction.choices, name="direction", default=Direction.INBOUND)
    locale = serializers.CharField(max_length=35, default="en-US")
    simulation = StrictBooleanField(default=False)
    agent_type = choice_field(AgentType.choices, name="agent_type", default=AgentType.SUPPORT)
    phone_number = serializers.CharField(max_length=16, required=False, default="", validators=[validate_phone_number])
    dynamic_variables = serializers.JSONField(required=False, default=dict, validators=[validate_dynamic_variables])

    def validate_locale(self, value: str) -> str:
        return normalize_locale(value)

    def validate(self, attrs: dict) -> dict:
        if attrs["direction"] == Direction.OUTBOUND and not attrs["phone_number"]:
            raise serializers.ValidationError({"phone_number": "Required for an outbound call."})
        return attrs


class SessionEndInput(serializers.Serializer):
    reason = choice_field(
        [(r.value, r.label) for r in (EndReason.USER, EndReason.AGENT, EndReason.OPERATOR)],
        name="reason",
        default=EndReason.USER,
    )


class SessionEventOutput(serializers.ModelSerializer):
    at = serializers.DateTimeField(source="created_at")

    class Meta:
        model = SessionEvent
        fields = ["kind", "from_status", "to_status", "payload", "at"]


class SessionOutput(serializers.ModelSerializer):
    session_id = serializers.UUIDField(source="id")
    created_by = serializers.CharField(source="created_by.username", default=None)
    audio_url = serializers.SerializerMethodField()

    class Meta:
        model = VoiceSession
        fields = [
            "session_id",
            "status",
            "customer_id",
            "created_at",
            "agent_type",
            "agent_id",
            "direction",
            "locale",
            "simulation",
            "connection_type",
            "conversation_id",
            "phone_number",
            "dynamic_variables",
            "created_by",
            "started_at",
            "ended_at",
            "end_reason",
            "failure_code",
            "failure_message",
            "upstream_status",
            "updated_at",
            "audio_url",
        ]

    @extend_schema_field(
        serializers.CharField(
            allow_null=True,
            help_text="Path of the recording on this server (GET it with the same login), or null before there is one.",
        )
    )
    def get_audio_url(self, session: VoiceSession) -> str | None:
        # A path rather than an absolute URL: most outputs are built without the request, and behind a
        # proxy the request's host is not necessarily the one the client used.
        return reverse("session-audio", args=[session.pk]) if session.audio else None


class SessionDetailOutput(SessionOutput):
    timeline = SessionEventOutput(source="events", many=True)
    has_audio = serializers.SerializerMethodField()

    class Meta(SessionOutput.Meta):
        fields = [
            *SessionOutput.Meta.fields,
            "call_successful",
            "transcript_summary",
            "call_duration_secs",
            "termination_reason",
            "transcript",
            "analysis",
            "call_metadata",
            "post_call_received_at",
            "has_audio",
            "timeline",
        ]

    def get_has_audio(self, session: VoiceSession) -> bool:
        return bool(session.audio)


CLIENT_EVENT_TYPES = ["connected", "status", "mode", "disconnect", "error", "message"]


class SessionEventInput(serializers.Serializer):
    """What the browser client reports. Fields beyond `type` depend on the type."""

    type = choice_field([(t, t) for t in CLIENT_EVENT_TYPES], name="event type")
    conversation_id = serializers.RegexField(
        CONVERSATION_ID,
        required=False,
        error_messages={"invalid": "Use the conversation id ElevenLabs reported (letters, digits, _ - : .)."},
    )
    status = choice_field(
        [(s, s) for s in ("connecting", "connected", "disconnecting", "disconnected")], name="status", required=False
    )
    mode = choice_field([(m, m) for m in ("speaking", "listening")], name="mode", required=False)
    reason = choice_field([(r, r) for r in ("user", "agent", "error")], name="reason", required=False)
    close_code = serializers.IntegerField(min_value=1000, max_value=4999, required=False)
    role = choice_field([(r, r) for r in ("user", "agent")], name="role", required=False)
    message = serializers.CharField(max_length=4000, required=False, allow_blank=True)
    code = serializers.CharField(max_length=64, required=False, allow_blank=True)

    REQUIRED = {
        "connected": ["conversation_id"],
        "status": ["status"],
        "mode": ["mode"],
        "disconnect": ["reason"],
        "error": ["message"],
        "message": ["role", "message"],
    }

    def validate(self, attrs: dict) -> dict:
        missing = [name for name in self.REQUIRED[attrs["type"]] if name not in attrs]
        if missing:
            raise serializers.ValidationError({name: f"Required for a {attrs['type']} event." for name in missing})
        return attrs


class StartSessionInput(serializers.Serializer):
    """`POST /api/voice/sessions`, camelCase as the prototype's clients send it."""

    agentType = choice_field(AgentType.choices, name="agentType")  # noqa: N815
    customerId = serializers.CharField(max_length=128, validators=[validate_customer_id])  # noqa: N815
    locale = serializers.CharField(max_length=35, default="en-US")
    direction = choice_field(Direction.choices, name="direction", default=Direction.INBOUND)
    dynamicVariables = serializers.JSONField(  # noqa: N815
        required=False, default=dict, validators=[validate_dynamic_variables]
    )
    textOnly = StrictBooleanField(default=False)  # noqa: N815
    simulation = StrictBooleanField(default=False)
    phoneNumber = serializers.CharField(  # noqa: N815
        max_length=16, required=False, default="", validators=[validate_phone_number]
    )

    def validate_locale(self, value: str) -> str:
        return normalize_locale(value)

    def validate(self, attrs: dict) -> dict:
        if attrs["direction"] == Direction.OUTBOUND and not attrs["phoneNumber"]:
            raise serializers.ValidationError({"phoneNumber": "Required for an outbound call."})
        return attrs


class ElevenLabsActionInput(serializers.Serializer):
    """`POST /api/elevenlabs`, the prototype's wrapper around starting and ending conversations."""

    action = choice_field([(a, a) for a in ("start_conversation", "end_conversation")], name="action")
    agentType = choice_field(AgentType.choices, name="agentType", required=False)  # noqa: N815
    sessionId = serializers.UUIDField(required=False)  # noqa: N815
    customerId = serializers.CharField(  # noqa: N815
        max_length=128, required=False, validators=[validate_customer_id]
    )
    textOnly = StrictBooleanField(default=False)  # noqa: N815

    def validate(self, attrs: dict) -> dict:
        if attrs["action"] == "end_conversation" and "sessionId" not in attrs:
            raise serializers.ValidationError({"sessionId": "Required to end a conversation."})
        if attrs["action"] == "start_conversation" and "sessionId" not in attrs and "agentType" not in attrs:
            raise serializers.ValidationError({"agentType": "Required to start a conversation without a sessionId."})
        return attrs
