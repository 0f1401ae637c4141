"""Input and output shapes of the /voice/sessions API (snake_case, as the prototype had them)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date
from functools import cached_property
from operator import attrgetter
from typing import Any

from django.urls import reverse
from django.utils import timezone
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.fields import SkipField
from rest_framework.relations import PKOnlyObject

from sessions.analytics import DEFAULT_PERIOD_DAYS, AnalyticsFilters, PeriodError, analytics_period
from sessions.models import AgentType, Direction, EndReason, SessionEvent, VoiceSession
from sessions.selectors import session_timeline
from sessions.validators import (
    CONVERSATION_ID,
    LocaleField,
    QueryBooleanField,
    StrictBooleanField,
    choice_field,
    validate_customer_id,
    validate_dynamic_variables,
    validate_phone_number,
)

# One definition per field of a new session, shared by every endpoint that creates one
# (POST /voice/sessions here, snake_case; the /api/... ones in elevenlabs, camelCase with
# ``source=`` the domain's name): validated data always carries session_create's keyword names.


def customer_id_field(**kwargs) -> serializers.CharField:
    return serializers.CharField(max_length=128, validators=[validate_customer_id], **kwargs)


def agent_type_field(*, name: str, **kwargs) -> serializers.ChoiceField:
    return choice_field(AgentType.choices, name=name, **kwargs)


def direction_field(**kwargs) -> serializers.ChoiceField:
    return choice_field(Direction.choices, name="direction", default=Direction.INBOUND, **kwargs)


def locale_field(**kwargs) -> LocaleField:
    return LocaleField(max_length=35, default="en-US", **kwargs)


def phone_number_field(**kwargs) -> serializers.CharField:
    return serializers.CharField(
        max_length=16, required=False, default="", validators=[validate_phone_number], **kwargs
    )


def dynamic_variables_field(**kwargs) -> serializers.JSONField:
    return serializers.JSONField(required=False, default=dict, validators=[validate_dynamic_variables], **kwargs)


class FieldsBuiltOnce:
    """Mixed into a flat input serializer: its fields are built once per class, then copied shallowly.

    DRF builds every declared field anew for each serializer instance (a deep copy re-runs each
    field's ``__init__`` and its validators): a tenth of the CPU of ``POST /voice/sessions`` (issue 10).
    Validating reads a field's settings and never changes them; what binding sets (name, parent,
    label, source) is set on the copy. So a shallow copy bound to the new serializer validates as the
    deep one would. A field holding fields of its own (a nested serializer, a child) would share them
    between instances, so it is refused here rather than copied.
    """

    def get_fields(self) -> dict[str, serializers.Field]:
        built = type(self).__dict__.get("_fields_built_once")
        if built is None:
            built = super().get_fields()
            for name, field in built.items():
                if isinstance(field, serializers.BaseSerializer) or hasattr(field, "child"):
                    raise TypeError(f"{type(self).__name__}.{name} has fields of its own: build it per instance")
                field.validators  # noqa: B018 - a lazily built list: build it now, once, for every copy
            # Two threads may build it at once: both results are equal, and either may stay.
            type(self)._fields_built_once = built
        return {name: _unbound_copy(field) for name, field in built.items()}


def _unbound_copy(field: serializers.Field) -> serializers.Field:
    # copy.copy() goes through __reduce_ex__ and Field.__new__: three times the cost of this.
    clone = object.__new__(type(field))
    clone.__dict__.update(field.__dict__)
    return clone


def require_phone_for_outbound(attrs: dict, *, field_name: str) -> dict:
    """An outbound session dials someone: it needs the number (named as the caller sent it)."""
    if attrs["direction"] == Direction.OUTBOUND and not attrs["phone_number"]:
        raise serializers.ValidationError({field_name: "Required for an outbound call."})
    return attrs


class SessionCreateInput(FieldsBuiltOnce, serializers.Serializer):
    customer_id = customer_id_field()
    direction = direction_field()
    locale = locale_field()
    simulation = StrictBooleanField(default=False)
    agent_type = agent_type_field(name="agent_type", default=AgentType.SUPPORT)
    phone_number = phone_number_field()
    dynamic_variables = dynamic_variables_field()

    def validate(self, attrs: dict) -> dict:
        return require_phone_for_outbound(attrs, field_name="phone_number")


class SessionEndInput(FieldsBuiltOnce, serializers.Serializer):
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
    created_by = serializers.SerializerMethodField()
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
            # The call's facts once post-call data arrives (null or "" before).
            "call_duration_secs",
            "cost",
            "call_successful",
            "termination_reason",
            "main_language",
            "summary_title",
            "transcript_summary",
        ]

    @extend_schema_field(serializers.CharField(allow_null=True, help_text="Username of who created the session."))
    def get_created_by(self, session: VoiceSession) -> str | None:
        # sessions.selectors.session_visible_to reads the name with the row; elsewhere the relation holds it.
        if "created_by_username" in session.__dict__:
            return session.created_by_username
        return session.created_by.username if session.created_by_id else None

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
    timeline = serializers.SerializerMethodField()
    has_audio = serializers.SerializerMethodField()

    class Meta(SessionOutput.Meta):
        fields = [
            *SessionOutput.Meta.fields,
            "transcript",
            "analysis",
            "call_metadata",
            "post_call_received_at",
            "has_audio",
            "timeline",
        ]

    def get_has_audio(self, session: VoiceSession) -> bool:
        return bool(session.audio)

    @extend_schema_field(SessionEventOutput(many=True))
    def get_timeline(self, session: VoiceSession) -> list[dict]:
        # Read with the session by sessions.selectors.session_visible_to; any other session asks its relation.
        events = session.__dict__.get("timeline_events")
        return self._events(session_timeline(session) if events is None else events)

    @cached_property
    def _events(self):
        return SessionEventOutput(many=True).to_representation


class _BuiltOnce:
    """A read-only serializer's output with its fields built once per process, not once per call.

    DRF builds a ModelSerializer's fields anew for every instance it serializes: a third of the CPU
    of ``GET /voice/sessions/{id}`` (issue 10). Representing only reads the instance and the fields,
    so one serializer serves every thread. Its class stays what the schema and the list view use.

    The loop is DRF's ``Serializer.to_representation``, with one step taken out of it for a field
    that shows a model column under its own name: DRF's generic attribute walk (dotted sources,
    mappings, callables, missing attributes) reads the column directly. Every other field (a method
    field, a dotted source) still goes through ``field.get_attribute``.
    """

    def __init__(self, serializer_class: type[serializers.ModelSerializer]) -> None:
        self._serializer_class = serializer_class

    @cached_property
    def _plan(self) -> list[tuple[str, Callable[[Any], Any] | None, serializers.Field]]:
        serializer = self._serializer_class()
        columns = {field.attname for field in self._serializer_class.Meta.model._meta.concrete_fields}
        plan = []
        for field in serializer._readable_fields:
            reads_column = (
                type(field).get_attribute is serializers.Field.get_attribute
                and len(field.source_attrs) == 1
                and field.source_attrs[0] in columns
            )
            plan.append((field.field_name, attrgetter(field.source_attrs[0]) if reads_column else None, field))
        return plan

    def __call__(self, instance: VoiceSession) -> dict:
        representation = {}
        for name, read_column, field in self._plan:
            if read_column is not None:
                attribute = present = read_column(instance)
            else:
                try:
                    attribute = field.get_attribute(instance)
                except SkipField:
                    continue
                present = attribute.pk if isinstance(attribute, PKOnlyObject) else attribute
            representation[name] = None if present is None else field.to_representation(attribute)
        return representation


session_output = _BuiltOnce(SessionOutput)
session_detail_output = _BuiltOnce(SessionDetailOutput)


CLIENT_EVENT_TYPES = ["connected", "status", "mode", "disconnect", "error", "message"]


class SessionEventInput(FieldsBuiltOnce, serializers.Serializer):
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


# --- GET /api/analytics ------------------------------------------------------------------------------


class AnalyticsQueryInput(serializers.Serializer):
    """The question: a period of UTC dates (both ends counted) and optional filters; snake_case."""

    agent_type = agent_type_field(name="agent_type", required=False)
    simulation = QueryBooleanField(required=False, help_text="true: simulated sessions only; false: real ones only.")
    customer_id = customer_id_field(required=False)

    def get_fields(self):
        # "from" is a Python keyword: the fields are named here rather than as class attributes.
        dates = {
            "from": serializers.DateField(
                required=False,
                input_formats=["%Y-%m-%d"],
                help_text=f"First day (UTC), YYYY-MM-DD; default: {DEFAULT_PERIOD_DAYS - 1} days before `to`.",
            ),
            "to": serializers.DateField(
                required=False, input_formats=["%Y-%m-%d"], help_text="Last day (UTC), YYYY-MM-DD; default: today."
            ),
        }
        return {**dates, **super().get_fields()}

    def validate(self, attrs: dict) -> dict:
        try:
            start, end = analytics_period(start=attrs.pop("from", None), end=attrs.pop("to", None), today=self.today())
        except PeriodError as exc:
            raise serializers.ValidationError({exc.parameter: exc.message}) from None
        return {"filters": AnalyticsFilters(start=start, end=end, **attrs)}

    def today(self) -> date:
        return timezone.now().astimezone(UTC).date()


class AnalyticsTotalsOutput(serializers.Serializer):
    sessions = serializers.IntegerField()
    ended = serializers.IntegerField()
    failed = serializers.IntegerField()
    active = serializers.IntegerField(help_text="In status active now (connected, not ended).")
    successful = serializers.IntegerField(help_text="The post-call verdict was success.")
    unsuccessful = serializers.IntegerField(help_text="The post-call verdict was failure.")
    success_rate = serializers.FloatField(
        allow_null=True, help_text="successful ÷ (successful + unsuccessful), 4 decimals; null when both are 0."
    )
    duration_p50_secs = serializers.IntegerField(
        allow_null=True, help_text="Nearest-rank median over ended sessions with a duration; null when none."
    )
    duration_p95_secs = serializers.IntegerField(allow_null=True)
    cost_total = serializers.IntegerField(source="cost", help_text="ElevenLabs credits.")


class AnalyticsDayOutput(serializers.Serializer):
    date = serializers.DateField()
    sessions = serializers.IntegerField()
    ended = serializers.IntegerField()
    failed = serializers.IntegerField()
    successful = serializers.IntegerField()
    cost = serializers.IntegerField()
    duration_avg_secs = serializers.FloatField(
        allow_null=True, help_text="Mean over the day's ended sessions with a duration, 1 decimal; null when none."
    )


class AnalyticsAgentOutput(serializers.Serializer):
    agent_type = serializers.CharField()
    sessions = serializers.IntegerField()
    success_rate = serializers.FloatField(allow_null=True)
    duration_avg_secs = serializers.FloatField(allow_null=True)
    cost_total = serializers.IntegerField(source="cost")


class AnalyticsFailureOutput(serializers.Serializer):
    code = serializers.CharField()
    count = serializers.IntegerField()


class AnalyticsOutput(serializers.Serializer):
    totals = AnalyticsTotalsOutput()
    by_day = AnalyticsDayOutput(many=True, help_text="Every day of the period, in order, zeros included.")
    by_agent = AnalyticsAgentOutput(many=True)
    failures_by_code = AnalyticsFailureOutput(many=True, help_text="Failed sessions by failure code, most first.")

    def get_fields(self):
        return {
            "from": serializers.DateField(source="start"),
            "to": serializers.DateField(source="end"),
            **super().get_fields(),
        }
