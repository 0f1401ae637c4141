"""Post-call facts as typed columns: filled by the webhook, the reconciler and the back-fill migration."""

from __future__ import annotations

import json
from importlib import import_module

import pytest
from django.apps import apps as django_apps
from django.core.management import call_command

from elevenlabs.webhooks import sign
from sessions.models import VoiceSession
from sessions.post_call import post_call_facts
from sessions.services import lifecycle
from tests.elevenlabs_fakes import add_conversation, conversation

pytestmark = pytest.mark.django_db

FULL = {
    "metadata": {
        "start_time_unix_secs": 1780000000,
        "call_duration_secs": 95,
        "cost": 412,
        "termination_reason": "end_call tool was called.",
        "main_language": "de",
    },
    "analysis": {
        "call_successful": "failure",
        "call_summary_title": "Router still blinking",
        "transcript_summary": "The customer's router kept blinking after a reset.",
    },
}
FACTS = {
    "call_duration_secs": 95,
    "cost": 412,
    "call_successful": "failure",
    "termination_reason": "end_call tool was called.",
    "main_language": "de",
    "summary_title": "Router still blinking",
    "transcript_summary": "The customer's router kept blinking after a reset.",
}


def bound_session(conversation_id: str, **create) -> VoiceSession:
    session = lifecycle.session_create(customer_id="cust-facts", **create)
    return lifecycle.session_mark_connecting(
        session=session,
        agent_id="agent_support_test",
        connection_type="websocket",
        simulation=False,
        conversation_id=conversation_id,
    )


@pytest.mark.parametrize(
    ("verdict", "outcome"),
    [("success", "success"), ("failure", "failure"), ("unknown", "unknown"), ("maybe", "unknown"), (None, "unknown")],
)
def test_outcome_is_one_of_three(verdict, outcome):
    assert post_call_facts({"analysis": {"call_successful": verdict}})["call_successful"] == outcome


def test_wrong_types_and_ranges_are_left_empty():
    facts = post_call_facts(
        {
            "metadata": {"call_duration_secs": -1, "cost": True, "main_language": 7, "termination_reason": ["x"]},
            "analysis": {"call_summary_title": {"a": 1}, "transcript_summary": None},
        }
    )
    assert facts == {
        "call_successful": "unknown",
        "transcript_summary": "",
        "summary_title": "",
        "call_duration_secs": None,
        "cost": None,
        "termination_reason": "",
        "main_language": "",
    }


def test_webhook_fills_the_columns_and_the_api_shows_them(client, settings, alice):
    session = bound_session("conv_facts", user=alice)
    body = json.dumps(
        {
            "type": "post_call_transcription",
            "event_timestamp": 1780000100,
            "data": {"agent_id": "agent_support_test", "conversation_id": "conv_facts", "transcript": [], **FULL},
        }
    ).encode()
    response = client.post(
        "/elevenlabs/webhook",
        data=body,
        content_type="application/json",
        HTTP_ELEVENLABS_SIGNATURE=sign(body, secret=settings.ELEVENLABS_WEBHOOK_SECRET),
    )
    assert response.status_code == 200, response.content
    stored = VoiceSession.objects.get(pk=session.pk)
    assert {field: getattr(stored, field) for field in FACTS} == FACTS

    client.force_login(alice)
    detail = client.get(f"/voice/sessions/{session.pk}").json()
    listed = client.get("/voice/sessions").json()["results"][0]
    for shown in (detail, listed):
        assert {field: shown[field] for field in FACTS} == FACTS


def test_a_cost_that_is_not_a_count_is_refused_naming_the_field(client, settings):
    bound_session("conv_bad_cost")
    data = {"agent_id": "a", "conversation_id": "conv_bad_cost", "metadata": {"cost": "12 credits"}}
    body = json.dumps({"type": "post_call_transcription", "event_timestamp": 1780000100, "data": data}).encode()
    response = client.post(
        "/elevenlabs/webhook",
        data=body,
        content_type="application/json",
        HTTP_ELEVENLABS_SIGNATURE=sign(body, secret=settings.ELEVENLABS_WEBHOOK_SECRET),
    )
    assert response.status_code == 400
    assert "metadata.cost" in response.json()["error"]["message"]
    assert VoiceSession.objects.get(conversation_id="conv_bad_cost").cost is None


def test_reconciler_fills_the_columns(upstream, alice):
    session = bound_session("conv_rec_facts", user=alice)
    lifecycle.session_end(session=VoiceSession.objects.get(pk=session.pk))
    add_conversation(upstream, conversation("conv_rec_facts", **FULL))
    call_command("reconcile_sessions", "--grace", "0")
    stored = VoiceSession.objects.get(pk=session.pk)
    assert {field: getattr(stored, field) for field in FACTS} == FACTS


def test_backfill_migration_reads_the_stored_payload():
    """Sessions stored before the columns existed get them from analysis and call_metadata."""
    old = VoiceSession.objects.create(
        customer_id="old-call",
        analysis=FULL["analysis"],
        call_metadata=FULL["metadata"],
        post_call_received_at="2026-01-01T00:00:00Z",
    )
    untouched = VoiceSession.objects.create(customer_id="no-post-call")
    migration = import_module("sessions.migrations.0004_post_call_facts")
    migration.fill_post_call_facts(django_apps, None)
    old.refresh_from_db()
    untouched.refresh_from_db()
    assert {field: getattr(old, field) for field in FACTS} == FACTS
    assert untouched.call_successful == "" and untouched.cost is None
