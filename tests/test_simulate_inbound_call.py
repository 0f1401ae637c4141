"""The simulated inbound call's controls: the admin's page and the command's refusals (the loop itself runs
against a real server in test_inbound_call_server.py)."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from elevenlabs.simulator import admin as simulator_admin

pytestmark = pytest.mark.django_db

PAGE = "/admin/simulator/simulatedconversation/simulate-inbound-call/"


@pytest.fixture
def started(monkeypatch):
    calls = []
    monkeypatch.setattr(simulator_admin, "simulator_inbound_call_in_background", lambda **kwargs: calls.append(kwargs))
    return calls


def test_the_conversations_list_offers_the_button(operator):
    page = operator.get("/admin/simulator/simulatedconversation/")
    assert PAGE in page.content.decode()


def test_the_page_asks_for_a_number_and_an_agent(operator):
    page = operator.get(PAGE)
    assert page.status_code == 200
    html = page.content.decode()
    assert 'name="caller_id"' in html and 'name="agent_type"' in html


def test_calling_starts_the_call_in_the_background_and_goes_to_the_sessions(operator, started):
    response = operator.post(PAGE, {"caller_id": "+15551234567", "agent_type": "sales"})
    assert response.status_code == 302 and response["Location"] == "/admin/voice_sessions/voicesession/"
    assert started == [{"caller_id": "+15551234567", "agent_type": "sales", "base_url": "http://testserver"}]


def test_an_empty_number_calls_from_a_withheld_one(operator, started):
    operator.post(PAGE, {"caller_id": "", "agent_type": "support"})
    assert started[0]["caller_id"] == "anonymous"


def test_a_number_that_is_not_e164_is_refused_on_the_form(operator, started):
    page = operator.post(PAGE, {"caller_id": "555-1234", "agent_type": "support"})
    assert page.status_code == 200 and "errorlist" in page.content.decode()
    assert started == []


def test_without_public_base_url_it_says_so(operator, started, settings):
    settings.PUBLIC_BASE_URL = ""
    page = operator.post(PAGE, {"caller_id": "+15551234567", "agent_type": "support"}, follow=True)
    assert "PUBLIC_BASE_URL" in page.content.decode()
    assert started == []


def test_a_non_staff_user_gets_the_login_page(client, alice, started):
    client.force_login(alice)
    response = client.post(PAGE, {"caller_id": "+15551234567", "agent_type": "support"})
    assert response.status_code == 302 and "/admin/login/" in response["Location"]
    assert started == []


def test_the_command_needs_the_tools_token(settings):
    settings.ELEVENLABS_TOOLS_TOKEN = ""
    with pytest.raises(CommandError, match="ELEVENLABS_TOOLS_TOKEN"):
        call_command("simulate_inbound_call", "--from", "+15551234567")


def test_the_command_says_when_no_server_answers():
    with pytest.raises(CommandError, match="did not answer"):
        call_command("simulate_inbound_call", "--from", "+15551234567", "--base-url", "http://127.0.0.1:9")
