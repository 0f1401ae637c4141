"""SESSION_CREATE_THROTTLE: how many sessions one user may create, whichever endpoint creates them."""

from __future__ import annotations

import pytest

from sessions.models import VoiceSession

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fresh_throttles")]


@pytest.fixture
def rate(settings):
    def set_rate(value: str | None) -> None:
        settings.REST_FRAMEWORK = {
            **settings.REST_FRAMEWORK,
            "DEFAULT_THROTTLE_RATES": {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "session_create": value},
        }

    return set_rate


def create(client):
    return client.post("/voice/sessions", {"customer_id": "cust-1"}, format="json")


def start(client):
    return client.post("/api/voice/sessions", {"agentType": "support", "customerId": "cust-1"}, format="json")


def start_conversation(client):
    return client.post("/api/elevenlabs", {"action": "start_conversation", "agentType": "support"}, format="json")


def test_the_default_is_1200_a_minute(settings):
    assert settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]["session_create"] == "1200/min"


def test_the_fourth_create_in_a_minute_is_refused_with_429_and_retry_after(alice_api, rate):
    rate("3/min")

    responses = [create(alice_api) for _ in range(4)]

    assert [r.status_code for r in responses] == [201, 201, 201, 429]
    refused = responses[-1]
    assert 0 < int(refused["Retry-After"]) <= 60
    assert "throttled" in refused.json()["error"]["message"].lower()
    assert VoiceSession.objects.count() == 3


def test_every_endpoint_that_creates_a_session_draws_on_one_budget(alice_api, rate, simulation_mode):
    rate("3/min")

    assert create(alice_api).status_code == 201
    assert start(alice_api).status_code == 201
    assert start_conversation(alice_api).status_code == 201

    assert create(alice_api).status_code == 429
    assert start(alice_api).status_code == 429
    assert start_conversation(alice_api).status_code == 429
    assert VoiceSession.objects.count() == 3


def test_reading_and_using_existing_sessions_is_not_throttled(alice_api, rate, simulation_mode):
    rate("1/min")
    session_id = create(alice_api).json()["session_id"]

    assert create(alice_api).status_code == 429
    assert alice_api.get("/voice/sessions").status_code == 200
    assert alice_api.get(f"/voice/sessions/{session_id}").status_code == 200
    connect = alice_api.post(
        "/api/elevenlabs", {"action": "start_conversation", "sessionId": session_id}, format="json"
    )
    assert connect.status_code == 201
    assert alice_api.put(f"/voice/sessions/{session_id}/end", {}, format="json").status_code == 200


def test_each_user_has_a_budget_of_their_own(alice_api, bob_api, rate):
    rate("2/min")

    assert [create(alice_api).status_code for _ in range(3)] == [201, 201, 429]
    assert create(bob_api).status_code == 201


@pytest.mark.parametrize("off", ["", None])
def test_an_empty_setting_turns_the_throttle_off(alice_api, rate, off):
    rate(off)

    assert {create(alice_api).status_code for _ in range(30)} == {201}
