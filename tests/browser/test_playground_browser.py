"""The playground in a real browser: the official ElevenLabs client against the simulated agent.

Each test drives Debian's Chromium through the page as a person would (the login page,
the form, the keyboard) and checks what the page shows, what the server
recorded, that nothing left 127.0.0.1 and that the strict CSP refused nothing.
"""

from __future__ import annotations

import re
import time

import pytest
from playwright.sync_api import Page, expect

from devtools.servers import asgi_server
from elevenlabs.simulator.models import SimulatedConversation
from sessions.models import VoiceSession
from sessions.selectors import session_timeline
from sessions.services import lifecycle
from tests.browser.conftest import PASSWORD, RECORD_STATUSES, UPSTREAM_API_KEY, log_in, server_env, watch

pytestmark = [pytest.mark.browser, pytest.mark.server, pytest.mark.django_db(transaction=True)]

# The simulated agent says a greeting, then an answer per message, then hangs up or waits.
CONNECT_TIMEOUT = 20_000
SPEECH_TIMEOUT = 40_000  # voice mode: the greeting plays for as long as its words would take


@pytest.fixture
def player(django_user_model):
    # A superuser: the same person checks the admin afterwards.
    return django_user_model.objects.create_superuser("player", "player@example.com", PASSWORD)


def choose(page: Page, *, agent: str, mode: str) -> None:
    page.check(f"input[name=agentType][value={agent}]")
    page.check(f"input[name=mode][value={mode}]")


def in_order(seen: list[str], expected: list[str]) -> bool:
    """Whether ``expected`` occurs in ``seen`` in this order (other states may come between)."""
    remaining = iter(seen)
    return all(state in remaining for state in expected)


def latest_session(user) -> VoiceSession:
    return VoiceSession.objects.filter(created_by=user).latest("created_at")


def assert_clean(seen, *, expected_errors: tuple[str, ...] = ()) -> None:
    assert seen.off_host() == [], "requests left the machine"
    assert seen.csp_violations() == [], "the CSP refused something"
    errors = [text for text in seen.errors() if not any(expected in text for expected in expected_errors)]
    assert errors == [], "the console has errors"


def test_text_conversation_with_the_simulated_support_agent(page: Page, simulated_server, player):
    log_in(page, simulated_server, player)
    seen = watch(page, simulated_server)
    page.reload()  # watched from the first request of the page
    expect(page.locator("#simulation-banner")).to_contain_text("Simulated agent")
    scripts_before_start = seen.scripts()
    assert not [url for url in scripts_before_start if "/vendor/" in url], "the SDK must load only on Start"

    choose(page, agent="support", mode="text")
    page.evaluate(RECORD_STATUSES)
    page.focus("#customer-id")
    page.keyboard.press("Enter")  # the form submits from the keyboard

    greeting = page.locator("#transcript li[data-role=agent]").first
    expect(greeting).to_contain_text("support", timeout=CONNECT_TIMEOUT)
    expect(page.locator("#status")).to_have_attribute("data-status", "listening")
    statuses = page.evaluate("window.seenStatuses")
    assert in_order(statuses, ["idle", "connecting", "connected", "listening"]), statuses
    assert "speaking" not in statuses  # text mode: the SDK only ever says "listening"
    expect(page.locator("#status")).to_contain_text("This session runs against the simulated agent")
    assert any("/static/vendor/elevenlabs-client/platform/web/index.js" in url for url in seen.scripts())
    assert any("/simulator/v1/convai/conversation" in url for url in seen.websockets)

    # Focus moved to the message box once connected: type and press Enter.
    expect(page.locator("#message-text")).to_be_focused()
    page.keyboard.type("My order has not arrived")
    page.keyboard.press("Enter")
    expect(page.locator("#transcript li[data-role=user]")).to_contain_text("My order has not arrived")
    expect(page.locator("#transcript li[data-role=agent]")).to_have_count(2, timeout=CONNECT_TIMEOUT)
    expect(page.locator("#transcript li[data-role=agent]").nth(1)).to_contain_text("order number")

    page.click("#end-button")
    expect(page.locator("#status")).to_have_attribute("data-session-status", "ended", timeout=CONNECT_TIMEOUT)
    expect(page.locator("#status .badge")).to_have_text("idle (ended)")
    expect(page.locator("#start-button")).to_be_enabled()
    expect(page.locator("#message-text")).to_be_disabled()

    session = latest_session(player)
    assert session.status == "ended"
    assert session.end_reason == "user"  # the user's End is recorded before the agent's webhook can end it
    simulated = SimulatedConversation.objects.get(pk=session.conversation_id)
    assert simulated.client_data.get("user_id") == session.customer_id  # the SDK was told who the user is
    assert session.simulation is True
    assert session.agent_type == "support"
    kinds = [event.kind for event in session_timeline(session)]  # the creation first, read from the session
    assert in_order(kinds, ["created", "connecting", "active", "client.mode", "client.message", "ended"]), kinds
    expect(page.locator("#timeline li[data-kind=active]")).to_have_count(1)
    expect(page.locator(f"#recent tr[data-session-id='{session.pk}']")).to_contain_text("ended")

    # The simulated agent's post-call webhook brings the transcript; the admin shows it.
    admin_url = f"{simulated_server}/admin/voice_sessions/voicesession/{session.pk}/change/"
    transcript = page.locator(".field-transcript_readable")
    deadline = time.monotonic() + 20
    while True:
        page.goto(admin_url)
        if "My order has not arrived" in transcript.inner_text():
            break
        assert time.monotonic() < deadline, "the admin never showed the post-call transcript"
        page.wait_for_timeout(500)
    assert "support" in transcript.inner_text()
    assert_clean(seen)


def test_the_sales_agent_answers_as_sales(page: Page, simulated_server, player):
    log_in(page, simulated_server, player)
    seen = watch(page, simulated_server)
    choose(page, agent="sales", mode="text")
    page.click("#start-button")
    expect(page.locator("#transcript li[data-role=agent]").first).to_contain_text("sales", timeout=CONNECT_TIMEOUT)
    expect(page.locator("#status")).to_contain_text("Sales agent")
    page.click("#end-button")
    expect(page.locator("#status")).to_have_attribute("data-session-status", "ended", timeout=CONNECT_TIMEOUT)
    assert latest_session(player).agent_type == "sales"
    assert_clean(seen)


def test_voice_mode_with_the_fake_microphone(page: Page, simulated_server, player):
    log_in(page, simulated_server, player)
    seen = watch(page, simulated_server)
    choose(page, agent="support", mode="voice")
    page.evaluate(RECORD_STATUSES)
    page.click("#start-button")

    status = page.locator("#status")
    expect(status).to_have_attribute("data-status", "speaking", timeout=CONNECT_TIMEOUT)
    expect(status).to_have_attribute("data-status", "listening", timeout=SPEECH_TIMEOUT)
    statuses = page.evaluate("window.seenStatuses")
    assert in_order(statuses, ["connecting", "connected", "speaking", "listening"]), statuses
    expect(page.locator("#transcript li[data-role=agent]").first).to_contain_text("support")

    # Audio played (speaking, then listening when it drained) and the microphone ran, so both
    # audio worklets loaded; the CSP refuses the SDK's default blob:/data: worklet URLs, and
    # assert_clean finds no refusal: they came from our static files (workletPaths). Worklet
    # fetches are invisible to Playwright's request events, so this is checked by its effect.
    page.click("#end-button")
    expect(status).to_have_attribute("data-session-status", "ended", timeout=CONNECT_TIMEOUT)
    session = latest_session(player)
    assert session.connection_type == "websocket"
    modes = [e.payload.get("mode") for e in session.events.filter(kind="client.mode").order_by("created_at", "id")]
    assert in_order(modes, ["speaking", "listening"]), modes
    assert_clean(seen)


def test_an_upstream_that_refuses_the_api_key_shows_its_message(page: Page, invalid_key_server, player):
    base_url, upstream = invalid_key_server
    log_in(page, base_url, player)
    seen = watch(page, base_url)
    expect(page.locator("#simulation-banner")).to_have_count(0)
    choose(page, agent="support", mode="voice")
    with page.expect_response(f"{base_url}/api/voice/sessions") as start:
        page.click("#start-button")
    assert start.value.status == 502  # a bad gateway: ElevenLabs refused, not us
    assert start.value.json()["error"]["upstream_status"] == 401

    status = page.locator("#status")
    expect(status).to_have_attribute("data-status", "error", timeout=CONNECT_TIMEOUT)
    panel = page.locator("#error-panel")
    expect(panel).to_contain_text("Invalid API key")
    expect(panel).to_contain_text("ElevenLabs answered HTTP 401")
    expect(panel).to_contain_text("invalid_api_key")
    expect(page.locator("#start-button")).to_be_enabled()
    expect(page.locator("#end-button")).to_be_disabled()

    session = latest_session(player)
    assert session.status == "failed"
    assert session.upstream_status == 401
    assert session.failure_message == "Invalid API key"
    assert session.simulation is False
    # Our server asked the (fake) ElevenLabs with the key; the browser never saw it, nor loaded the SDK.
    assert upstream.requests and upstream.requests[0]["api_key"] == UPSTREAM_API_KEY
    assert re.match(r"^/v1/convai/conversation/(token|get-signed-url)\?", upstream.requests[0]["path"])
    assert not [url for url in seen.scripts() if "/vendor/" in url]
    assert UPSTREAM_API_KEY not in page.content()
    # Chromium logs the 502 of the start request itself as a console error; nothing else may show.
    assert_clean(seen, expected_errors=("status of 502",))


def test_the_page_fits_a_phone_screen(page: Page, simulated_server, player):
    page.set_viewport_size({"width": 360, "height": 740})
    log_in(page, simulated_server, player)
    seen = watch(page, simulated_server)
    page.reload()
    overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 0, f"the page scrolls sideways by {overflow}px"
    start = page.locator("#start-button")
    box = start.bounding_box()
    assert box and box["height"] >= 36, "buttons must be big enough to tap"
    # Tab order reaches the controls, with a visible focus ring.
    page.focus("#customer-id")
    page.keyboard.press("Tab")
    expect(page.locator("#locale")).to_be_focused()
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline != "none"
    assert_clean(seen)


@pytest.fixture(scope="module")
def remembering_server(django_db_setup):
    """uvicorn in simulation mode with CONVERSATION_MEMORY on."""
    with asgi_server(env=server_env(ELEVENLABS_API_KEY="", CONVERSATION_MEMORY="true"), workers=1) as base_url:
        yield base_url


def test_the_agent_remembers_the_previous_call_through_the_page(page: Page, remembering_server, player):
    previous = lifecycle.session_create(customer_id=f"playground-{player.username}", user=player)
    lifecycle.session_end(session=previous)
    VoiceSession.objects.filter(pk=previous.pk).update(transcript_summary="The router was reset after the update.")
    log_in(page, remembering_server, player)
    seen = watch(page, remembering_server)
    choose(page, agent="support", mode="text")
    page.click("#start-button")

    # The page passed the start response's dynamic variables to the SDK, which sent them to the agent.
    greeting = page.locator("#transcript li[data-role=agent]").first
    expect(greeting).to_contain_text("Welcome back! I can see you have called us 1 time(s) before.", timeout=20_000)
    expect(greeting).to_contain_text("Last time: The router was reset after the update.")
    expect(page.locator("#timeline li[data-kind=memory]")).to_contain_text("previous_call_count: 1")
    page.click("#end-button")
    expect(page.locator("#status")).to_have_attribute("data-session-status", "ended", timeout=20_000)
    # The simulated agent keeps the client's initiation data once the conversation is over.
    session = latest_session(player)
    deadline = time.monotonic() + 20
    while (simulated := SimulatedConversation.objects.get(pk=session.conversation_id)).status != "done":
        assert time.monotonic() < deadline, "the simulated conversation never finished"
        time.sleep(0.2)
    assert simulated.client_data["dynamic_variables"] == {
        "previous_call_count": 1,
        "previous_call_summary": "The router was reset after the update.",
    }
    assert_clean(seen)
