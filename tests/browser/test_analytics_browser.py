"""The admin's analytics page in Chromium, on calls the simulated agent really had: the charts draw, no CSP refusal.

Two conversations with the simulated support agent go through the server's own WebSocket and
post-call webhook (one where the customer speaks, judged a success, one where nobody does, a
failure); a real call with a cost is stored beside them, as the simulator's calls cost 0.
"""

from __future__ import annotations

import json
import time

import pytest
import requests
from playwright.sync_api import Page, expect
from rest_framework.authtoken.models import Token
from websockets.sync.client import connect

from sessions.models import VoiceSession
from tests.browser.conftest import PASSWORD, watch

pytestmark = [pytest.mark.browser, pytest.mark.server, pytest.mark.django_db(transaction=True)]

TIMEOUT = 10


@pytest.fixture
def olivia(django_user_model):
    return django_user_model.objects.create_user("olivia", password=PASSWORD, is_staff=True, is_superuser=True)


def simulated_call(base_url: str, token: str, *, customer_speaks: bool) -> str:
    """A text conversation with the simulated support agent, as an API client has it; returns the session id."""
    response = requests.post(
        f"{base_url}/api/voice/sessions",
        json={"agentType": "support", "customerId": "cust-charts", "textOnly": True, "simulation": True},
        headers={"Authorization": f"Token {token}"},
        timeout=TIMEOUT,
    )
    assert response.status_code == 201, response.text
    body = response.json()
    with connect(body["elevenlabs_conversation"]["signed_url"], open_timeout=TIMEOUT) as socket:
        assert json.loads(socket.recv(timeout=TIMEOUT))["type"] == "conversation_initiation_metadata"
        socket.send(json.dumps({"type": "conversation_initiation_client_data"}))
        assert json.loads(socket.recv(timeout=TIMEOUT))["type"] == "agent_response"
        if customer_speaks:
            socket.send(json.dumps({"type": "user_message", "text": "Where is my order?"}))
            replies = [json.loads(socket.recv(timeout=TIMEOUT))["type"] for _ in range(2)]
            assert replies == ["user_transcript", "agent_response"]
        socket.close(code=1000, reason="done")
    return body["backend_session"]["session_id"]


def wait_for_post_call(session_ids: list[str]) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if VoiceSession.objects.filter(pk__in=session_ids, post_call_received_at__isnull=False).count() == 2:
            return
        time.sleep(0.1)
    raise AssertionError("the simulated agent's post-call webhooks did not arrive")


def test_the_charts_draw_from_simulated_calls_under_the_csp(page: Page, simulated_server, olivia):
    token = Token.objects.create(user=olivia).key
    calls = [simulated_call(simulated_server, token, customer_speaks=speaks) for speaks in (True, False)]
    wait_for_post_call(calls)
    assert sorted(VoiceSession.objects.values_list("call_successful", flat=True)) == ["failure", "success"]
    VoiceSession.objects.create(
        created_by=olivia,
        customer_id="cust-real",
        agent_type="sales",
        status="ended",
        call_successful="success",
        call_duration_secs=95,
        cost=250,
    )

    seen = watch(page, simulated_server)
    page.goto(f"{simulated_server}/admin/login/?next=/admin/")
    page.fill("#id_username", "olivia")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url(f"{simulated_server}/admin/")
    page.get_by_role("link", name="Calls per day, outcomes, durations and cost").click()
    page.wait_for_url(f"{simulated_server}/admin/analytics/")

    expect(page.locator("h1")).to_have_text("Analytics")
    expect(page.locator("#analytics-totals")).to_contain_text("Sessions3")
    # Today's bar: two ended with a success (one simulated, one real), one simulated failure.
    stacked = page.locator("#chart-sessions-per-day rect.bar")
    expect(stacked).to_have_count(2)
    expect(page.locator("#chart-sessions-per-day rect.series-success")).to_have_count(1)
    expect(page.locator("#chart-sessions-per-day rect.series-failure")).to_have_count(1)
    expect(page.locator("#chart-success-rate rect.bar")).to_have_count(1)  # only today had verdicts
    expect(page.locator("#chart-success-rate-table")).to_contain_text("66.7 %")
    # The simulated calls took seconds, the real one 95 s.
    expect(page.locator("#chart-durations rect.bar")).to_have_count(2)
    expect(page.locator("#chart-durations-table tbody tr").first).to_contain_text("2")
    expect(page.locator("#chart-cost-per-agent rect.bar")).to_have_count(1)  # the simulator's calls cost 0
    expect(page.locator("#chart-cost-per-agent-table")).to_contain_text("250")

    # Drawn, and coloured by our stylesheet, not merely present in the markup.
    success = page.locator("#chart-sessions-per-day rect.series-success")
    assert success.bounding_box()["height"] > 10
    assert success.evaluate("rect => getComputedStyle(rect).fill") == "rgb(27, 120, 55)"
    assert page.locator("#chart-cost-per-agent").bounding_box()["width"] > 300

    # The filters are a form: simulated calls only.
    page.select_option("#analytics-simulation", "true")
    page.click("#analytics-filters button[type=submit]")
    expect(page.locator("#analytics-totals")).to_contain_text("Sessions2")
    expect(page.locator("#chart-cost-per-agent rect.bar")).to_have_count(0)

    assert seen.csp_violations() == [], "the CSP refused something"
    assert seen.errors() == [], "the console has errors"
    assert seen.off_host() == [], "requests left the machine"
