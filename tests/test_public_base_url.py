"""Our own base URL, never the request's: a caller cannot choose where we send a signed webhook.

The attack this stops: a logged-in user starts a simulated session with `Host: 127.0.0.1:8399`
(ALLOWED_HOSTS does not check ports), finishes the call, and our simulator POSTs the post-call
webhook, signed, to the port the caller chose.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
from django.test import RequestFactory
from rest_framework.authtoken.models import Token

from elevenlabs.models import WebhookDelivery
from elevenlabs.simulator.models import SimulatedConversation
from elevenlabs.webhooks import SIGNATURE_HEADER, simulator_signing_secret, verify_signature
from sessions.models import Status, VoiceSession
from tests.server import live_asgi_server  # noqa: F401
from voiceagent.public_url import RequestOriginMiddleware, public_base_url, websocket_base

START = "/api/voice/sessions"


def seen_while_serving(request) -> str:
    """What public_base_url() says inside a view served through RequestOriginMiddleware."""
    seen = []
    RequestOriginMiddleware(lambda r: seen.append(public_base_url()))(request)
    return seen[0]


def test_the_setting_wins_over_the_request(settings):
    settings.PUBLIC_BASE_URL = "https://voice.example.com"
    request = RequestFactory().get("/", HTTP_HOST="127.0.0.1:8399")
    for debug in (False, True):
        settings.DEBUG = debug
        assert seen_while_serving(request) == "https://voice.example.com"


def test_the_request_stands_in_only_with_debug_on(settings):
    settings.PUBLIC_BASE_URL = ""
    request = RequestFactory().get("/", HTTP_HOST="localhost:8000")
    settings.DEBUG = True
    assert seen_while_serving(request) == "http://localhost:8000"
    assert public_base_url() == ""  # outside a request there is nothing to stand in
    settings.DEBUG = False
    assert seen_while_serving(request) == ""


def test_the_middleware_is_installed_only_with_debug_on():
    from voiceagent import settings as project_settings

    assert ("voiceagent.public_url.RequestOriginMiddleware" in project_settings.MIDDLEWARE) is project_settings.DEBUG


def test_websocket_base_follows_the_scheme():
    assert websocket_base("https://voice.example.com") == "wss://voice.example.com"
    assert websocket_base("http://127.0.0.1:8000") == "ws://127.0.0.1:8000"


@pytest.mark.django_db
def test_a_simulated_start_without_a_public_base_url_is_503_naming_it_and_stores_nothing(
    alice_api, settings, simulation_mode
):
    settings.PUBLIC_BASE_URL = ""
    response = alice_api.post(START, {"agentType": "support", "customerId": "c", "textOnly": True}, format="json")

    assert response.status_code == 503
    error = response.json()["error"]
    assert (error["code"], error["variable"]) == ("public_base_url_missing", "PUBLIC_BASE_URL")
    assert not VoiceSession.objects.exists()


@pytest.mark.django_db
def test_the_simulated_url_and_webhook_target_come_from_the_setting_not_the_host(alice_api, settings):
    settings.PUBLIC_BASE_URL = "https://voice.example.com"
    response = alice_api.post(
        START,
        {"agentType": "support", "customerId": "c", "textOnly": True, "simulation": True},
        format="json",
        HTTP_HOST="127.0.0.1:8399",
    )

    assert response.status_code == 201, response.content
    signed_url = response.json()["elevenlabs_conversation"]["signed_url"]
    assert signed_url.startswith("wss://voice.example.com/simulator/")
    conversation_id = response.json()["elevenlabs_conversation"]["conversation_id"]
    assert SimulatedConversation.objects.get(pk=conversation_id).http_base == "https://voice.example.com"


class _Catcher(BaseHTTPRequestHandler):
    received: list[str] = []

    def do_POST(self):  # noqa: N802 - the http.server API
        self.received.append(self.path)
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.mark.server
@pytest.mark.django_db(transaction=True)
def test_a_host_header_never_redirects_the_simulators_webhook(live_asgi_server, alice):  # noqa: F811
    from websockets.sync.client import connect

    # The caller's listener: it must receive nothing.
    catcher = ThreadingHTTPServer(("127.0.0.1", 0), _Catcher)
    threading.Thread(target=catcher.serve_forever, daemon=True).start()
    attacker_port = catcher.server_address[1]
    try:
        token = Token.objects.create(user=alice).key
        response = requests.post(
            f"{live_asgi_server}{START}",
            json={"agentType": "support", "customerId": "cust-host", "textOnly": True, "simulation": True},
            headers={"Authorization": f"Token {token}", "Host": f"127.0.0.1:{attacker_port}"},
            timeout=10,
        )
        assert response.status_code == 201, response.text
        conversation = response.json()["elevenlabs_conversation"]
        assert conversation["signed_url"].startswith(live_asgi_server.replace("http://", "ws://"))

        with connect(conversation["signed_url"], open_timeout=10) as socket:
            socket.recv(timeout=10)
            socket.send(json.dumps({"type": "conversation_initiation_client_data"}))
            socket.recv(timeout=10)
            socket.send(json.dumps({"type": "user_message", "text": "bye"}))
            socket.recv(timeout=10)
            socket.recv(timeout=10)

        session_id = response.json()["backend_session"]["session_id"]
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not VoiceSession.objects.get(pk=session_id).post_call_received_at:
            time.sleep(0.1)
        session = VoiceSession.objects.get(pk=session_id)
        assert session.status == Status.ENDED and session.transcript
        assert _Catcher.received == []
        delivery = WebhookDelivery.objects.get(conversation_id=conversation["conversation_id"])
        assert delivery.session_id == session.pk
    finally:
        catcher.shutdown()
        catcher.server_close()


@pytest.mark.django_db
def test_simulated_deliveries_are_never_signed_with_the_real_secret(alice_api, settings):
    import responses

    from elevenlabs.simulator.conversations import simulator_finish_conversation, simulator_send_post_call_webhook

    settings.ELEVENLABS_WEBHOOK_SECRET = "wsec_real_secret"
    body = alice_api.post(
        START, {"agentType": "support", "customerId": "c", "textOnly": True, "simulation": True}, format="json"
    ).json()
    conversation_id = body["elevenlabs_conversation"]["conversation_id"]
    simulator_finish_conversation(
        conversation_id=conversation_id, transcript=[], termination_reason="end", client_data={}, text_only=True
    )
    with responses.RequestsMock() as rsps:
        rsps.add(responses.POST, "http://testserver/elevenlabs/webhook", json={"status": "processed"})
        assert simulator_send_post_call_webhook(conversation_id=conversation_id)
        sent = rsps.calls[0].request

    header = sent.headers[SIGNATURE_HEADER]
    verify_signature(header=header, secret=simulator_signing_secret(), body=sent.body)
    with pytest.raises(Exception, match="mismatch"):
        verify_signature(header=header, secret="wsec_real_secret", body=sent.body)
