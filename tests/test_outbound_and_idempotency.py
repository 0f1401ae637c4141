"""Outbound phone calls, and Idempotency-Key: a retried start never dials twice."""

from __future__ import annotations

import pytest

from sessions.models import VoiceSession
from tests.elevenlabs_fakes import SIP_CALL_PATH, TWILIO_CALL_PATH, add_error, add_fault, add_token, read_timeout

pytestmark = pytest.mark.django_db

CALL = {"agentType": "sales", "customerId": "cust-7", "direction": "outbound", "phoneNumber": "+14155550100"}


@pytest.fixture
def phone(settings):
    settings.ELEVENLABS_PHONE_NUMBER_ID = "phnum_123"
    return settings


def add_call(upstream, path, **body):
    upstream.add(
        "POST",
        f"https://api.elevenlabs.io{path}",
        json={"success": True, "message": "Call started", "conversation_id": "conv_out_1", **body},
    )


def test_an_outbound_session_dials_through_twilio(alice_api, upstream, phone):
    add_call(upstream, TWILIO_CALL_PATH, callSid="CA123")
    response = alice_api.post("/api/voice/sessions", CALL, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["elevenlabs_conversation"]["connection_type"] == "phone"
    assert body["elevenlabs_conversation"]["conversation_id"] == "conv_out_1"
    assert body["backend_session"]["status"] == "active"
    import json

    sent = json.loads(upstream.calls[0].request.body)
    assert sent["agent_id"] == "agent_sales_test"
    assert sent["agent_phone_number_id"] == "phnum_123"
    assert sent["to_number"] == "+14155550100"
    assert sent["conversation_initiation_client_data"]["user_id"] == "cust-7"


def test_sip_trunk_is_used_when_configured(alice_api, upstream, phone):
    phone.ELEVENLABS_OUTBOUND_PROVIDER = "sip_trunk"
    add_call(upstream, SIP_CALL_PATH, sip_call_id="sip-1")
    assert alice_api.post("/api/voice/sessions", CALL, format="json").status_code == 201
    assert upstream.calls[0].request.url.endswith(SIP_CALL_PATH)


def test_the_same_idempotency_key_never_dials_twice(alice_api, upstream, phone):
    add_call(upstream, TWILIO_CALL_PATH, callSid="CA123")
    first = alice_api.post("/api/voice/sessions", CALL, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    second = alice_api.post("/api/voice/sessions", CALL, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    assert first.status_code == 201
    assert second.status_code == 200
    assert second.json()["backend_session"]["session_id"] == first.json()["backend_session"]["session_id"]
    assert second.json()["elevenlabs_conversation"]["replayed"] is True
    assert len(upstream.calls) == 1
    assert VoiceSession.objects.count() == 1


def test_idempotency_keys_are_per_user(alice_api, bob_api, upstream):
    add_token(upstream, agent_id="agent_support_test")
    add_token(upstream, agent_id="agent_support_test")
    start = {"agentType": "support", "customerId": "c"}
    alice_api.post("/api/voice/sessions", start, format="json", HTTP_IDEMPOTENCY_KEY="same")
    response = bob_api.post("/api/voice/sessions", start, format="json", HTTP_IDEMPOTENCY_KEY="same")
    assert response.status_code == 201
    assert VoiceSession.objects.count() == 2


def test_a_read_timeout_on_the_dial_is_not_retried(alice_api, upstream, phone):
    add_fault(upstream, "POST", TWILIO_CALL_PATH, read_timeout())
    response = alice_api.post("/api/voice/sessions", CALL, format="json")
    assert response.status_code == 504
    assert len(upstream.calls) == 1
    assert VoiceSession.objects.get().status == "failed"


def test_a_refused_dial_fails_the_session_with_the_remote_message(alice_api, upstream, phone):
    add_error(upstream, "POST", TWILIO_CALL_PATH, 422, code="invalid_number", message="Bad number")
    response = alice_api.post("/api/voice/sessions", CALL, format="json")
    assert response.status_code == 502
    assert VoiceSession.objects.get().status == "failed"


def test_outbound_without_a_phone_number_id_is_400(alice_api, upstream, settings):
    settings.ELEVENLABS_PHONE_NUMBER_ID = ""
    response = alice_api.post("/api/voice/sessions", CALL, format="json")
    assert response.status_code == 400
    assert "ELEVENLABS_PHONE_NUMBER_ID" in response.json()["error"]["message"]
    assert VoiceSession.objects.count() == 0


def test_outbound_is_not_simulated(alice_api, simulation_mode):
    response = alice_api.post("/api/voice/sessions", CALL, format="json")
    assert response.status_code == 400
    assert "not simulated" in response.json()["error"]["message"]
