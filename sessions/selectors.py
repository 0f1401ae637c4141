"""Reads of sessions that are more than a one-line queryset."""

from __future__ import annotations

import django_filters
from django.db.models import QuerySet
from django.shortcuts import get_object_or_404

from sessions.models import AgentType, Status, VoiceSession


def sessions_visible_to(user) -> QuerySet[VoiceSession]:
    """Staff see every session; everyone else only the ones they created."""
    qs = VoiceSession.objects.select_related("created_by")
    if user.is_staff:
        return qs
    return qs.filter(created_by=user)


def session_visible_to(user, session_id) -> VoiceSession:
    """The session, if ``user`` may see it; someone else's answers 404, like one that does not exist."""
    return get_object_or_404(sessions_visible_to(user), pk=session_id)


class SessionFilter(django_filters.FilterSet):
    customer_id = django_filters.CharFilter()
    status = django_filters.ChoiceFilter(choices=Status.choices)
    agent_type = django_filters.ChoiceFilter(choices=AgentType.choices)
    simulation = django_filters.BooleanFilter()
    created_after = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = VoiceSession
        fields = ["customer_id", "status", "agent_type", "simulation", "created_after", "created_before"]


def sessions_missing_post_call(*, ended_before, quiet_before):
    """Sessions with a conversation but no post-call data: ended a while ago, or open and quiet."""
    from django.db.models import Q

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
    from django.db.models import Q

    return VoiceSession.objects.filter(
        Q(status=Status.CONNECTING, updated_at__lt=cutoff) | Q(status=Status.ACTIVE, started_at__lt=cutoff)
    ).order_by("created_at")


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
