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


def test_the_simulated_agents_webhook_fills_the_columns(client, alice_api, settings):
    """What the simulator sends when a call ends, delivered to our webhook: its duration, a cost of 0, its verdict."""
    import responses
    from django.utils import timezone

    from elevenlabs.simulator.conversations import (
        simulator_finish_conversation,
        simulator_send_post_call_webhook,
        transcript_item,
    )
    from elevenlabs.simulator.models import SimulatedConversation
    from elevenlabs.simulator.signed_urls import simulator_claim_conversation
    from elevenlabs.webhooks import SIGNATURE_HEADER

    start = {"agentType": "sales", "customerId": "cust-sim", "textOnly": True, "simulation": True}
    started = alice_api.post("/api/voice/sessions", start, format="json").json()
    session_id = started["backend_session"]["session_id"]
    conversation_id = started["elevenlabs_conversation"]["conversation_id"]
    agent_id = started["backend_session"]["agent_id"]
    simulator_claim_conversation(agent_id=agent_id, conversation_id=conversation_id)
    SimulatedConversation.objects.filter(pk=conversation_id).update(
        connected_at=timezone.now() - timezone.timedelta(seconds=42)
    )
    simulator_finish_conversation(
        conversation_id=conversation_id,
        transcript=[
            transcript_item(role="agent", message="Hi, Alex here.", time_in_call_secs=0, source_medium="text"),
            transcript_item(role="user", message="Any discounts?", time_in_call_secs=5, source_medium="text"),
        ],
        termination_reason="Client disconnected: 1000",
        client_data={"conversation_config_override": {"agent": {"language": "fr"}}},
        text_only=True,
    )
    with responses.RequestsMock() as rsps:
        rsps.add(responses.POST, f"{settings.PUBLIC_BASE_URL}/elevenlabs/webhook", json={"status": "processed"})
        assert simulator_send_post_call_webhook(conversation_id=conversation_id)
        sent = rsps.calls[0].request

    response = client.post(
        "/elevenlabs/webhook",
        data=sent.body,
        content_type="application/json",
        headers={SIGNATURE_HEADER: sent.headers[SIGNATURE_HEADER]},
    )
    assert response.status_code == 200, response.content
    stored = VoiceSession.objects.get(pk=session_id)
    assert stored.status == "ended"
    assert stored.call_duration_secs in (42, 43)  # whole seconds between connect and end
    assert stored.cost == 0
    assert stored.call_successful == "success"  # the customer spoke
    assert stored.summary_title == "Simulated sales call"
    assert "Alex" in stored.transcript_summary
    assert stored.termination_reason == "Client disconnected: 1000"
    assert stored.main_language == "fr"
