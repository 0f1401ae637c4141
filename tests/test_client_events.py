"""POST /voice/sessions/{id}/events: what only the browser sees."""

from __future__ import annotations

import pytest

from sessions.models import VoiceSession
from sessions.services import lifecycle

pytestmark = pytest.mark.django_db


@pytest.fixture
def connecting(alice):
    session = lifecycle.session_create(user=alice, customer_id="c1")
    return lifecycle.session_mark_connecting(
        session=session, agent_id="agent_support_test", connection_type="websocket", simulation=False
    )


def post_event(client, session, **payload):
    return client.post(f"/voice/sessions/{session.pk}/events", payload, format="json")


def kinds(session):
    return list(session.events.values_list("kind", flat=True))


def test_connected_activates_with_the_conversation_id(alice_api, connecting):
    response = post_event(alice_api, connecting, type="connected", conversation_id="conv_1")
    assert response.status_code == 200, response.content
    assert response.json()["status"] == "active"
    assert response.json()["conversation_id"] == "conv_1"
    session = VoiceSession.objects.get(pk=connecting.pk)
    assert session.started_at is not None
    assert kinds(session) == ["connecting", "active"]  # the creation is not a stored row


def test_connected_twice_with_the_same_id_is_idempotent(alice_api, connecting):
    post_event(alice_api, connecting, type="connected", conversation_id="conv_1")
    response = post_event(alice_api, connecting, type="connected", conversation_id="conv_1")
    assert response.status_code == 200
    assert kinds(connecting).count("active") == 1


def test_a_conversation_claimed_by_another_session_is_409(alice, alice_api, connecting):
    other = lifecycle.session_create(user=alice, customer_id="c2")
    lifecycle.session_mark_connecting(session=other, agent_id="a", connection_type="websocket", simulation=False)
    lifecycle.session_activate(session=other, conversation_id="conv_taken")
    response = post_event(alice_api, connecting, type="connected", conversation_id="conv_taken")
    assert response.status_code == 409
    assert response.json()["error"]["conversation_id"] == "conv_taken"
    assert VoiceSession.objects.get(pk=connecting.pk).status == "connecting"


def test_connected_on_a_session_that_never_got_a_credential_is_409(alice, alice_api):
    session = lifecycle.session_create(user=alice, customer_id="c1")
    response = post_event(alice_api, session, type="connected", conversation_id="conv_1")
    assert response.status_code == 409
    assert response.json()["error"]["current_status"] == "created"


def test_mode_and_status_events_are_timeline_rows(alice_api, connecting):
    post_event(alice_api, connecting, type="status", status="connected")
    post_event(alice_api, connecting, type="mode", mode="speaking")
    post_event(alice_api, connecting, type="message", role="agent", message="Hello")
    assert kinds(connecting)[-3:] == ["client.status", "client.mode", "client.message"]
    assert connecting.events.get(kind="client.mode").payload == {"mode": "speaking"}


@pytest.mark.parametrize(("reason", "end_reason"), [("user", "user"), ("agent", "agent")])
def test_disconnect_by_user_or_agent_ends(alice_api, connecting, reason, end_reason):
    response = post_event(alice_api, connecting, type="disconnect", reason=reason, close_code=1000)
    assert response.json()["status"] == "ended"
    assert response.json()["end_reason"] == end_reason


def test_disconnect_with_an_error_fails_with_the_close_reason(alice_api, connecting):
    response = post_event(
        alice_api, connecting, type="disconnect", reason="error", close_code=1008, message="Signed URL expired"
    )
    body = response.json()
    assert body["status"] == "failed"
    assert body["failure_code"] == "closed_1008"
    assert body["failure_message"] == "Signed URL expired"


def test_an_error_event_keeps_the_session_open(alice_api, connecting):
    response = post_event(alice_api, connecting, type="error", message="mic blocked")
    assert response.json()["status"] == "connecting"
    assert connecting.events.filter(kind="client.error").exists()


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"type": "wave"}, "type"),
        ({"type": "connected"}, "conversation_id"),
        ({"type": "connected", "conversation_id": "bad id!"}, "conversation_id"),
        ({"type": "mode", "mode": "singing"}, "mode"),
        ({"type": "disconnect"}, "reason"),
        ({"type": "disconnect", "reason": "user", "close_code": 99}, "close_code"),
        ({"type": "message", "role": "user"}, "message"),
    ],
)
def test_bad_events_are_400_and_change_nothing(alice_api, connecting, payload, field):
    before = kinds(connecting)
    response = alice_api.post(f"/voice/sessions/{connecting.pk}/events", payload, format="json")
    assert response.status_code == 400
    assert field in response.json()["error"]["fields"]
    assert kinds(connecting) == before
