"""DRF's browsable API in a real browser, under the policy its HTML pages get (voiceagent/api.py).

Its pages run inline scripts and styles (DRF's templates), which the site-wide policy refuses:
the page must load, its scripts must run (the tabs and the AJAX form are JavaScript), and
the browser must report no Content-Security-Policy violation.
"""

from __future__ import annotations

import json

import pytest
from playwright.sync_api import Page, expect

from sessions.models import VoiceSession
from tests.browser.conftest import PASSWORD, log_in, watch

pytestmark = [pytest.mark.browser, pytest.mark.server, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def erin(django_user_model):
    return django_user_model.objects.create_user("erin", password=PASSWORD)


def test_a_logged_in_user_creates_a_session_through_the_browsable_api_without_csp_violations(
    page: Page, simulated_server, erin
):
    log_in(page, simulated_server, erin)
    seen = watch(page, simulated_server)

    response = page.goto(f"{simulated_server}/voice/sessions")
    assert response is not None and response.status == 200
    expect(page.locator(".page-header h1")).to_be_visible()
    expect(page.locator(".response-info")).to_contain_text('"count": 0')

    # The "Raw data" tab is Bootstrap's JavaScript, and its POST goes through DRF's ajax-form.js.
    page.click("a[href='#post-generic-content-form']")
    content = page.locator("#post-generic-content-form textarea[name=_content]")
    expect(content).to_be_visible()
    content.fill(json.dumps({"customer_id": "cust-browsable"}))
    page.click("#post-generic-content-form .form-actions button")

    expect(page.locator(".response-info")).to_contain_text("HTTP 201 Created")
    assert VoiceSession.objects.filter(created_by=erin, customer_id="cust-browsable").count() == 1
    assert seen.csp_violations() == [], "the CSP refused something"
    assert seen.errors() == [], "the console has errors"
    assert seen.off_host() == [], "requests left the machine"
