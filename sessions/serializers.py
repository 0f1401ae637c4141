"""Input and output shapes of the /voice/sessions API (snake_case, as the prototype had them)."""

from __future__ import annotations

from rest_framework import serializers

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
        ]


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
