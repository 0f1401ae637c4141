"""The session API's prepared reads give exactly what the ORM gives, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
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
    assert [fields_of(e) for e in read.timeline_events] == [
        fields_of(e) for e in SessionEvent.objects.filter(session=session)
    ]
    assert [e.kind for e in read.timeline_events] == ["created", "connecting", "conversation_bound", "ended"]


def test_an_ownerless_session_reads_for_staff_and_not_for_others(alice, charlie_staff):
    session = lifecycle.session_create(customer_id="nobody's")
    assert session_visible_to(charlie_staff, session.pk).created_by_username is None
    with pytest.raises(Http404):
        session_visible_to(alice, session.pk)


def test_a_malformed_id_is_a_404(alice):
    with pytest.raises(Http404):
        session_visible_to(alice, "not-a-uuid")
