"""The session API's prepared reads give exactly what the ORM gives, on SQLite and PostgreSQL."""

from __future__ import annotations

from importlib import import_module

import pytest
from django.apps import apps as django_apps
from django.http import Http404

from sessions.models import SessionEvent, VoiceSession
from sessions.selectors import session_visible_to
from sessions.services import lifecycle

pytestmark = pytest.mark.django_db


def fields_of(instance) -> dict:
    return {field.attname: getattr(instance, field.attname) for field in type(instance)._meta.concrete_fields}


def test_every_field_and_the_timeline_match_the_orm(alice):
    session = lifecycle.session_create(
        user=alice, customer_id="cust-prep", dynamic_variables={"plan": "gold", "n": 3}, simulation=True
    )
    lifecycle.session_mark_connecting(
        session=session, agent_id="agent_x", connection_type="websocket", simulation=True, conversation_id="conv_prep"
    )
    lifecycle.session_end(session=VoiceSession.objects.get(pk=session.pk))

    read = session_visible_to(alice, session.pk, with_timeline=True)
    assert fields_of(read) == fields_of(VoiceSession.objects.get(pk=session.pk))
    assert read.created_by_username == "alice"
    creation, *stored = read.timeline_events
    assert [fields_of(e) for e in stored] == [fields_of(e) for e in SessionEvent.objects.filter(session=session)]
    assert [e.kind for e in read.timeline_events] == ["created", "connecting", "conversation_bound", "ended"]
    # The creation is read from the session's own columns, never stored.
    assert creation.pk is None and creation.created_at == read.created_at
    assert creation.payload == {"agent_type": "support", "direction": "inbound", "simulation": True}


def test_an_ownerless_session_reads_for_staff_and_not_for_others(alice, charlie_staff):
    session = lifecycle.session_create(customer_id="nobody's")
    assert session_visible_to(charlie_staff, session.pk).created_by_username is None
    with pytest.raises(Http404):
        session_visible_to(alice, session.pk)


def test_a_malformed_id_is_a_404(alice):
    with pytest.raises(Http404):
        session_visible_to(alice, "not-a-uuid")


def test_migration_0008_removes_stored_creation_rows_and_going_back_writes_them_again(alice):
    migration = import_module("sessions.migrations.0008_creation_read_from_the_session")
    session = lifecycle.session_create(user=alice, customer_id="cust-migrated", agent_type="sales")
    lifecycle.session_end(session=VoiceSession.objects.get(pk=session.pk))
    session.refresh_from_db()

    migration.store_creation_rows(django_apps, None)  # back to 0007: every session has its row
    stored = SessionEvent.objects.get(session=session, kind="created")
    assert stored.created_at == session.created_at
    assert (stored.from_status, stored.to_status) == ("", "created")
    assert stored.payload == {"agent_type": "sales", "direction": "inbound", "simulation": session.simulation}
    assert SessionEvent._meta.get_field("created_at").auto_now_add  # the live model is as it was

    migration.forget_creation_rows(django_apps, None)  # forward again
    assert list(SessionEvent.objects.filter(session=session).values_list("kind", flat=True)) == ["ended"]
    assert [e.kind for e in session_visible_to(alice, session.pk, with_timeline=True).timeline_events] == [
        "created",
        "ended",
    ]
