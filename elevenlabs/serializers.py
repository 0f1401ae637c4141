"""Input shapes of the ElevenLabs-shaped endpoints, camelCase as the prototype's clients send them.

Their fields are sessions' own definitions (sessions.serializers) under the prototype's names, with
``source=`` the domain's name: validated data carries session_create's keyword arguments.
"""

from __future__ import annotations

from rest_framework import serializers

from sessions.serializers import (
    agent_type_field,
    customer_id_field,
    direction_field,
    dynamic_variables_field,
    locale_field,
    phone_number_field,
    require_phone_for_outbound,
)
from sessions.validators import StrictBooleanField, choice_field


class StartSessionInput(serializers.Serializer):
    """`POST /api/voice/sessions`: a new session and its conversation."""

    agentType = agent_type_field(name="agentType", source="agent_type")  # noqa: N815
    customerId = customer_id_field(source="customer_id")  # noqa: N815
    locale = locale_field()
    direction = direction_field()
    dynamicVariables = dynamic_variables_field(source="dynamic_variables")  # noqa: N815
    textOnly = StrictBooleanField(default=False, source="text_only")  # noqa: N815
    simulation = StrictBooleanField(default=False)
    phoneNumber = phone_number_field(source="phone_number")  # noqa: N815

    def validate(self, attrs: dict) -> dict:
        return require_phone_for_outbound(attrs, field_name="phoneNumber")


class ElevenLabsActionInput(serializers.Serializer):
    """`POST /api/elevenlabs`, the prototype's wrapper around starting and ending conversations."""

    action = choice_field([(a, a) for a in ("start_conversation", "end_conversation")], name="action")
    agentType = agent_type_field(name="agentType", source="agent_type", required=False)  # noqa: N815
    sessionId = serializers.UUIDField(required=False, source="session_id")  # noqa: N815
    customerId = customer_id_field(source="customer_id", required=False)  # noqa: N815
    textOnly = StrictBooleanField(default=False, source="text_only")  # noqa: N815

    def validate(self, attrs: dict) -> dict:
        if attrs["action"] == "end_conversation" and "session_id" not in attrs:
            raise serializers.ValidationError({"sessionId": "Required to end a conversation."})
        if attrs["action"] == "start_conversation" and "session_id" not in attrs and "agent_type" not in attrs:
            raise serializers.ValidationError({"agentType": "Required to start a conversation without a sessionId."})
        return attrs
