"""Reads of sessions that are more than a one-line queryset."""

from __future__ import annotations

import django_filters
from django import forms
from django.db.models import Q, QuerySet
from django.shortcuts import get_object_or_404

from sessions.models import AgentType, CallOutcome, Status, VoiceSession
from sessions.post_call import MAX_CALL_DURATION_SECS

# The longest search term the list accepts; longer is a 400, not a slow scan.
SEARCH_MAX_LENGTH = 200


def sessions_visible_to(user) -> QuerySet[VoiceSession]:
    """Staff see every session; everyone else only the ones they created."""
    qs = VoiceSession.objects.select_related("created_by")
    if user.is_staff:
        return qs
    return qs.filter(created_by=user)


def session_visible_to(user, session_id) -> VoiceSession:
    """The session, if ``user`` may see it; someone else's answers 404, like one that does not exist."""
    return get_object_or_404(sessions_visible_to(user), pk=session_id)


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
