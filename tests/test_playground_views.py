"""The playground page and its partials, through Django's test client."""

from __future__ import annotations

import json
import logging
import re
import uuid
from datetime import timedelta

import pytest
from django.contrib.staticfiles import finders
from django.utils import timezone

from playground.selectors import LiveStatus, session_live_state
from sessions.models import VoiceSession
from sessions.services import lifecycle

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}


# --- Helpers ---------------------------------------------------------------------------------------


def created(user, **fields) -> VoiceSession:
    return lifecycle.session_create(user=user, customer_id=fields.pop("customer_id", "cust-1"), **fields)


def connecting(user, **fields) -> VoiceSession:
    session = created(user, **fields)
    return lifecycle.session_mark_connecting(
        session=session, agent_id="agent_support_test", connection_type="websocket", simulation=session.simulation
    )


def active(user, *, conversation_id: str | None = None, **fields) -> VoiceSession:
    session = connecting(user, **fields)
    return lifecycle.session_activate(session=session, conversation_id=conversation_id or f"conv_{uuid.uuid4().hex}")


def client_event(session: VoiceSession, kind: str, **payload) -> None:
    lifecycle.session_record_event(session=session, kind=f"client.{kind}", payload=payload)


def status_url(session: VoiceSession) -> str:
    return f"/playground/sessions/{session.pk}/status"


def partial_root(html: str) -> str:
    """The id of the first element: a partial carries its own id and is returned whole."""
    match = re.search(r'<\w+[^>]*?\sid="([^"]+)"', html)
    return match.group(1) if match else ""


def script_config(html: str) -> dict:
    match = re.search(r'<script id="playground-config" type="application/json">(.*?)</script>', html)
    return json.loads(match.group(1))


def data_status(html: str) -> str:
    match = re.search(r'id="status"[^>]*data-status="([^"]+)"', html)
    return match.group(1) if match else ""


@pytest.fixture
def alice_client(client, alice):
    client.force_login(alice)
    return client


@pytest.fixture
def staff_client(client, charlie_staff):
    client.force_login(charlie_staff)
    return client


# --- Login ---------------------------------------------------------------------------------------------


def test_it_sends_anonymous_visitors_to_the_login_page(client):
    response = client.get("/playground/")
    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/?next=/playground/"


def test_an_anonymous_htmx_request_redirects_the_whole_page_to_login(client, alice):
    session = created(alice)
    response = client.get(status_url(session), **HTMX)
    assert response.status_code == 200
    assert response["HX-Redirect"] == "/accounts/login/?next=/playground/"
    assert b'id="status"' not in response.content


@pytest.mark.parametrize("path", ["/playground/recent", "/playground/logs"])
def test_anonymous_partials_redirect_to_login(client, path):
    response = client.get(path)
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_the_page_only_answers_reads(alice_client):
    assert alice_client.post("/playground/").status_code == 405


# --- The page -----------------------------------------------------------------------------------------


def test_the_page_has_the_controls_with_labels(alice_client):
    html = alice_client.get("/playground/").content.decode()
    for name, value in [("agentType", "support"), ("agentType", "sales"), ("mode", "voice"), ("mode", "text")]:
        assert f'name="{name}" value="{value}"' in html
    for field_id in ("customer-id", "locale", "message-text"):
        assert f'<label for="{field_id}">' in html
        assert f'id="{field_id}"' in html
    assert 'id="start-button"' in html
    assert re.search(r'<button type="button" id="end-button" disabled>End</button>', html)
    assert 'value="playground-alice"' in html
    assert "<html lang=" in html
    assert 'name="viewport"' in html


def test_the_page_runs_under_the_strict_csp_with_nonces(alice_client):
    response = alice_client.get("/playground/")
    html = response.content.decode()
    policy = response["Content-Security-Policy"]
    nonce = re.search(r"'nonce-([^']+)'", policy).group(1)
    assert "'unsafe-inline'" not in policy and "'unsafe-eval'" not in policy
    # Every <script> that runs carries this response's nonce; the config is data, not code.
    for tag in re.findall(r"<script\b[^>]*>", html):
        if 'type="application/json"' in tag:
            continue
        assert f'nonce="{nonce}"' in tag, tag
    assert f'<meta name="htmx-config" content=\'{{"inlineStyleNonce":"{nonce}"}}\'>' in html
    assert "hx-on" not in html
    assert "style=" not in html
    assert "<style" not in html
    assert "http://" not in html and "https://" not in html  # nothing from another origin, no CDN


def test_htmx_comes_from_django_htmx_and_csrf_sits_once_on_the_body(alice_client):
    response = alice_client.get("/playground/")
    html = response.content.decode()
    assert '<script src="/static/django_htmx/htmx-2.min.js" defer' in html
    body = re.search(r"<body hx-headers='([^']+)'>", html)
    assert body, "the CSRF header must be on <body>"
    token = json.loads(body.group(1))["X-CSRFToken"]
    assert token and html.count("hx-headers") == 1


def test_the_import_map_points_at_the_npm_client_served_as_static_files(alice_client):
    html = alice_client.get("/playground/").content.decode()
    import_map = json.loads(re.search(r'<script type="importmap"[^>]*>(.*?)</script>', html, re.S).group(1))
    imports = import_map["imports"]
    assert imports["@elevenlabs/client"] == "/static/vendor/elevenlabs-client/platform/web/index.js"
    assert imports["livekit-client"] == "/static/vendor/livekit-client/livekit-client.esm.mjs"
    config = script_config(html)
    assert config["workletPaths"] == {
        "rawAudioProcessor": "/static/vendor/elevenlabs-client-worklets/rawAudioProcessor.js",
        "audioConcatProcessor": "/static/vendor/elevenlabs-client-worklets/audioConcatProcessor.js",
    }
    # `npm ci` installed them and NpmModulesFinder exposes them under these names.
    for url in [*imports.values(), *config["workletPaths"].values()]:
        assert finders.find(url.removeprefix("/static/")), f"{url} is not served; was `npm ci` run?"
    assert "not installed" not in html


def test_only_the_clients_javascript_is_served_from_node_modules():
    for path in [
        "vendor/livekit-client/livekit-client.esm.mjs.map",
        "vendor/livekit-client/livekit-client.umd.js.map",
        "vendor/elevenlabs-client/index.d.ts",
        "vendor/elevenlabs-client/../package.json",
    ]:
        assert not finders.find(path), path
    listed = [(path, storage) for finder in finders.get_finders() for path, storage in finder.list([])]
    vendor = [path for path, storage in listed if (getattr(storage, "prefix", "") or "").startswith("vendor/")]
    assert vendor and all(path.endswith((".js", ".mjs")) for path in vendor)


def test_the_script_config_names_the_api_the_page_talks_to(alice_client):
    html = alice_client.get("/playground/").content.decode()
    config = script_config(html)
    zero = config["placeholder"]
    assert config["startUrl"] == "/api/voice/sessions"
    assert config["eventsUrl"] == f"/voice/sessions/{zero}/events"
    assert config["endUrl"] == f"/voice/sessions/{zero}/end"
    assert config["logsUrl"] == "/api/logs"
    assert config["statusUrl"] == f"/playground/sessions/{zero}/status"


def test_a_session_in_the_query_string_is_shown(alice, alice_client):
    session = active(alice)
    client_event(session, "mode", mode="speaking")
    html = alice_client.get(f"/playground/?session={session.pk}").content.decode()
    assert data_status(html) == "speaking"
    assert str(session.pk) in html


@pytest.mark.parametrize("value", ["not-a-uuid", str(uuid.uuid4())])
def test_an_unknown_session_in_the_query_string_is_not_found(alice_client, value):
    assert alice_client.get(f"/playground/?session={value}").status_code == 404


def test_another_users_session_is_not_found(bob, alice_client):
    session = created(bob)
    assert alice_client.get(f"/playground/?session={session.pk}").status_code == 404
    assert alice_client.get(status_url(session), **HTMX).status_code == 404
    assert alice_client.get(f"/playground/sessions/{session.pk}/timeline", **HTMX).status_code == 404


def test_staff_may_look_at_anyones_session(bob, staff_client):
    session = created(bob)
    response = staff_client.get(status_url(session), **HTMX)
    assert response.status_code == 200
    assert f"/admin/voice_sessions/voicesession/{session.pk}/change/" in response.content.decode()


# --- Partials render alone --------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["status", "transcript", "timeline"])
def test_a_session_partial_renders_alone_for_htmx(alice, alice_client, name):
    session = active(alice)
    response = alice_client.get(f"/playground/sessions/{session.pk}/{name}", **HTMX)
    html = response.content.decode()
    assert response.status_code == 200
    assert partial_root(html) == name
    assert "<html" not in html and "<body" not in html and "importmap" not in html


@pytest.mark.parametrize("name", ["status", "transcript", "timeline"])
def test_without_htmx_a_partial_url_is_the_whole_page_showing_that_session(alice, alice_client, name):
    session = active(alice)
    html = alice_client.get(f"/playground/sessions/{session.pk}/{name}").content.decode()
    assert "<html" in html and 'id="start-form"' in html
    assert data_status(html) == "connected"


def test_the_recent_sessions_partial_renders_alone(alice, alice_client):
    active(alice, customer_id="cust-recent")
    response = alice_client.get("/playground/recent", **HTMX)
    html = response.content.decode()
    assert partial_root(html) == "recent"
    assert "<html" not in html
    assert "cust-recent" in html


def test_the_transcript_lists_the_messages_in_order_escaped(alice, alice_client):
    session = active(alice)
    client_event(session, "message", role="agent", message="Hello, how can I help?")
    client_event(session, "message", role="user", message="<script>alert(1)</script>")
    client_event(session, "mode", mode="listening")
    html = alice_client.get(f"/playground/sessions/{session.pk}/transcript", **HTMX).content.decode()
    roles = re.findall(r'data-role="(\w+)"', html)
    assert roles == ["agent", "user"]
    assert html.index("Hello, how can I help?") < html.index("&lt;script&gt;alert(1)&lt;/script&gt;")
    assert "<script>" not in html


def test_the_timeline_shows_every_row_with_secrets_redacted(alice, alice_client):
    session = active(alice)
    client_event(session, "error", message="wss://x/convai?agent_id=a&conversation_signature=SECRETSIG123")
    html = alice_client.get(f"/playground/sessions/{session.pk}/timeline", **HTMX).content.decode()
    kinds = re.findall(r'data-kind="([^"]+)"', html)
    assert kinds == ["created", "connecting", "active", "client.error"]
    assert "SECRETSIG123" not in html
    assert "conversation_signature=[REDACTED]" in html


# --- The live status ------------------------------------------------------------------------------------


def _failed(user):
    session = connecting(user)
    return lifecycle.session_fail(
        session=session, code="invalid_api_key", message="Invalid API key", upstream_status=401
    )


def _ended(user):
    return lifecycle.session_end(session=active(user), reason="user")


def _with_modes(*modes):
    def build(user):
        session = active(user)
        for mode in modes:
            client_event(session, "mode", mode=mode)
        return session

    return build


@pytest.mark.parametrize(
    ("build", "status", "label"),
    [
        (created, "idle", "idle"),
        (connecting, "connecting", "connecting"),
        (active, "connected", "connected"),
        (_with_modes("speaking"), "speaking", "speaking"),
        (_with_modes("listening"), "listening", "listening"),
        (_with_modes("speaking", "listening"), "listening", "listening"),
        (_with_modes("listening", "speaking"), "speaking", "speaking"),
        (_failed, "error", "error (failed)"),
        (_ended, "idle", "idle (ended)"),
    ],
)
def test_the_status_is_derived_from_the_session_and_its_latest_mode(alice, alice_client, build, status, label):
    session = build(alice)
    state = session_live_state(session=session)
    assert state.status == LiveStatus(status)
    assert state.label == label
    html = alice_client.get(status_url(session), **HTMX).content.decode()
    assert data_status(html) == status
    assert f'<span class="badge badge-{status}">{label}</span>' in html


def test_no_session_is_idle(alice_client):
    assert session_live_state(session=None).status == LiveStatus.IDLE
    assert data_status(alice_client.get("/playground/").content.decode()) == "idle"


def test_a_mode_event_with_an_unknown_mode_is_ignored(alice):
    session = active(alice)
    client_event(session, "mode", mode="singing")
    assert session_live_state(session=session).status == LiveStatus.CONNECTED


def test_the_error_panel_shows_the_upstreams_own_message(alice, alice_client):
    session = _failed(alice)
    html = alice_client.get(status_url(session), **HTMX).content.decode()
    assert 'id="error-panel"' in html
    assert "Invalid API key" in html
    assert "ElevenLabs answered HTTP 401" in html
    assert "invalid_api_key" in html


def test_a_client_error_shows_while_the_session_stays_open(alice, alice_client):
    session = active(alice)
    client_event(session, "error", message="The agent could not hear you")
    html = alice_client.get(status_url(session), **HTMX).content.decode()
    assert data_status(html) == "connected"
    assert "Client error: The agent could not hear you" in html


def test_an_open_session_has_no_error_panel(alice, alice_client):
    html = alice_client.get(status_url(active(alice)), **HTMX).content.decode()
    assert 'id="error-panel"' not in html


# --- Polling -------------------------------------------------------------------------------------------


def test_the_status_of_an_open_session_keeps_polling(alice, alice_client):
    session = active(alice)
    response = alice_client.get(status_url(session), **HTMX)
    assert response.status_code == 200
    assert 'hx-trigger="every 2s"' in response.content.decode()


@pytest.mark.parametrize("build", [_failed, _ended])
def test_the_status_of_a_finished_session_stops_polling_with_286(alice, alice_client, build):
    session = build(alice)
    response = alice_client.get(status_url(session), **HTMX)
    assert response.status_code == 286
    html = response.content.decode()
    assert partial_root(html) == "status"  # the final state is still swapped in
    assert "hx-trigger" not in html


def test_an_unchanged_status_answers_204_so_nothing_is_swapped(alice, alice_client):
    session = active(alice)
    html = alice_client.get(status_url(session), **HTMX).content.decode()
    version = json.loads(re.search(r"hx-vals='([^']+)'", html).group(1))["v"]
    assert alice_client.get(status_url(session), {"v": version}, **HTMX).status_code == 204
    client_event(session, "mode", mode="speaking")
    changed = alice_client.get(status_url(session), {"v": version}, **HTMX)
    assert changed.status_code == 200
    assert data_status(changed.content.decode()) == "speaking"


def test_recent_sessions_poll_while_one_is_open_and_stop_with_286_after(alice, alice_client):
    session = active(alice)
    response = alice_client.get("/playground/recent", **HTMX)
    assert response.status_code == 200
    assert 'hx-trigger="refresh from:body, every 5s"' in response.content.decode()

    lifecycle.session_end(session=session, reason="user")
    response = alice_client.get("/playground/recent", **HTMX)
    assert response.status_code == 286
    html = response.content.decode()
    assert 'hx-trigger="refresh from:body"' in html  # a new start still refreshes it
    assert "every" not in html
    assert "ended" in html


def test_recent_sessions_with_none_open_stop_polling_at_once(alice_client):
    response = alice_client.get("/playground/recent", **HTMX)
    assert response.status_code == 286
    assert "No sessions yet." in response.content.decode()


def test_recent_sessions_are_the_users_own_newest_first(alice, bob, alice_client):
    created(alice, customer_id="alice-old")
    created(bob, customer_id="bob-session")
    created(alice, customer_id="alice-new")
    html = alice_client.get("/playground/recent", **HTMX).content.decode()
    assert "bob-session" not in html
    assert html.index("alice-new") < html.index("alice-old")


def test_another_users_open_session_does_not_keep_my_list_polling(alice, bob, alice_client):
    active(bob)
    assert alice_client.get("/playground/recent", **HTMX).status_code == 286


def test_the_timeline_polls_until_the_post_call_data_is_in(alice, alice_client):
    session = _ended(alice)
    url = f"/playground/sessions/{session.pk}/timeline"
    response = alice_client.get(url, **HTMX)
    assert response.status_code == 200
    assert "every 3s" in response.content.decode()

    lifecycle.session_store_post_call(
        session=session,
        conversation={"transcript": [{"role": "agent", "message": "Hi"}], "analysis": {"call_successful": "success"}},
        source="webhook",
    )
    response = alice_client.get(url, **HTMX)
    assert response.status_code == 286
    assert "Post-call data arrived: 1 turn, call success." in response.content.decode()


def test_the_timeline_gives_up_waiting_for_post_call_data(alice, alice_client):
    session = _ended(alice)
    VoiceSession.objects.filter(pk=session.pk).update(ended_at=timezone.now() - timedelta(minutes=5))
    assert alice_client.get(f"/playground/sessions/{session.pk}/timeline", **HTMX).status_code == 286


def test_the_timeline_of_a_failed_session_stops_polling(alice, alice_client):
    assert alice_client.get(f"/playground/sessions/{_failed(alice).pk}/timeline", **HTMX).status_code == 286


# --- Staff-only log tail ----------------------------------------------------------------------------


def test_the_log_tail_is_for_staff_only(alice_client):
    assert alice_client.get("/playground/logs", **HTMX).status_code == 403
    assert alice_client.get("/playground/logs").status_code == 403
    assert 'id="logs"' not in alice_client.get("/playground/").content.decode()


def test_staff_see_the_last_log_lines(staff_client):
    marker = f"playground-log-marker-{uuid.uuid4().hex}"
    logging.getLogger("voiceagent.tests").warning(marker)
    response = staff_client.get("/playground/logs", **HTMX)
    html = response.content.decode()
    assert partial_root(html) == "logs"
    assert marker in html
    assert response.status_code == 286  # nothing of theirs is open: no need to poll
    assert 'id="logs"' in staff_client.get("/playground/").content.decode()


def test_the_log_tail_polls_while_the_staff_users_session_is_open(charlie_staff, staff_client):
    active(charlie_staff)
    response = staff_client.get("/playground/logs", **HTMX)
    assert response.status_code == 200
    assert "every 5s" in response.content.decode()


# --- Simulation is said plainly ---------------------------------------------------------------------


def test_simulation_mode_shows_a_banner(alice_client, simulation_mode):
    html = alice_client.get("/playground/").content.decode()
    assert 'id="simulation-banner"' in html
    assert "Simulated agent." in html


def test_real_mode_shows_no_simulation_banner(alice_client, settings):
    html = alice_client.get("/playground/").content.decode()
    assert 'id="simulation-banner"' not in html
    assert "simulated" not in html.lower()


def test_a_simulated_session_says_so_even_in_real_mode(alice, alice_client, settings):
    session = active(alice, simulation=True)
    html = alice_client.get(status_url(session), **HTMX).content.decode()
    assert "This session runs against the simulated agent" in html
    recent = alice_client.get("/playground/recent", **HTMX).content.decode()
    assert '<span class="tag">simulated</span>' in recent


def test_a_real_session_does_not_claim_to_be_simulated(alice, alice_client, settings):
    html = alice_client.get(status_url(active(alice)), **HTMX).content.decode()
    assert "simulated" not in html.lower()
