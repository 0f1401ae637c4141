"""A user without staff rights logs in through the login page and talks to the simulated agent.

Until the login page existed only staff could use the playground: its login was the admin's.
"""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from sessions.models import VoiceSession
from tests.browser.conftest import PASSWORD, watch

pytestmark = [pytest.mark.browser, pytest.mark.server, pytest.mark.django_db(transaction=True)]

CONNECT_TIMEOUT = 20_000


@pytest.fixture
def dana(django_user_model):
    return django_user_model.objects.create_user("dana", password=PASSWORD)


def test_a_non_staff_user_logs_in_talks_to_the_agent_and_logs_out(page: Page, simulated_server, dana):
    seen = watch(page, simulated_server)
    page.goto(f"{simulated_server}/playground/")
    page.wait_for_url(f"{simulated_server}/accounts/login/?next=/playground/")
    expect(page.locator("h1")).to_have_text("Log in")

    # A wrong password: a clear message, and the form again.
    page.fill("#id_username", "dana")
    page.fill("#id_password", "not-her-password")
    page.click("#login-form button[type=submit]")
    expect(page.locator("#login-error")).to_contain_text("Please enter a correct username and password")
    expect(page.locator("#id_username")).to_have_value("dana")

    page.fill("#id_password", PASSWORD)
    page.keyboard.press("Enter")
    page.wait_for_url(f"{simulated_server}/playground/")
    header = page.locator(".site-header nav")
    expect(header).to_contain_text("Signed in as dana")
    expect(header.get_by_role("link", name="Change password")).to_be_visible()
    expect(header.get_by_role("link", name="Admin")).to_have_count(0)

    # A text conversation with the simulated support agent.
    page.check("input[name=agentType][value=support]")
    page.check("input[name=mode][value=text]")
    page.click("#start-button")
    expect(page.locator("#transcript li[data-role=agent]").first).to_contain_text("support", timeout=CONNECT_TIMEOUT)
    expect(page.locator("#message-text")).to_be_enabled()
    page.fill("#message-text", "My order has not arrived")
    page.click("#send-button")
    expect(page.locator("#transcript li[data-role=user]")).to_contain_text("My order has not arrived")
    agent_turns = page.locator("#transcript li[data-role=agent]")
    expect(agent_turns).to_have_count(2, timeout=CONNECT_TIMEOUT)
    expect(agent_turns.nth(1)).to_contain_text("order number")
    page.click("#end-button")
    expect(page.locator("#status")).to_have_attribute("data-session-status", "ended", timeout=CONNECT_TIMEOUT)

    session = VoiceSession.objects.get(created_by=dana)
    assert session.status == "ended"
    assert session.simulation is True
    assert "client.message" in set(session.events.values_list("kind", flat=True))

    # Log out from the header (a POST form); the playground then asks for a login again. The page
    # lands on "logged out", or on the login page when one of the page's polls (the timeline waits
    # for the post-call webhook) answers after the logout and redirects the page there first.
    header.get_by_role("button", name="Log out").click()
    expect(page.locator("#logged-out, #login-form")).to_be_visible()
    assert "sessionid" not in {cookie["name"] for cookie in page.context.cookies()}
    page.goto(f"{simulated_server}/playground/")
    page.wait_for_url(f"{simulated_server}/accounts/login/?next=/playground/")

    assert seen.off_host() == [], "requests left the machine"
    assert seen.csp_violations() == [], "the CSP refused something"
    assert seen.errors() == [], "the console has errors"


def test_a_user_changes_their_password_from_the_playground(page: Page, simulated_server, dana):
    seen = watch(page, simulated_server)
    page.goto(f"{simulated_server}/accounts/login/")
    page.fill("#id_username", "dana")
    page.fill("#id_password", PASSWORD)
    page.click("#login-form button[type=submit]")
    page.wait_for_url(f"{simulated_server}/playground/")

    page.get_by_role("link", name="Change password").click()
    page.fill("#id_old_password", PASSWORD)
    page.fill("#id_new_password1", "dana-new-secret-2468")
    page.fill("#id_new_password2", "dana-new-secret-2468")
    page.get_by_role("button", name="Change my password").click()
    expect(page.locator("#password-changed")).to_be_visible()

    dana.refresh_from_db()
    assert dana.check_password("dana-new-secret-2468")
    assert seen.csp_violations() == [] and seen.errors() == []
