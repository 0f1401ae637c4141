"""POST /api/voice/sessions and POST /api/elevenlabs against a mocked ElevenLabs."""

from __future__ import annotations

import pytest

from sessions.models import SessionEvent, VoiceSession
from tests.elevenlabs_fakes import (
    SIGNED_URL_PATH,
    TOKEN,
    TOKEN_PATH,
    add_error,
    add_fault,
    add_signed_url,
    add_token,
    connection_reset,
    read_timeout,
)

pytestmark = pytest.mark.django_db

START = {"agentType": "support", "customerId": "cust-42"}


def start(client, **overrides):
    return client.post("/api/voice/sessions", {**START, **overrides}, format="json")


def test_voice_start_mints_a_webrtc_token_for_the_agent(alice_api, upstream):
    add_token(upstream, agent_id="agent_support_test")
    response = start(alice_api)
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["agent_type"] == "support"
    conversation = body["elevenlabs_conversation"]
    assert conversation["connection_type"] == "webrtc"
    assert conversation["conversation_token"] == TOKEN
    assert conversation["agent_id"] == "agent_support_test"
    assert conversation["simulation"] is False
    assert "signed_url" not in conversation
    assert conversation["expires_at"]
    session = body["backend_session"]
    assert session["status"] == "connecting"
    assert session["connection_type"] == "webrtc"
    assert session["agent_id"] == "agent_support_test"
    assert upstream.calls[0].request.headers["xi-api-key"]


def test_text_only_gets_a_signed_websocket_url_for_the_sales_agent(alice_api, upstream):
    add_signed_url(upstream, agent_id="agent_sales_test")
    response = start(alice_api, agentType="sales", textOnly=True)
    assert response.status_code == 201, response.content
    conversation = response.json()["elevenlabs_conversation"]
    assert conversation["connection_type"] == "websocket"
    assert conversation["signed_url"].startswith("wss://")
    assert "conversation_token" not in conversation
    assert "agent_id=agent_sales_test" in upstream.calls[0].request.url


def test_configured_websocket_applies_to_voice_too(alice_api, upstream, settings):
    settings.ELEVENLABS_CONNECTION_TYPE = "websocket"
    add_signed_url(upstream, agent_id="agent_support_test")
    assert start(alice_api).json()["elevenlabs_conversation"]["connection_type"] == "websocket"


@pytest.mark.parametrize(
    ("status", "code", "message", "expected"),
    [
        (401, "invalid_api_key", "Invalid API key", 502),
        (404, "agent_not_found", "Agent not found", 502),
        (401, "missing_permissions", "The API key lacks convai_write", 502),
        (429, "too_many_concurrent_requests", "Too many concurrent requests", 503),
        (500, "internal_error", "Internal server error", 502),
        (503, "system_busy", "System busy", 503),
    ],
)
def test_an_upstream_refusal_fails_the_session_with_the_remote_message(
    alice_api, upstream, status, code, message, expected
):
    for _ in range(8):  # enough for every retry
        add_error(upstream, "GET", TOKEN_PATH, status, code=code, message=message)
    response = start(alice_api)
    assert response.status_code == expected
    body = response.json()
    assert body["error"] == {"code": code, "message": message, "upstream_status": status, "upstream_code": code}
    session = VoiceSession.objects.get(pk=body["backend_session"]["session_id"])
    assert session.status == "failed"
    assert session.failure_code == code
    assert session.failure_message == message
    assert session.upstream_status == status
    assert body["backend_session"]["status"] == "failed"
    assert not VoiceSession.objects.filter(status="connecting").exists()


@pytest.mark.parametrize(
    ("fault", "expected", "code"), [(read_timeout, 504, "timeout"), (connection_reset, 503, "connection_error")]
)
def test_transport_faults_fail_the_session(alice_api, upstream, fault, expected, code):
    for _ in range(8):
        add_fault(upstream, "GET", TOKEN_PATH, fault())
    response = start(alice_api)
    assert response.status_code == expected
    assert response.json()["error"]["code"] == code
    assert VoiceSession.objects.get().status == "failed"


def test_invalid_json_from_upstream_is_a_502(alice_api, upstream):
    upstream.add("GET", f"https://api.elevenlabs.io{SIGNED_URL_PATH}", body="<html>oops", status=200)
    response = start(alice_api, textOnly=True)
    assert response.status_code == 502
    assert response.json()["error"]["code"] == "invalid_response"
    assert VoiceSession.objects.get().status == "failed"


def test_a_transient_error_is_retried_then_succeeds(alice_api, upstream):
    add_error(upstream, "GET", TOKEN_PATH, 503, code="system_busy", message="busy")
    add_token(upstream, agent_id="agent_support_test")
    response = start(alice_api)
    assert response.status_code == 201
    assert len(upstream.calls) == 2
    assert len(upstream.sleep.waits) == 1


def test_an_agent_type_without_an_agent_id_is_a_400_naming_the_variable(alice_api, upstream, settings):
    settings.ELEVENLABS_SALES_AGENT_ID = ""
    response = start(alice_api, agentType="sales")
    assert response.status_code == 400
    assert response.json()["error"]["variable"] == "ELEVENLABS_SALES_AGENT_ID"
    assert "ELEVENLABS_SALES_AGENT_ID" in response.json()["error"]["message"]
    assert VoiceSession.objects.count() == 0
    assert len(upstream.calls) == 0


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("agentType", "billing"),
        ("customerId", "no spaces"),
        ("locale", "english"),
        ("textOnly", "maybe"),
        ("direction", "up"),
        ("dynamicVariables", "x"),
    ],
)
def test_bad_input_is_a_400_and_calls_nobody(alice_api, upstream, field, value):
    response = start(alice_api, **{field: value})
    assert response.status_code == 400
    assert field in response.json()["error"]["fields"]
    assert VoiceSession.objects.count() == 0
    assert len(upstream.calls) == 0


def test_outbound_without_a_phone_number_is_a_400(alice_api, upstream):
    response = start(alice_api, direction="outbound")
    assert response.status_code == 400
    assert "phoneNumber" in response.json()["error"]["fields"]


# --- /api/elevenlabs --------------------------------------------------------------------------


def test_start_conversation_attaches_a_credential_to_an_existing_session(alice_api, upstream):
    add_signed_url(upstream, agent_id="agent_support_test")
    session_id = alice_api.post("/voice/sessions", {"customer_id": "c1"}, format="json").json()["session_id"]
    response = alice_api.post(
        "/api/elevenlabs", {"action": "start_conversation", "sessionId": session_id, "textOnly": True}, format="json"
    )
    assert response.status_code == 201, response.content
    assert response.json()["sessionId"] == session_id
    assert response.json()["signed_url"].startswith("wss://")
    assert VoiceSession.objects.get(pk=session_id).status == "connecting"


def test_start_conversation_twice_on_a_session_is_409(alice_api, upstream):
    add_signed_url(upstream, agent_id="agent_support_test")
    session_id = alice_api.post("/voice/sessions", {"customer_id": "c1"}, format="json").json()["session_id"]
    payload = {"action": "start_conversation", "sessionId": session_id, "textOnly": True}
    alice_api.post("/api/elevenlabs", payload, format="json")
    response = alice_api.post("/api/elevenlabs", payload, format="json")
    assert response.status_code == 409
    assert response.json()["error"]["current_status"] == "connecting"


def test_start_conversation_without_a_session_creates_one(alice_api, upstream):
    add_token(upstream, agent_id="agent_sales_test")
    response = alice_api.post("/api/elevenlabs", {"action": "start_conversation", "agentType": "sales"}, format="json")
    assert response.status_code == 201
    session = VoiceSession.objects.get(pk=response.json()["sessionId"])
    assert session.agent_type == "sales"
    assert session.status == "connecting"


def test_end_conversation_ends_the_session(alice_api):
    session_id = alice_api.post("/voice/sessions", {"customer_id": "c1"}, format="json").json()["session_id"]
    response = alice_api.post("/api/elevenlabs", {"action": "end_conversation", "sessionId": session_id}, format="json")
    assert response.status_code == 200
    assert response.json()["success"] is True
    assert VoiceSession.objects.get(pk=session_id).status == "ended"


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"action": "dance"}, "action"),
        ({"action": "end_conversation"}, "sessionId"),
        ({"action": "start_conversation"}, "agentType"),
        ({"action": "end_conversation", "sessionId": "x"}, "sessionId"),
    ],
)
def test_elevenlabs_action_validation(alice_api, payload, field):
    response = alice_api.post("/api/elevenlabs", payload, format="json")
    assert response.status_code == 400
    assert field in response.json()["error"]["fields"]


def test_end_conversation_of_someone_elses_session_is_404(alice_api, bob_api):
    session_id = alice_api.post("/voice/sessions", {"customer_id": "c1"}, format="json").json()["session_id"]
    response = bob_api.post("/api/elevenlabs", {"action": "end_conversation", "sessionId": session_id}, format="json")
    assert response.status_code == 404
    assert VoiceSession.objects.get(pk=session_id).status == "created"


def test_no_secret_reaches_the_response_or_the_log(alice_api, upstream, settings):
    from pathlib import Path

    add_error(upstream, "GET", TOKEN_PATH, 401, code="invalid_api_key", message="Invalid API key")
    start(alice_api)
    log = Path(settings.LOG_FILE).read_text()
    assert settings.ELEVENLABS_API_KEY not in log
    assert SessionEvent.objects.filter(kind="failed").count() == 1


# --- simulation mode ---------------------------------------------------------------------------


def test_without_a_key_the_start_flow_hands_out_a_simulator_url(alice_api, simulation_mode):
    simulation_mode.ELEVENLABS_SUPPORT_AGENT_ID = ""
    response = start(alice_api)  # voice asks for WebRTC; only WebSocket is simulated
    assert response.status_code == 201, response.content
    conversation = response.json()["elevenlabs_conversation"]
    assert conversation["simulation"] is True
    assert conversation["connection_type"] == "websocket"
    assert conversation["signed_url"].startswith("ws://testserver/simulator/v1/convai/conversation?")
    assert conversation["conversation_id"].startswith("sim_conv_")
    assert conversation["agent_id"] == "sim_support_agent"
    session = response.json()["backend_session"]
    assert session["simulation"] is True
    assert session["status"] == "connecting"


def test_a_session_can_ask_for_simulation_with_a_key_configured(alice_api, upstream):
    response = start(alice_api, simulation=True, agentType="sales")
    assert response.status_code == 201
    conversation = response.json()["elevenlabs_conversation"]
    assert conversation["simulation"] is True
    assert conversation["agent_id"] == "agent_sales_test"  # the configured agent, simulated
    assert len(upstream.calls) == 0  # ElevenLabs is never asked


def test_reconcile_reads_a_simulated_conversation_from_the_simulator(alice, alice_api, simulation_mode):
    from datetime import timedelta
    from io import StringIO

    from django.core.management import call_command
    from django.utils import timezone

    from elevenlabs.simulator.models import SimulatedConversation
    from sessions.services import lifecycle

    body = start(alice_api, textOnly=True).json()
    conversation_id = body["elevenlabs_conversation"]["conversation_id"]
    session = VoiceSession.objects.get(pk=body["backend_session"]["session_id"])
    lifecycle.session_activate(session=session, conversation_id=conversation_id)
    lifecycle.session_end(session=session)
    long_ago = timezone.now() - timedelta(hours=1)
    SimulatedConversation.objects.filter(pk=conversation_id).update(
        status="done", transcript=[{"role": "agent", "message": "Hi from the simulator", "time_in_call_secs": 0}]
    )
    VoiceSession.objects.filter(pk=session.pk).update(ended_at=long_ago)
    call_command("reconcile_sessions", stdout=StringIO())
    session.refresh_from_db()
    assert session.transcript[0]["message"] == "Hi from the simulator"
