"""Server-Timing: our own time and ElevenLabs' time on every response."""

from __future__ import annotations

import re

import pytest

from tests.elevenlabs_fakes import TOKEN_PATH, add_error, add_token

pytestmark = pytest.mark.django_db

TIMING = re.compile(r"(\w+);dur=([\d.]+)")


def timings(response) -> dict[str, float]:
    return {name: float(ms) for name, ms in TIMING.findall(response["Server-Timing"])}


def test_every_response_carries_the_app_time(client):
    assert set(timings(client.get("/healthz"))) == {"app"}


def test_a_start_reports_the_time_spent_on_elevenlabs(alice_api, upstream):
    add_token(upstream, agent_id="agent_support_test")
    values = timings(alice_api.post("/api/voice/sessions", {"agentType": "support", "customerId": "c"}, format="json"))
    assert set(values) == {"app", "elevenlabs"}
    assert 0 < values["elevenlabs"] <= values["app"]


def test_every_attempt_counts_even_when_the_start_fails(alice_api, upstream):
    for _ in range(8):
        add_error(upstream, "GET", TOKEN_PATH, 503, code="system_busy", message="busy")
    response = alice_api.post("/api/voice/sessions", {"agentType": "support", "customerId": "c"}, format="json")
    assert response.status_code == 503
    assert timings(response)["elevenlabs"] > 0
