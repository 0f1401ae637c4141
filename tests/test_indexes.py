"""The service's lookups find an index after the single-column ones were dropped (migration 0009).

Each dropped index led a composite one, which must serve the same lookup. SQLite's planner is
asked (EXPLAIN QUERY PLAN); PostgreSQL's would choose a sequential scan for tables this small
whatever indexes exist, so its plans say nothing here and the check runs on SQLite.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.db import connection

from sessions.models import SessionEvent, Status, VoiceSession
from sessions.selectors import sessions_visible_to

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(connection.vendor != "sqlite", reason="EXPLAIN QUERY PLAN is SQLite's; see the docstring"),
]

AT = datetime(2026, 1, 1, tzinfo=UTC)


def plan(queryset) -> str:
    sql, params = queryset.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN QUERY PLAN {sql}", params)
        return " | ".join(row[-1] for row in cursor.fetchall())


def test_each_lookup_uses_the_composite_index_that_leads_with_its_column(alice, charlie_staff):
    lookups = {
        "session_created_facts": sessions_visible_to(charlie_staff).order_by("-created_at")[:50],
        "session_owner_created": sessions_visible_to(alice).order_by("-created_at")[:50],
        "session_status_updated": VoiceSession.objects.filter(
            status__in=[Status.CONNECTING, Status.ACTIVE], updated_at__lt=AT
        ),
        "session_ended": VoiceSession.objects.filter(ended_at__lt=AT).order_by("ended_at"),
        "event_session_created": SessionEvent.objects.filter(session_id="0" * 32).order_by("created_at", "id"),
    }
    for index, queryset in lookups.items():
        found = plan(queryset)
        assert f"INDEX {index}" in found, (index, found)


def test_a_new_session_is_not_in_the_ended_index():
    with connection.cursor() as cursor:
        cursor.execute("SELECT sql FROM sqlite_master WHERE name = 'session_ended'")
        [(sql,)] = cursor.fetchall()
    assert 'WHERE "ended_at" IS NOT NULL' in sql
