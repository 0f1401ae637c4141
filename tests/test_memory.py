"""CONVERSATION_MEMORY: every start path gives the session the customer's previous calls as dynamic variables.

What is remembered (sessions.memory), then each way a session starts: the sessions API and its start,
the one-round-trip start (the playground's), an outbound call (the server passes the variables to
ElevenLabs itself), and the simulated agent, whose greeting says what it remembers.
"""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from sessions.memory import SUMMARY_MAX_CHARS, memory_variables
from sessions.models import EventKind, VoiceSession
from sessions.services import lifecycle
from tests.elevenlabs_fakes import TWILIO_CALL_PATH, add_token
from tests.test_simulator_protocol import (
    ManualClock,
    application,
    communicator,
    open_conversation,
    receive_turn,
    run_with_our_webhook,
)

NOTHING = {"previous_call_count": 0, "previous_call_summary": ""}


@pytest.fixture
def memory(settings):
    settings.CONVERSATION_MEMORY = True
    return settings


def past_call(customer_id: str, *, summary: str = "", days_ago: float = 1, status: str = "ended") -> VoiceSession:
    session = lifecycle.session_create(customer_id=customer_id)
    if status == "ended":
        lifecycle.session_end(session=session)
    else:
        lifecycle.session_fail(session=session, code="x", message="failed")
    VoiceSession.objects.filter(pk=session.pk).update(
        transcript_summary=summary, ended_at=timezone.now() - timedelta(days=days_ago)
    )
    return VoiceSession.objects.get(pk=session.pk)


# --- What is remembered ------------------------------------------------------------------------------


@pytest.mark.django_db
def test_it_counts_the_ended_calls_and_takes_the_latest_summary(memory):
    past_call("cust-9", summary="Asked about a refund.", days_ago=10)
    past_call("cust-9", summary="Reset the router.", days_ago=3)
    past_call("cust-9", summary="", days_ago=1)  # the latest call has no summary: the one before is told
    past_call("cust-9", summary="Failed calls are not calls.", status="failed")
    lifecycle.session_create(customer_id="cust-9")  # still open
    past_call("someone-else", summary="Not this customer's.")
    assert memory_variables(customer_id="cust-9") == {
        "previous_call_count": 3,
        "previous_call_summary": "Reset the router.",
    }


@pytest.mark.django_db
def test_the_session_being_started_is_not_its_own_previous_call(memory):
    only = past_call("cust-9", summary="Only call.")
    assert memory_variables(customer_id="cust-9", exclude_session_id=only.pk) == NOTHING


@pytest.mark.django_db
def test_a_long_summary_is_cut_to_500_characters(memory):
    past_call("cust-9", summary="word " * 300)
    summary = memory_variables(customer_id="cust-9")["previous_call_summary"]
    assert len(summary) <= SUMMARY_MAX_CHARS
    assert summary.endswith("…") and summary.startswith("word word")


@pytest.mark.django_db
def test_nothing_is_remembered_when_memory_is_off_or_the_caller_is_anonymous(settings):
    past_call("cust-9", summary="A call.")
    past_call("anonymous-CA123", summary="A withheld number.")
    settings.CONVERSATION_MEMORY = False
    assert memory_variables(customer_id="cust-9") == NOTHING
    settings.CONVERSATION_MEMORY = True
    assert memory_variables(customer_id="anonymous-CA123") == NOTHING
    assert memory_variables(customer_id="new-customer") == NOTHING


# --- Every start path ---------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_sessions_api_and_its_start_carry_the_memory(memory, alice_api, upstream):
    past_call("cust-9", summary="Reset the router.")
    created = alice_api.post(
        "/voice/sessions",
        {"customer_id": "cust-9", "dynamic_variables": {"plan": "gold", "previous_call_count": 99}},
        format="json",
    )
    assert created.status_code == 201, created.content
    variables = created.json()["dynamic_variables"]
    # The caller's own variables stay; memory's take the place of same-named ones.
    assert variables == {"plan": "gold", "previous_call_count": 1, "previous_call_summary": "Reset the router."}
    session = VoiceSession.objects.get(pk=created.json()["session_id"])
    row = session.events.get(kind=EventKind.MEMORY)
    assert row.payload == {"previous_call_count": 1, "previous_call_summary_chars": len("Reset the router.")}
    assert "router" not in json.dumps(row.payload)  # how much was remembered, not what

    # The browser or API client opens the conversation: the credential comes with the variables to pass on.
    add_token(upstream, agent_id="agent_support_test")
    started = alice_api.post(
        "/api/elevenlabs", {"action": "start_conversation", "sessionId": str(session.pk)}, format="json"
    )
    assert started.status_code == 201, started.content
    assert started.json()["dynamic_variables"] == variables


@pytest.mark.django_db
def test_the_one_round_trip_start_hands_the_variables_beside_the_credential(memory, alice_api, upstream):
    past_call("cust-9", summary="Reset the router.")
    past_call("cust-9", summary="Asked for a refund.", days_ago=0.5)
    add_token(upstream, agent_id="agent_support_test")
    response = alice_api.post("/api/voice/sessions", {"agentType": "support", "customerId": "cust-9"}, format="json")
    assert response.status_code == 201, response.content
    conversation = response.json()["elevenlabs_conversation"]
    assert conversation["conversation_token"]
    assert conversation["dynamic_variables"] == {
        "previous_call_count": 2,
        "previous_call_summary": "Asked for a refund.",
    }


@pytest.mark.django_db
def test_with_memory_off_sessions_start_as_before(settings, alice_api, upstream):
    settings.CONVERSATION_MEMORY = False
    past_call("cust-9", summary="Reset the router.")
    add_token(upstream, agent_id="agent_support_test")
    response = alice_api.post(
        "/api/voice/sessions",
        {"agentType": "support", "customerId": "cust-9", "dynamicVariables": {"plan": "gold"}},
        format="json",
    )
    assert response.status_code == 201
    assert response.json()["elevenlabs_conversation"]["dynamic_variables"] == {"plan": "gold"}
    session = VoiceSession.objects.get(pk=response.json()["backend_session"]["session_id"])
    assert not session.events.filter(kind=EventKind.MEMORY).exists()


@pytest.mark.django_db
def test_a_new_customer_still_gets_both_variables(memory, alice_api):
    response = alice_api.post("/voice/sessions", {"customer_id": "first-timer"}, format="json")
    assert response.json()["dynamic_variables"] == NOTHING


@pytest.mark.django_db
def test_an_outbound_call_gives_elevenlabs_the_memory_itself(memory, alice_api, upstream, settings):
    settings.ELEVENLABS_PHONE_NUMBER_ID = "phnum_123"
    past_call("cust-7", summary="Wanted a callback about pricing.")
    upstream.add(
        "POST",
        f"https://api.elevenlabs.io{TWILIO_CALL_PATH}",
        json={"success": True, "message": "Call started", "conversation_id": "conv_out_mem", "callSid": "CA9"},
    )
    call = {"agentType": "sales", "customerId": "cust-7", "direction": "outbound", "phoneNumber": "+14155550100"}
    response = alice_api.post("/api/voice/sessions", call, format="json")
    assert response.status_code == 201, response.content
    sent = json.loads(upstream.calls[0].request.body)["conversation_initiation_client_data"]
    assert sent["dynamic_variables"] == {
        "previous_call_count": 1,
        "previous_call_summary": "Wanted a callback about pricing.",
    }
    # Nothing for a client to pass on: ElevenLabs dials, the server gave it the variables.
    assert "dynamic_variables" not in response.json()["elevenlabs_conversation"]


# --- The simulated agent ------------------------------------------------------------------------------


def greeting_for(signed_url: str, variables: dict) -> str:
    """Open the simulated conversation as the browser client does, passing ``variables``; return the greeting."""
    said = []

    async def scenario():
        comm = communicator(application(ManualClock()), signed_url)
        await open_conversation(comm, text_only=True, dynamic_variables=variables)
        greeting, _ = await receive_turn(comm)
        said.append(greeting["agent_response_event"]["agent_response"])
        await comm.disconnect()

    run_with_our_webhook(scenario())
    return said[0]


@pytest.mark.django_db(transaction=True)
def test_the_simulated_agent_greets_a_returning_customer_with_what_it_remembers(
    memory, simulation_mode, alice_api, fresh_throttles
):
    past_call("cust-9", summary="Reset the router after the update.")
    response = alice_api.post(
        "/api/voice/sessions", {"agentType": "support", "customerId": "cust-9", "textOnly": True}, format="json"
    )
    assert response.status_code == 201, response.content
    started = response.json()["elevenlabs_conversation"]
    greeting = greeting_for(started["signed_url"], started["dynamic_variables"])
    assert greeting.startswith("Hi, thanks for calling support.")
    assert greeting.endswith(
        "Welcome back! I can see you have called us 1 time(s) before. Last time: Reset the router after the update."
    )


@pytest.mark.django_db(transaction=True)
def test_the_simulated_agent_greets_a_first_time_caller_as_always(memory, simulation_mode, alice_api, fresh_throttles):
    response = alice_api.post(
        "/api/voice/sessions", {"agentType": "support", "customerId": "first-timer", "textOnly": True}, format="json"
    )
    started = response.json()["elevenlabs_conversation"]
    assert started["dynamic_variables"] == NOTHING
    greeting = greeting_for(started["signed_url"], started["dynamic_variables"])
    assert "Welcome back" not in greeting and greeting.startswith("Hi, thanks for calling support.")
