"""Reads of sessions that are more than a one-line queryset."""

from __future__ import annotations

from functools import partial

import django_filters
from django import forms
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import connection
from django.db.models import Q, QuerySet
from django.http import Http404

from sessions.models import TERMINAL_STATUSES, AgentType, CallOutcome, EventKind, SessionEvent, Status, VoiceSession
from sessions.post_call import MAX_CALL_DURATION_SECS
from voiceagent.prepared_reads import PreparedRead

# The longest search term the list accepts; longer is a 400, not a slow scan.
SEARCH_MAX_LENGTH = 200


def sessions_visible_to(user) -> QuerySet[VoiceSession]:
    """Staff see every session; everyone else only the ones they created."""
    qs = VoiceSession.objects.select_related("created_by")
    if user.is_staff:
        return qs
    return qs.filter(created_by=user)


def session_visible_to(user, session_id, *, with_timeline: bool = False) -> VoiceSession:
    """The session, if ``user`` may see it; someone else's answers 404, like one that does not exist.

    It carries its owner's name (``created_by_username``) and, ``with_timeline``, its timeline
    (``timeline_events``). Every call of the session API starts here, so the reads are prepared
    once per process (voiceagent.prepared_reads): through the ORM they cost 1 ms of a 2.2 ms GET.
    """
    try:
        session_key = VoiceSession._meta.pk.get_db_prep_value(session_id, connection)
    except ValidationError:
        raise Http404("No such session.") from None
    if user.is_staff:
        found = _session_by_id([session_key])
    else:
        found = _owned_session_by_id([session_key, user.pk])
    if not found:
        raise Http404("No such session.")
    session = found[0]
    if with_timeline:
        session.timeline_events = session_timeline(session)
    return session


def creation_event(session: VoiceSession) -> SessionEvent:
    """The first entry of every session's timeline, read from the session itself (never saved).

    A creation is not stored as a row: everything it says (when, which agent, which direction,
    simulated or not) is in the session's own columns, and a second INSERT in every create cost
    a tenth of ``POST /voice/sessions`` (issue 10). Migration 0008 removed the rows stored before.
    """
    return SessionEvent(
        session=session,
        kind=EventKind.CREATED,
        from_status="",
        to_status=Status.CREATED,
        payload={"agent_type": session.agent_type, "direction": session.direction, "simulation": session.simulation},
        created_at=session.created_at,
    )


def session_timeline(session: VoiceSession) -> list[SessionEvent]:
    """The whole timeline of ``session``: its creation, then the stored rows, oldest first (all come after it)."""
    session_key = VoiceSession._meta.pk.get_db_prep_value(session.pk, connection)
    return [creation_event(session), *_timeline_of([session_key])]


# The statements are made of the models' own table and column names (quoted); values go as parameters.
def _session_sql(quote, *, owner_only: bool) -> str:
    sessions, users = VoiceSession._meta, get_user_model()._meta
    columns = ", ".join(f"s.{quote(field.column)}" for field in sessions.concrete_fields)
    owner = quote(sessions.get_field("created_by").column)
    username = f"u.{quote(users.get_field('username').column)}"
    joined = (
        f"{quote(sessions.db_table)} s LEFT JOIN {quote(users.db_table)} u ON u.{quote(users.pk.column)} = s.{owner}"
    )
    sql = f"SELECT {columns}, {username} FROM {joined} WHERE s.{quote(sessions.pk.column)} = %s"  # noqa: S608
    return f"{sql} AND s.{owner} = %s" if owner_only else sql


def _timeline_sql(quote) -> str:
    events = SessionEvent._meta
    columns = ", ".join(quote(field.column) for field in events.concrete_fields)
    order = ", ".join(quote(events.get_field(name).column) for name in events.ordering)
    session = quote(events.get_field("session").column)
    return f"SELECT {columns} FROM {quote(events.db_table)} WHERE {session} = %s ORDER BY {order}"  # noqa: S608


_session_by_id = PreparedRead(VoiceSession, partial(_session_sql, owner_only=False), extra=["created_by_username"])
_owned_session_by_id = PreparedRead(VoiceSession, partial(_session_sql, owner_only=True), extra=["created_by_username"])
_timeline_of = PreparedRead(SessionEvent, _timeline_sql)


class SecondsFilter(django_filters.Filter):
    """A whole number of seconds within what the column holds: "1.5", "-3" and 2**40 are 400s, not a crash."""

    field_class = forms.IntegerField

    def __init__(self, *args, **kwargs):
        super().__init__(*args, min_value=0, max_value=MAX_CALL_DURATION_SECS, **kwargs)


class SessionFilterForm(forms.Form):
    def clean(self):
        cleaned = super().clean()
        low, high = cleaned.get("min_duration"), cleaned.get("max_duration")
        if low is not None and high is not None and low > high:
            self.add_error("max_duration", f"Must be at least min_duration ({low}).")
        return cleaned


class SessionFilter(django_filters.FilterSet):
    customer_id = django_filters.CharFilter()
    status = django_filters.ChoiceFilter(choices=Status.choices)
    agent_type = django_filters.ChoiceFilter(choices=AgentType.choices)
    simulation = django_filters.BooleanFilter()
    created_after = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="lt")
    call_successful = django_filters.ChoiceFilter(
        choices=CallOutcome.choices, help_text="The call's verdict; sessions without post-call data have none."
    )
    min_duration = SecondsFilter(
        field_name="call_duration_secs", lookup_expr="gte", help_text="Calls at least this many seconds long."
    )
    max_duration = SecondsFilter(
        field_name="call_duration_secs", lookup_expr="lte", help_text="Calls at most this many seconds long."
    )
    search = django_filters.CharFilter(
        method="filter_search",
        max_length=SEARCH_MAX_LENGTH,
        help_text="Part of the customer id, the conversation id, the summary title or the summary (any case).",
    )

    class Meta:
        model = VoiceSession
        form = SessionFilterForm
        fields = [
            "customer_id",
            "status",
            "agent_type",
            "simulation",
            "created_after",
            "created_before",
            "call_successful",
            "min_duration",
            "max_duration",
            "search",
        ]

    def filter_search(self, queryset: QuerySet[VoiceSession], name: str, value: str) -> QuerySet[VoiceSession]:
        term = value.strip()
        if not term:
            return queryset
        return queryset.filter(
            Q(customer_id__icontains=term)
            | Q(conversation_id__icontains=term)
            | Q(summary_title__icontains=term)
            | Q(transcript_summary__icontains=term)
        )


def sessions_missing_post_call(*, ended_before, quiet_before):
    """Sessions with a conversation but no post-call data: ended a while ago, or open and quiet."""
    return (
        VoiceSession.objects.filter(post_call_received_at__isnull=True, conversation_id__isnull=False)
        .filter(
            Q(status=Status.ENDED, ended_at__lt=ended_before)
            | Q(status=Status.ACTIVE, started_at__lt=quiet_before)
            # Bound at start, but no client ever reported the connection (an API client, a phone call).
            | Q(status=Status.CONNECTING, updated_at__lt=quiet_before)
        )
        .order_by("created_at")
    )


def sessions_possibly_stale(*, cutoff):
    return VoiceSession.objects.filter(
        Q(status=Status.CONNECTING, updated_at__lt=cutoff) | Q(status=Status.ACTIVE, started_at__lt=cutoff)
    ).order_by("created_at")


def sessions_to_prune(*, ended_before, audio_only: bool):
    """Sessions that ended before ``ended_before`` and still hold what retention removes, oldest end first:
    a recording, or (unless ``audio_only``) payloads not pruned yet."""
    holding = ~Q(audio="") if audio_only else Q(pruned_at__isnull=True) | ~Q(audio="")
    return (
        VoiceSession.objects.filter(status__in=TERMINAL_STATUSES, ended_at__lt=ended_before)
        .filter(holding)
        .order_by("ended_at", "pk")
    )


def customer_recent_calls(*, customer_id: str, exclude_session_id=None, limit: int = 5) -> list[VoiceSession]:
    """The customer's latest ended sessions, newest first (``exclude_session_id``: the call asking)."""
    calls = VoiceSession.objects.filter(customer_id=customer_id, status=Status.ENDED)
    if exclude_session_id is not None:
        calls = calls.exclude(pk=exclude_session_id)
    return list(
        calls.order_by("-ended_at", "-created_at").only(
            "id",
            "agent_type",
            "started_at",
            "ended_at",
            "created_at",
            "call_successful",
            "summary_title",
            "transcript_summary",
        )[:limit]
    )
