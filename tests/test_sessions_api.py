"""The /voice/sessions contracts, validation, auth and ownership, transitions."""

from __future__ import annotations

import uuid

import pytest
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from sessions.models import SessionEvent, VoiceSession

pytestmark = pytest.mark.django_db

VALID = {"customer_id": "cust-1", "direction": "inbound", "locale": "en-US", "simulation": False}


def create(client, **overrides):
    return client.post("/voice/sessions", {**VALID, **overrides}, format="json")


def test_create_returns_the_contract_fields(alice_api, alice):
    response = create(alice_api)
    assert response.status_code == 201, response.content
    body = response.json()
    assert uuid.UUID(body["session_id"])
    assert body["status"] == "created"
    assert body["customer_id"] == "cust-1"
    assert body["direction"] == "inbound"
    assert body["locale"] == "en-US"
    assert body["simulation"] is False
    assert body["agent_type"] == "support"
    assert body["created_at"].endswith("Z")
    session = VoiceSession.objects.get(pk=body["session_id"])
    assert session.created_by == alice
    assert not session.events.exists()  # the creation is read from the session, not stored twice


def test_without_an_api_key_every_session_is_simulated(alice_api, simulation_mode):
    assert create(alice_api, simulation=False).json()["simulation"] is True


def test_locale_is_normalised(alice_api):
    assert create(alice_api, locale="pt-br").json()["locale"] == "pt-BR"
    assert create(alice_api, locale="zh-hans-cn").json()["locale"] == "zh-Hans-CN"


@pytest.mark.parametrize(
    ("field", "value", "fragment"),
    [
        ("direction", "sideways", "use one of: inbound, outbound"),
        ("locale", "english", "not a language tag"),
        ("locale", "en_US", "not a language tag"),
        ("customer_id", "", "may not be blank"),
        ("customer_id", "x" * 129, "no more than 128"),
        ("customer_id", "bad id!", "letters, digits"),
        ("customer_id", "-leading", "starting with a letter or digit"),
        ("customer_id", "+1555", "E.164"),
        ("customer_id", "+01555123456", "E.164"),
        ("customer_id", "+1555123456a", "E.164"),
        ("simulation", "maybe", "Must be true or false"),
        ("agent_type", "billing", "use one of: support, sales"),
        ("phone_number", "12345", "E.164"),
        ("dynamic_variables", {"bad name": "x"}, "not a variable name"),
        ("dynamic_variables", {"ok": {"nested": 1}}, "string, number or boolean"),
        ("dynamic_variables", [1, 2], "Must be an object"),
    ],
)
def test_each_validation_error_names_the_field_and_changes_nothing(alice_api, field, value, fragment):
    response = create(alice_api, **{field: value})
    assert response.status_code == 400
    errors = response.json()["error"]["fields"]
    assert field in errors
    assert fragment in " ".join(errors[field])
    assert VoiceSession.objects.count() == 0


def test_a_phone_number_in_e164_is_a_customer_id(alice_api):
    # How an inbound call knows its customer: by the caller's number, with its "+".
    assert create(alice_api, customer_id="+15551234567").json()["customer_id"] == "+15551234567"


def test_missing_customer_id_is_required(alice_api):
    response = alice_api.post("/voice/sessions", {"direction": "inbound"}, format="json")
    assert response.status_code == 400
    assert "required" in response.json()["error"]["fields"]["customer_id"][0]


def test_malformed_json_is_a_400(alice_api):
    response = alice_api.post("/voice/sessions", "{not json", content_type="application/json")
    assert response.status_code == 400
    assert VoiceSession.objects.count() == 0


def test_get_returns_the_session_with_its_timeline(alice_api):
    session_id = create(alice_api).json()["session_id"]
    response = alice_api.get(f"/voice/sessions/{session_id}")
    assert response.status_code == 200
    body = response.json()
    assert body["session_id"] == session_id
    assert [row["kind"] for row in body["timeline"]] == ["created"]
    assert body["timeline"][0]["to_status"] == "created"
    assert body["transcript"] == []


def test_get_unknown_session_is_404(alice_api):
    assert alice_api.get(f"/voice/sessions/{uuid.uuid4()}").status_code == 404


def test_end_returns_the_ended_session_and_twice_is_not_an_error(alice_api):
    session_id = create(alice_api).json()["session_id"]
    first = alice_api.put(f"/voice/sessions/{session_id}/end")
    assert first.status_code == 200
    assert first.json()["status"] == "ended"
    assert first.json()["end_reason"] == "user"
    second = alice_api.put(f"/voice/sessions/{session_id}/end")
    assert second.status_code == 200
    assert second.json() == first.json()
    assert SessionEvent.objects.filter(session_id=session_id, kind="ended").count() == 1


def test_end_accepts_post_and_a_reason(alice_api):
    session_id = create(alice_api).json()["session_id"]
    response = alice_api.post(f"/voice/sessions/{session_id}/end", {"reason": "agent"}, format="json")
    assert response.status_code == 200
    assert response.json()["end_reason"] == "agent"


def test_end_with_an_unknown_reason_is_400_and_changes_nothing(alice_api):
    session_id = create(alice_api).json()["session_id"]
    response = alice_api.put(f"/voice/sessions/{session_id}/end", {"reason": "bored"}, format="json")
    assert response.status_code == 400
    assert "reason" in response.json()["error"]["fields"]
    assert VoiceSession.objects.get(pk=session_id).status == "created"


# --- auth and ownership ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/voice/sessions"),
        ("post", "/voice/sessions"),
        ("get", "/voice/sessions/{id}"),
        ("put", "/voice/sessions/{id}/end"),
        ("post", "/voice/sessions/{id}/events"),
        ("post", "/api/voice/sessions"),
        ("post", "/api/elevenlabs"),
    ],
)
def test_anonymous_calls_are_refused(api, alice_api, method, path):
    session_id = create(alice_api).json()["session_id"]
    response = getattr(api, method)(path.format(id=session_id), {}, format="json")
    assert response.status_code in (401, 403)
    assert VoiceSession.objects.count() == 1


def test_token_authentication_works(alice):
    token = Token.objects.create(user=alice)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    assert create(client).status_code == 201
    client.credentials(HTTP_AUTHORIZATION="Token wrong")
    assert create(client).status_code == 401


def test_a_user_sees_and_ends_only_their_own_sessions(alice_api, bob_api):
    session_id = create(alice_api).json()["session_id"]
    assert bob_api.get(f"/voice/sessions/{session_id}").status_code == 404
    assert bob_api.put(f"/voice/sessions/{session_id}/end").status_code == 404
    assert (
        bob_api.post(
            f"/voice/sessions/{session_id}/events", {"type": "mode", "mode": "speaking"}, format="json"
        ).status_code
        == 404
    )
    assert bob_api.get("/voice/sessions").json()["count"] == 0
    assert VoiceSession.objects.get(pk=session_id).status == "created"


def test_staff_see_and_end_every_session(alice_api, staff_api):
    session_id = create(alice_api).json()["session_id"]
    assert staff_api.get(f"/voice/sessions/{session_id}").status_code == 200
    assert staff_api.get("/voice/sessions").json()["count"] == 1
    assert staff_api.put(f"/voice/sessions/{session_id}/end").json()["status"] == "ended"


# --- list and filters --------------------------------------------------------------------------


def test_list_is_paginated_and_filtered(alice_api):
    for customer, agent in [("a-1", "support"), ("a-1", "sales"), ("b-2", "support")]:
        create(alice_api, customer_id=customer, agent_type=agent)
    ended = create(alice_api, customer_id="c-3").json()["session_id"]
    alice_api.put(f"/voice/sessions/{ended}/end")

    body = alice_api.get("/voice/sessions").json()
    assert body["count"] == 4
    assert set(body) >= {"count", "next", "previous", "results"}
    assert alice_api.get("/voice/sessions?customer_id=a-1").json()["count"] == 2
    assert alice_api.get("/voice/sessions?agent_type=sales").json()["count"] == 1
    assert alice_api.get("/voice/sessions?status=ended").json()["count"] == 1
    assert alice_api.get("/voice/sessions?created_after=2000-01-01T00:00:00Z").json()["count"] == 4
    assert alice_api.get("/voice/sessions?created_before=2000-01-01T00:00:00Z").json()["count"] == 0


@pytest.mark.parametrize("query", ["status=sleeping", "agent_type=billing", "created_after=yesterday"])
def test_bad_filters_are_400(alice_api, query):
    response = alice_api.get(f"/voice/sessions?{query}")
    assert response.status_code == 400
    assert query.split("=")[0] in response.json()["error"]["fields"]


def test_the_browsable_api_renders_for_a_logged_in_browser(client, alice):
    client.force_login(alice)
    response = client.get("/voice/sessions", HTTP_ACCEPT="text/html")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    assert "Session List Create" in response.text or "voice/sessions" in response.text
    assert 'name="csrfmiddlewaretoken"' in response.text  # the POST form
    # DRF's pages use inline styles and handlers: their own policy; the JSON keeps the strict one.
    assert "script-src 'self' 'unsafe-inline'" in response["Content-Security-Policy"]
    strict = client.get("/voice/sessions", HTTP_ACCEPT="application/json")["Content-Security-Policy"]
    assert "'unsafe-inline'" not in strict and "script-src 'self'" in strict
