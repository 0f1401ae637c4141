"""The inbound loop end to end against uvicorn with two workers, the simulated agent playing ElevenLabs.

conversation-init over HTTP, a customer_history tool call over HTTP, the signed post-call webhook:
the session ends with its transcript, the tool call on its timeline and the call's sid. Then the
same from the admin's button, whose call runs in a thread of the server that serves it.
"""

from __future__ import annotations

import secrets
import time
from io import StringIO

import pytest
import requests
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client

from elevenlabs.models import WebhookDelivery
from elevenlabs.simulator.models import SimulatedConversation
from sessions.models import VoiceSession
from sessions.services import lifecycle
from tests.server import live_asgi_server  # noqa: F401

pytestmark = [pytest.mark.server, pytest.mark.django_db(transaction=True)]

CALLER = "+15551234567"


def earlier_call(customer_id: str) -> VoiceSession:
    session = lifecycle.session_create(customer_id=customer_id)
    lifecycle.session_mark_connecting(
        session=session, agent_id="agent_support_test", connection_type="websocket", simulation=False
    )
    conversation = {
        "analysis": {"call_successful": "success", "call_summary_title": "Late parcel", "transcript_summary": "..."},
        "metadata": {},
    }
    return lifecycle.session_store_post_call(session=session, conversation=conversation, source="webhook")


def test_a_simulated_inbound_call_runs_the_whole_loop_through_the_server(live_asgi_server):  # noqa: F811
    earlier = earlier_call(CALLER)
    out = StringIO()

    call_command(
        "simulate_inbound_call", "--from", CALLER, "--agent", "sales", "--base-url", live_asgi_server, stdout=out
    )

    session = VoiceSession.objects.exclude(pk=earlier.pk).get()
    assert f"session {session.pk}" in out.getvalue() and "post-call webhook delivered" in out.getvalue()
    assert "customer_history: 1 earlier call(s)" in out.getvalue()
    # The session ElevenLabs' question opened: the caller's, simulated, its call's sid kept.
    assert session.direction == "inbound" and session.agent_type == "sales"
    assert session.customer_id == CALLER and session.phone_number == CALLER
    assert session.simulation is True
    assert session.call_sid.startswith("CAsim")
    # The post-call webhook ended it with its transcript.
    assert session.status == "ended" and session.end_reason == "webhook"
    assert [turn["role"] for turn in session.transcript] == ["agent", "user", "agent", "agent", "user", "agent"]
    assert "Late parcel" in session.transcript[3]["message"]
    tool_turn = session.transcript[2]
    assert tool_turn["tool_calls"][0]["tool_name"] == "customer_history"
    assert tool_turn["tool_results"][0]["is_error"] is False
    assert session.call_metadata["phone_call"]["call_sid"] == session.call_sid
    # The tool call bound the conversation and is on the timeline.
    conversation = SimulatedConversation.objects.get(session=session)
    assert session.conversation_id == conversation.conversation_id
    kinds = list(session.events.values_list("kind", flat=True))
    assert kinds == ["inbound_call", "conversation_bound", "active", "tool_call", "post_call", "ended"]
    tool_row = session.events.get(kind="tool_call").payload
    assert tool_row["tool"] == "customer_history"
    assert [call["summary_title"] for call in tool_row["result"]["calls"]] == ["Late parcel"]
    assert tool_row["ms"] > 0
    assert WebhookDelivery.objects.get(session=session).outcome == "processed"


def test_a_withheld_number_is_an_anonymous_customer_end_to_end(live_asgi_server):  # noqa: F811
    call_command("simulate_inbound_call", "--from", "anonymous", "--base-url", live_asgi_server, stdout=StringIO())

    session = VoiceSession.objects.get()
    assert session.customer_id == f"anonymous-{session.call_sid}"
    assert session.status == "ended" and len(session.transcript) == 6


def test_the_command_says_what_the_server_refused(live_asgi_server, settings):  # noqa: F811
    settings.ELEVENLABS_TOOLS_TOKEN = "not-the-server-s-token"
    with pytest.raises(CommandError, match="conversation-init answered 401"):
        call_command("simulate_inbound_call", "--from", CALLER, "--base-url", live_asgi_server)
    assert not VoiceSession.objects.exists()


def test_the_admin_s_button_rings_the_agent_from_the_server_itself(live_asgi_server, django_user_model):  # noqa: F811
    django_user_model.objects.create_superuser("olivia", "olivia@example.com", "olivia-pass-123")
    browser = Client()
    browser.force_login(django_user_model.objects.get(username="olivia"))
    csrf = secrets.token_hex(16)  # a 32-character secret: Django takes it as the cookie and the form's token
    cookies = f"sessionid={browser.cookies['sessionid'].value}; csrftoken={csrf}"

    response = requests.post(
        f"{live_asgi_server}/admin/simulator/simulatedconversation/simulate-inbound-call/",
        data={"caller_id": CALLER, "agent_type": "support", "csrfmiddlewaretoken": csrf},
        headers={"Cookie": cookies, "Accept": "text/html"},
        allow_redirects=False,
        timeout=10,
    )

    assert response.status_code == 302, response.text[:500]
    assert response.headers["Location"].endswith("/admin/voice_sessions/voicesession/")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        session = VoiceSession.objects.filter(customer_id=CALLER).first()
        if session is not None and session.status == "ended":
            break
        time.sleep(0.2)
    assert session is not None and session.status == "ended", session and session.status
    assert session.simulation and session.call_sid and len(session.transcript) == 6
    assert session.events.filter(kind="tool_call").count() == 1
