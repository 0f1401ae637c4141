"""Reads of sessions that are more than a one-line queryset."""

from __future__ import annotations

import django_filters
from django.db.models import Q, QuerySet
from django.shortcuts import get_object_or_404

from sessions.models import TERMINAL_STATUSES, AgentType, Status, VoiceSession


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
