"""A session knows its conversation from the moment its credential is minted.

Whatever client holds the credential (our playground, the Python SDK, a mobile app, curl and a
WebSocket), the post-call webhook finds the session by the conversation id bound at start. The
browser's `connected` event only confirms it, and nobody can point their own session at someone
else's conversation.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta

import pytest
from rest_framework.authtoken.models import Token

from elevenlabs.models import WebhookDelivery, WebhookOutcome
from elevenlabs.webhooks import SIGNATURE_HEADER, sign, signing_secret
from sessions.models import EventKind, Status, VoiceSession
from sessions.selectors import sessions_missing_post_call
from sessions.services import lifecycle
from tests.elevenlabs_fakes import add_signed_url, add_token, conversation
from tests.server import live_asgi_server, wait_for_post_call  # noqa: F401

pytestmark = pytest.mark.django_db

START = "/api/voice/sessions"
CALL_START = 1796000000  # 2026-11-30, what ElevenLabs' metadata says the call started at


def start(client, **fields):
    body = {"agentType": "support", "customerId": "cust-42", **fields}
    return client.post(START, body, format="json")


def post_event(client, session_id, **body):
    return client.post(f"/voice/sessions/{session_id}/events", body, format="json")


def deliver(client, data: dict, *, event_type: str = "post_call_transcription"):
    body = json.dumps({"type": event_type, "event_timestamp": int(time.time()), "data": data}).encode()
    return client.post(
        "/elevenlabs/webhook",
        body,
        content_type="application/json",
        headers={SIGNATURE_HEADER: sign(body, secret=signing_secret())},
    )


def timeline(session_id) -> list[str]:
    return list(VoiceSession.objects.get(pk=session_id).events.values_list("kind", flat=True))


# --- binding at start -------------------------------------------------------------------------------------


@pytest.mark.parametrize("where", ["body", "url"])
def test_a_signed_url_start_binds_the_conversation_elevenlabs_names(alice_api, upstream, where):
    add_signed_url(upstream, conversation_id="conv_text_1", conversation_id_in=where)

    response = start(alice_api, textOnly=True)

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["elevenlabs_conversation"]["conversation_id"] == "conv_text_1"
    assert body["backend_session"]["conversation_id"] == "conv_text_1"
    assert body["backend_session"]["status"] == "connecting"
    assert upstream.calls[0].request.params["include_conversation_id"] == "true"
    session = VoiceSession.objects.get(pk=body["backend_session"]["session_id"])
    bound = session.events.get(kind=EventKind.CONVERSATION_BOUND)
    assert bound.payload == {"conversation_id": "conv_text_1", "source": "credential"}


def test_a_webrtc_token_start_binds_the_conversation_of_the_token(alice_api, upstream):
    add_token(upstream, conversation_id="conv_rtc_1")

    body = start(alice_api).json()

    assert body["elevenlabs_conversation"]["conversation_token"]
    assert body["backend_session"]["conversation_id"] == "conv_rtc_1"
    assert EventKind.CONVERSATION_BOUND in timeline(body["backend_session"]["session_id"])


def test_without_an_id_from_elevenlabs_the_session_stays_unbound(alice_api, upstream):
    add_signed_url(upstream, conversation_id=None)

    body = start(alice_api, textOnly=True).json()

    assert body["backend_session"]["conversation_id"] is None
    assert "conversation_id" not in body["elevenlabs_conversation"]
    assert EventKind.CONVERSATION_BOUND not in timeline(body["backend_session"]["session_id"])


def test_an_id_of_the_wrong_shape_from_elevenlabs_is_not_bound(alice_api, upstream):
    add_signed_url(upstream, conversation_id="../../etc/passwd", conversation_id_in="body")

    body = start(alice_api, textOnly=True).json()

    assert body["backend_session"]["conversation_id"] is None


def test_a_simulated_start_is_always_bound(alice_api, simulation_mode):
    body = start(alice_api, textOnly=True).json()

    conversation_id = body["elevenlabs_conversation"]["conversation_id"]
    assert conversation_id.startswith("sim_conv_")
    assert body["backend_session"]["conversation_id"] == conversation_id


# --- the webhook finds the session without any client event ----------------------------------------------


def test_a_transcript_ends_a_bound_session_that_no_client_ever_reported(alice_api, upstream, client):
    add_signed_url(upstream, conversation_id="conv_api_1")
    session_id = start(alice_api, textOnly=True).json()["backend_session"]["session_id"]

    data = conversation("conv_api_1", metadata={"start_time_unix_secs": CALL_START, "call_duration_secs": 42})
    response = deliver(client, data)

    assert response.status_code == 200, response.content
    assert response.json()["status"] == "processed"
    session = VoiceSession.objects.get(pk=session_id)
    assert session.status == Status.ENDED
    assert session.end_reason == "webhook"
    assert session.transcript[0]["message"] == "Hello!"
    assert session.started_at == datetime.fromtimestamp(CALL_START, tz=UTC)
    assert WebhookDelivery.objects.get(conversation_id="conv_api_1").session_id == session.pk


@pytest.mark.parametrize("start_time", [None, "1796000000", True, -5, 10**12, 1.5])
def test_a_missing_or_implausible_start_time_leaves_started_at_empty(alice_api, upstream, client, start_time):
    add_signed_url(upstream, conversation_id="conv_api_2")
    session_id = start(alice_api, textOnly=True).json()["backend_session"]["session_id"]

    response = deliver(client, conversation("conv_api_2", metadata={"start_time_unix_secs": start_time}))

    assert response.status_code == 200
    session = VoiceSession.objects.get(pk=session_id)
    assert session.status == Status.ENDED
    assert session.started_at is None


def test_the_reconciler_looks_at_bound_sessions_no_client_reported(alice):
    session = lifecycle.session_create(customer_id="c", user=alice)
    lifecycle.session_mark_connecting(
        session=session, agent_id="a", connection_type="websocket", simulation=False, conversation_id="conv_quiet"
    )
    later = datetime.now(UTC) + timedelta(hours=1)

    found = sessions_missing_post_call(ended_before=later, quiet_before=later)

    assert [s.pk for s in found] == [session.pk]


# --- the browser's `connected` confirms ---------------------------------------------------------------------


def test_connected_with_the_bound_id_activates(alice_api, upstream):
    add_signed_url(upstream, conversation_id="conv_b1")
    session_id = start(alice_api, textOnly=True).json()["backend_session"]["session_id"]

    response = post_event(alice_api, session_id, type="connected", conversation_id="conv_b1")

    assert response.status_code == 200
    assert response.json()["status"] == "active"


def test_connected_with_another_id_on_a_bound_session_is_409_and_changes_nothing(alice_api, upstream):
    add_signed_url(upstream, conversation_id="conv_b2")
    session_id = start(alice_api, textOnly=True).json()["backend_session"]["session_id"]
    before = timeline(session_id)

    response = post_event(alice_api, session_id, type="connected", conversation_id="conv_other")

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "conversation_mismatch"
    session = VoiceSession.objects.get(pk=session_id)
    assert (session.status, session.conversation_id) == (Status.CONNECTING, "conv_b2")
    assert timeline(session_id) == before


# --- nobody takes over another conversation ------------------------------------------------------------------


def test_bob_cannot_claim_alices_bound_conversation(alice_api, bob, bob_api, simulation_mode, client):
    alice_start = start(alice_api, textOnly=True).json()
    alices_conversation = alice_start["elevenlabs_conversation"]["conversation_id"]
    # Bob's own session, left unbound as an ElevenLabs start without an id would leave it.
    bob_session = lifecycle.session_create(customer_id="bob-c", user=bob)
    lifecycle.session_mark_connecting(session=bob_session, agent_id="a", connection_type="websocket", simulation=True)

    response = post_event(bob_api, bob_session.pk, type="connected", conversation_id=alices_conversation)

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "conversation_claimed"
    bob_session.refresh_from_db()
    assert bob_session.conversation_id is None
    # Alice's session is untouched and still confirms and receives its transcript.
    alice_id = alice_start["backend_session"]["session_id"]
    assert post_event(alice_api, alice_id, type="connected", conversation_id=alices_conversation).status_code == 200
    assert deliver(client, conversation(alices_conversation)).json()["status"] == "processed"
    assert VoiceSession.objects.get(pk=alice_id).transcript


def test_bob_cannot_claim_a_conversation_whose_delivery_waited_before_his_session(bob, bob_api, client):
    # A call nobody's session started (or whose session never learnt its id): its transcript waits, unmatched.
    assert deliver(client, conversation("conv_orphan")).json()["status"] == "unmatched"
    bob_session = lifecycle.session_create(customer_id="bob-c", user=bob)
    lifecycle.session_mark_connecting(session=bob_session, agent_id="a", connection_type="websocket", simulation=False)

    response = post_event(bob_api, bob_session.pk, type="connected", conversation_id="conv_orphan")

    assert response.status_code == 409
    bob_session.refresh_from_db()
    assert (bob_session.status, bob_session.conversation_id, bob_session.transcript) == (Status.CONNECTING, None, [])
    assert WebhookDelivery.objects.get(conversation_id="conv_orphan").outcome == WebhookOutcome.UNMATCHED


def test_an_unbound_session_claims_a_delivery_that_arrived_after_it_started(alice, alice_api, client):
    session = lifecycle.session_create(customer_id="c", user=alice)
    lifecycle.session_mark_connecting(session=session, agent_id="a", connection_type="websocket", simulation=False)
    # The webhook overtook the browser's `connected` report: the delivery is newer than the session.
    assert deliver(client, conversation("conv_late")).json()["status"] == "unmatched"

    response = post_event(alice_api, session.pk, type="connected", conversation_id="conv_late")

    assert response.status_code == 200
    session.refresh_from_db()
    assert session.conversation_id == "conv_late"
    assert session.status == Status.ENDED
    assert session.transcript


# --- from outside our page: an API client and a WebSocket, no client events ----------------------------------


@pytest.mark.server
@pytest.mark.django_db(transaction=True)
def test_an_api_client_talking_to_the_simulator_gets_its_transcript_without_client_events(
    live_asgi_server,  # noqa: F811
    alice,
):
    import requests
    from websockets.sync.client import connect

    token = Token.objects.create(user=alice).key
    response = requests.post(
        f"{live_asgi_server}{START}",
        json={"agentType": "support", "customerId": "cust-sdk", "textOnly": True, "simulation": True},
        headers={"Authorization": f"Token {token}"},
        timeout=10,
    )
    assert response.status_code == 201, response.text
    body = response.json()
    session_id = body["backend_session"]["session_id"]
    conversation_id = body["elevenlabs_conversation"]["conversation_id"]
    assert body["backend_session"]["conversation_id"] == conversation_id

    # As the Python SDK does: open the signed URL, say who we are, send one message, hang up. No /events.
    with connect(body["elevenlabs_conversation"]["signed_url"], open_timeout=10) as socket:
        assert json.loads(socket.recv(timeout=10))["type"] == "conversation_initiation_metadata"
        socket.send(json.dumps({"type": "conversation_initiation_client_data"}))
        assert json.loads(socket.recv(timeout=10))["type"] == "agent_response"
        socket.send(json.dumps({"type": "user_message", "text": "Where is my order?"}))
        replies = [json.loads(socket.recv(timeout=10)) for _ in range(2)]
        assert [reply["type"] for reply in replies] == ["user_transcript", "agent_response"]
        socket.close(code=1000, reason="done")

    session = wait_for_post_call(session_id)
    assert session.status == Status.ENDED
    assert session.conversation_id == conversation_id
    assert [item["message"] for item in session.transcript][1] == "Where is my order?"
    assert session.started_at is not None
    assert WebhookDelivery.objects.get(conversation_id=conversation_id).outcome == WebhookOutcome.PROCESSED
