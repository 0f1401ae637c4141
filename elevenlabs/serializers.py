"""Input shapes of the ElevenLabs-shaped endpoints, camelCase as the prototype's clients send them.

Their fields are sessions' own definitions (sessions.serializers) under the prototype's names, with
``source=`` the domain's name: validated data carries session_create's keyword arguments.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.utils import timezone
from django.utils.dateparse import parse_datetime
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
from sessions.validators import CALL_SID, CONVERSATION_ID, StrictBooleanField, choice_field


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


# --- What ElevenLabs sends during a call (snake_case, as ElevenLabs names them) --------------------


class StrictCharField(serializers.CharField):
    """A JSON string only: DRF's CharField would take 15551234567 (a number) as "15551234567"."""

    default_error_messages = {"invalid": "Must be a string."}

    def to_internal_value(self, data) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


def call_sid_field(**kwargs) -> serializers.RegexField:
    return serializers.RegexField(
        CALL_SID,
        max_length=64,
        error_messages={"invalid": "Must be a call id: up to 64 letters, digits and _ . : @ -."},
        **kwargs,
    )


def conversation_id_field(**kwargs) -> serializers.RegexField:
    return serializers.RegexField(
        CONVERSATION_ID,
        max_length=128,
        error_messages={"invalid": "Must be a conversation id: up to 128 letters, digits and _ . : -."},
        **kwargs,
    )


class ConversationInitInput(serializers.Serializer):
    """ElevenLabs' conversation-initiation client-data webhook for an inbound phone call."""

    # Withheld numbers arrive empty, null or as words ("anonymous"): any string, judged by elevenlabs.inbound.
    caller_id = StrictCharField(max_length=64, required=False, allow_blank=True, allow_null=True, default="")
    agent_id = serializers.RegexField(
        CONVERSATION_ID,
        max_length=128,
        error_messages={"invalid": "Must be an agent id: up to 128 letters, digits and _ . : -."},
    )
    called_number = StrictCharField(max_length=64, required=False, allow_blank=True, allow_null=True, default="")
    call_sid = call_sid_field()


class ToolCallInput(serializers.Serializer):
    """What every server tool's body carries besides its arguments (ElevenLabs' system__ variables)."""

    conversation_id = conversation_id_field()
    call_sid = call_sid_field(required=False, allow_blank=True, default="")
    caller_id = StrictCharField(max_length=64, required=False, allow_blank=True, allow_null=True, default="")


class CustomerHistoryInput(serializers.Serializer):
    customer_id = customer_id_field(required=False)


# A callback further ahead than this is a misunderstanding, not a plan.
CALLBACK_HORIZON = timedelta(days=366)


class AwareDateTimeField(serializers.Field):
    """An ISO 8601 date and time with its offset: a callback time without one would be guessed, not known."""

    default_error_messages = {
        "invalid": "Must be a date and time in ISO 8601 with its offset, e.g. 2027-01-15T14:30:00+01:00.",
        "naive": "Needs a timezone offset (+01:00, or Z for UTC): a time without one is ambiguous.",
    }
    MAX_LENGTH = 64

    def to_internal_value(self, data) -> datetime:
        if not isinstance(data, str) or len(data) > self.MAX_LENGTH:
            self.fail("invalid")
        try:
            value = parse_datetime(data.strip())
        except ValueError:  # well formed, but no such moment (February 30th, hour 25)
            value = None
        if value is None:
            self.fail("invalid")
        if value.tzinfo is None:
            self.fail("naive")
        return value

    def to_representation(self, value) -> str:
        return value.isoformat()


class ScheduleCallbackInput(serializers.Serializer):
    when = AwareDateTimeField()
    reason = StrictCharField(max_length=500)
    phone_number = phone_number_field()

    def validate_when(self, value: datetime) -> datetime:
        now = timezone.now()
        if value <= now:
            raise serializers.ValidationError("Must be in the future.")
        if value > now + CALLBACK_HORIZON:
            raise serializers.ValidationError("Must be within a year.")
        return value
