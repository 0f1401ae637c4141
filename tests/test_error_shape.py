"""Every JSON error from every endpoint has the one shape: ``{"error": {"code", "message", …}}``.

The endpoints are read from the URLconf: each one that answers JSON must have cases here
(a new endpoint without any fails :func:`test_every_json_endpoint_has_error_cases`). Each
case provokes a refusal the way a client would (anonymous, someone else's session, a bad
body, a conflict, a body over its cap, a throttle, an unavailable database, ElevenLabs
failing) and checks the status it has always had and the body's shape, exactly.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
import responses
from django.db import OperationalError
from django.db.backends.utils import CursorWrapper
from django.test import Client, RequestFactory
from django.urls import URLResolver, get_resolver
from rest_framework import serializers
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from elevenlabs import views as elevenlabs_views
from elevenlabs.webhooks import sign, simulator_signing_secret
from sessions.models import VoiceSession
from tests.elevenlabs_fakes import SIGNED_URL_PATH, add_error, add_signed_url
from voiceagent import views as project_views
from voiceagent.api import SUMMARY_FIELDS, validation_error_body

pytestmark = pytest.mark.django_db

# Routes (as written in the URLconf) whose answers are pages, not JSON: their errors are HTML.
HTML_ROUTES = ("admin/", "accounts/", "api-auth/", "playground/", "favicon.ico")
WEBHOOK = "/elevenlabs/webhook"


def routes(patterns=None, prefix: str = "") -> set[str]:
    """Every route of the URLconf, includes expanded: ``voice/sessions/<uuid:session_id>/end``."""
    found: set[str] = set()
    for pattern in get_resolver().url_patterns if patterns is None else patterns:
        route = prefix + str(pattern.pattern)
        if isinstance(pattern, URLResolver):
            found |= routes(pattern.url_patterns, route)
        else:
            found.add(route)
    return found


def json_routes() -> set[str]:
    return {route for route in routes() if not route.startswith(HTML_ROUTES)}


def keys_anywhere(value: Any) -> set[str]:
    if isinstance(value, dict):
        return set(value) | {key for item in value.values() for key in keys_anywhere(item)}
    if isinstance(value, list):
        return {key for item in value for key in keys_anywhere(item)}
    return set()


def assert_error_shape(response, status: int, code: str) -> dict:
    """The body is exactly the one shape, with this status and code; returns the error object."""
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/json"), response["Content-Type"]
    body = json.loads(response.content)
    assert isinstance(body, dict) and "error" in body, body
    # Only the start flow's failure carries something beside the error: the session it kept.
    assert set(body) - {"error"} <= {"backend_session"}, body
    error = body["error"]
    assert isinstance(error, dict), body
    assert isinstance(error["code"], str) and isinstance(error["message"], str), error
    assert error["message"].strip(), error
    assert error["code"] == code, error
    if "fields" in error:
        fields = error["fields"]
        assert isinstance(fields, dict) and fields, error
        for name, messages in fields.items():
            assert isinstance(name, str) and name, fields
            assert isinstance(messages, list) and messages, fields
            assert all(isinstance(message, str) and message for message in messages), fields
    assert "detail" not in keys_anywhere(error), body
    assert "Traceback" not in response.content.decode(errors="replace")
    return error


# --- the world a case acts in ---------------------------------------------------------------------


@dataclass
class World:
    """Alice and Bob with API clients, staff Charlie, ElevenLabs mocked, and the settings fixture."""

    alice: APIClient
    bob: APIClient
    staff: APIClient
    anonymous: APIClient
    upstream: responses.RequestsMock
    settings: Any
    monkeypatch: pytest.MonkeyPatch

    def session(self, client: APIClient | None = None) -> str:
        """A new session (created, no credential) of alice's or ``client``'s user."""
        response = (client or self.alice).post("/voice/sessions", {"customer_id": "cust-1"}, format="json")
        assert response.status_code == 201, response.content
        return response.json()["session_id"]

    def started(self, conversation_id: str = "conv_signed_1") -> str:
        """Alice's session started through the start endpoint: connecting, bound to ``conversation_id``."""
        add_signed_url(self.upstream, agent_id="agent_support_test", conversation_id=conversation_id)
        body = {"agentType": "support", "customerId": "cust-1", "textOnly": True}
        response = self.alice.post("/api/voice/sessions", body, format="json")
        assert response.status_code == 201, response.content
        return response.json()["backend_session"]["session_id"]

    def recorded(self) -> str:
        """Alice's session with a recording, stored the way ElevenLabs' audio webhook stores it."""
        session_id = self.started("conv_audio_1")
        connected = {"type": "connected", "conversation_id": "conv_audio_1"}
        assert self.alice.post(f"/voice/sessions/{session_id}/events", connected, format="json").status_code == 200
        audio = base64.b64encode(b"ID3" + b"\x00\x01" * 500).decode()
        data = {"agent_id": "agent_support_test", "conversation_id": "conv_audio_1", "full_audio": audio}
        assert deliver(self.settings, envelope("post_call_audio", data)).status_code == 200
        return session_id

    def throttle(self, scope: str, rate: str) -> None:
        rates = {**self.settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], scope: rate}
        self.settings.REST_FRAMEWORK = {**self.settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": rates}

    def database_down(self) -> None:
        """Every query from here on fails as a locked or unreachable database does."""

        def unavailable(*args, **kwargs):
            raise OperationalError("database is locked")

        self.monkeypatch.setattr(CursorWrapper, "_execute", unavailable)


def envelope(event_type: str, data: dict) -> bytes:
    return json.dumps({"type": event_type, "event_timestamp": 1780000050, "data": data}).encode()


def deliver(settings, body: bytes, *, secret: str | None = None, client: Client | None = None):
    signature = sign(body, secret=secret or settings.ELEVENLABS_WEBHOOK_SECRET)
    return (client or Client()).post(
        WEBHOOK, data=body, content_type="application/json", HTTP_ELEVENLABS_SIGNATURE=signature
    )


METRICS_TOKEN = "metrics-token-for-error-shapes-0123"


def scrape(world: World, authorization: str | None, method: str = "get"):
    world.settings.METRICS_TOKEN = METRICS_TOKEN
    headers = {} if authorization is None else {"HTTP_AUTHORIZATION": authorization}
    return getattr(Client(), method)("/metrics", **headers)


@pytest.fixture
def world(alice_api, bob_api, staff_api, upstream, settings, monkeypatch, fresh_throttles):
    return World(alice_api, bob_api, staff_api, APIClient(), upstream, settings, monkeypatch)


# --- the cases, by route ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    route: str
    name: str
    status: int
    code: str
    call: Callable[[World], Any]
    check: Callable[[Any, dict], None] | None = None


def has_header(name: str, value: str | None = None) -> Callable[[Any, dict], None]:
    def check(response, error):
        assert response.has_header(name), dict(response.headers)
        if value is not None:
            assert response[name] == value

    return check


def has_fields(*names: str) -> Callable[[Any, dict], None]:
    def check(response, error):
        assert set(names) <= set(error.get("fields", {})), error
        for name in names:  # the message names what is wrong
            assert name in error["message"], error

    return check


def has_extra(**expected: Any) -> Callable[[Any, dict], None]:
    def check(response, error):
        assert {key: error.get(key) for key in expected} == expected, error

    return check


def keeps_the_failed_session(response, error):
    session = response.json()["backend_session"]
    assert session["status"] == "failed" and error["upstream_status"] == 401


def retry_after(response, error):
    assert int(response["Retry-After"]) > 0 and error["retry_after"] == int(response["Retry-After"])


def csrf_enforcing_client() -> Client:
    return Client(enforce_csrf_checks=True)


def too_many_logs(w: World):
    w.throttle("client_logs", "1/min")
    entry = {"level": "info", "message": "hello"}
    assert w.alice.post("/api/logs", entry, format="json").status_code == 201
    return w.alice.post("/api/logs", entry, format="json")


def too_many_sessions(w: World):
    w.throttle("session_create", "1/min")
    w.session()
    return w.alice.post("/voice/sessions", {"customer_id": "cust-2"}, format="json")


def too_many_starts(w: World):
    w.throttle("session_create", "1/min")
    w.started()
    return w.alice.post("/api/voice/sessions", {"agentType": "support", "customerId": "c"}, format="json")


def log_tail_crashes(w: World):
    def broken(*args, **kwargs):
        raise RuntimeError("disk on fire")

    w.monkeypatch.setattr(project_views, "tail_lines", broken)
    return w.staff.get("/api/logs")


def start_refused_upstream(w: World):
    add_error(w.upstream, "GET", SIGNED_URL_PATH, 401, code="invalid_api_key", message="Invalid API key")
    return w.alice.post("/api/voice/sessions", {"agentType": "support", "customerId": "c", "textOnly": True})


def start_conversation_refused_upstream(w: World):
    add_error(w.upstream, "GET", SIGNED_URL_PATH, 401, code="invalid_api_key", message="Invalid API key")
    body = {"action": "start_conversation", "agentType": "support", "textOnly": True}
    return w.alice.post("/api/elevenlabs", body, format="json")


def start_conversation_twice(w: World):
    session_id = w.started()
    body = {"action": "start_conversation", "sessionId": session_id, "textOnly": True}
    return w.alice.post("/api/elevenlabs", body, format="json")


def agent_not_configured(w: World):
    w.settings.ELEVENLABS_SALES_AGENT_ID = ""
    return w.alice.post("/api/voice/sessions", {"agentType": "sales", "customerId": "c"}, format="json")


def public_base_url_missing(w: World):
    w.settings.PUBLIC_BASE_URL = ""
    body = {"agentType": "support", "customerId": "c", "textOnly": True, "simulation": True}
    return w.alice.post("/api/voice/sessions", body, format="json")


def outbound_without_a_phone_number_id(w: World):
    w.settings.ELEVENLABS_PHONE_NUMBER_ID = ""
    body = {"agentType": "sales", "customerId": "c", "direction": "outbound", "phoneNumber": "+14155550100"}
    return w.alice.post("/api/voice/sessions", body, format="json")


def recording_missing(w: World):
    session_id = w.recorded()
    # The file goes; the row still names it.
    audio = VoiceSession.objects.get(pk=session_id).audio
    audio.storage.delete(audio.name)
    return w.alice.get(f"/voice/sessions/{session_id}/audio")


def webhook_secret_missing(w: World):
    w.settings.ELEVENLABS_WEBHOOK_SECRET = ""
    return Client().post(WEBHOOK, data=b"{}", content_type="application/json")


def webhook_too_large(w: World):
    w.settings.ELEVENLABS_WEBHOOK_MAX_BYTES = 1000
    return deliver(w.settings, envelope("post_call_transcription", {"conversation_id": "c", "pad": "x" * 2000}))


def webhook_not_a_simulated_conversation(w: World):
    body = envelope("post_call_transcription", {"conversation_id": "conv_nobody", "status": "done"})
    return deliver(w.settings, body, secret=simulator_signing_secret())


def webhook_database_down(w: World):
    w.database_down()
    return deliver(w.settings, envelope("post_call_transcription", {"conversation_id": "conv_1", "status": "done"}))


def webhook_crashes(w: World):
    def broken(**kwargs):
        raise RuntimeError("ingest on fire")

    w.monkeypatch.setattr(elevenlabs_views, "webhook_ingest", broken)
    client = Client(raise_request_exception=False)
    return deliver(w.settings, envelope("post_call_transcription", {"conversation_id": "c"}), client=client)


TOOLS_AUTH = {"HTTP_AUTHORIZATION": "Bearer tools_test_token_0000000000"}
INBOUND_CALL = {"caller_id": "+15551234567", "agent_id": "agent_support_test", "call_sid": "CA1"}


def elevenlabs_asks(path: str, body: dict | str, *, headers: dict | None = None, **kwargs):
    """A call ElevenLabs makes during a call: JSON with the tools token."""
    data = body if isinstance(body, str) else json.dumps(body)
    return Client(**kwargs).post(
        path, data=data, content_type="application/json", **(TOOLS_AUTH if headers is None else headers)
    )


def tools_token_missing(w: World):
    w.settings.ELEVENLABS_TOOLS_TOKEN = ""
    return elevenlabs_asks("/elevenlabs/conversation-init", INBOUND_CALL)


def inbound_database_down(w: World):
    w.database_down()
    return elevenlabs_asks("/elevenlabs/conversation-init", INBOUND_CALL)


def inbound_call_with_a_tool_conversation(w: World) -> dict:
    assert elevenlabs_asks("/elevenlabs/conversation-init", INBOUND_CALL).status_code == 200
    return {"conversation_id": "conv_tool_1", "call_sid": "CA1"}


def tool_crashes(w: World):
    from elevenlabs import tools

    def broken(**kwargs):
        raise RuntimeError("tool on fire")

    body = inbound_call_with_a_tool_conversation(w)
    broken_tool = tools.ServerTool("customer_history", tools.CustomerHistoryInput, broken)
    w.monkeypatch.setitem(tools.TOOLS, "customer_history", broken_tool)
    return elevenlabs_asks("/elevenlabs/tools/customer_history", body)


def tool_conversation_mismatch(w: World):
    body = inbound_call_with_a_tool_conversation(w)
    assert elevenlabs_asks("/elevenlabs/tools/customer_history", body).status_code == 200
    return elevenlabs_asks("/elevenlabs/tools/customer_history", {**body, "conversation_id": "conv_other"})


def sessions_database_down(w: World):
    w.database_down()
    return w.alice.get("/voice/sessions")


def raw(client: APIClient, path: str, text: str, content_type: str = "application/json"):
    return client.generic("POST", path, text.encode(), content_type=content_type)


UUID_UNKNOWN = "00000000-0000-4000-8000-000000000000"

CASES = [
    # Health (its 503 is the health report: see test_health_503_is_the_report_not_an_error)
    Case("healthz", "put", 405, "method_not_allowed", lambda w: Client().put("/healthz"), has_header("Allow")),
    Case("healthz", "post without csrf", 403, "csrf_failed", lambda w: csrf_enforcing_client().post("/healthz")),
    Case("api/healthz", "delete", 405, "method_not_allowed", lambda w: Client().delete("/api/healthz")),
    Case("metrics", "no token configured", 404, "not_found", lambda w: Client().get("/metrics")),
    Case(
        "metrics", "missing token", 401, "not_authenticated", lambda w: scrape(w, None), has_header("WWW-Authenticate")
    ),
    Case("metrics", "wrong token", 401, "not_authenticated", lambda w: scrape(w, "Bearer not-the-token-0123456789")),
    Case("metrics", "post", 405, "method_not_allowed", lambda w: scrape(w, f"Bearer {METRICS_TOKEN}", "post")),
    Case(
        "api/healthz", "post without csrf", 403, "csrf_failed", lambda w: csrf_enforcing_client().post("/api/healthz")
    ),
    # The client log API
    Case(
        "api/logs",
        "anonymous",
        401,
        "not_authenticated",
        lambda w: w.anonymous.post("/api/logs", {}, format="json"),
        has_header("WWW-Authenticate", "Token"),
    ),
    Case(
        "api/logs",
        "bad token",
        401,
        "authentication_failed",
        lambda w: APIClient(HTTP_AUTHORIZATION="Token nope").get("/api/logs"),
    ),
    Case("api/logs", "tail by non-staff", 403, "permission_denied", lambda w: w.alice.get("/api/logs")),
    Case(
        "api/logs",
        "invalid entry",
        400,
        "invalid",
        lambda w: w.alice.post("/api/logs", {"level": "loud"}, format="json"),
        has_fields("level", "message"),
    ),
    Case("api/logs", "bad tail", 400, "invalid", lambda w: w.staff.get("/api/logs?tail=0"), has_fields("tail")),
    Case("api/logs", "not json", 400, "invalid_json", lambda w: raw(w.alice, "/api/logs", "{not json")),
    Case(
        "api/logs", "text/plain", 415, "unsupported_media_type", lambda w: raw(w.alice, "/api/logs", "hi", "text/plain")
    ),
    Case(
        "api/logs",
        "xml wanted",
        406,
        "not_acceptable",
        lambda w: w.staff.get("/api/logs", HTTP_ACCEPT="application/xml"),
    ),
    Case(
        "api/logs",
        "over its cap",
        413,
        "body_too_large",
        lambda w: (
            setattr(w.settings, "CLIENT_LOG_MAX_BYTES", 100)
            or w.alice.post("/api/logs", {"level": "info", "message": "x" * 200}, format="json")
        ),
        has_extra(limit=100),
    ),
    Case(
        "api/logs",
        "someone else's session",
        404,
        "not_found",
        lambda w: w.alice.post(
            "/api/logs", {"level": "info", "message": "m", "sessionId": w.session(w.bob)}, format="json"
        ),
    ),
    Case("api/logs", "put", 405, "method_not_allowed", lambda w: w.alice.put("/api/logs", {}, format="json")),
    Case("api/logs", "throttled", 429, "throttled", too_many_logs, retry_after),
    Case("api/logs", "unexpected crash", 500, "internal_error", log_tail_crashes),
    # The schema and its docs page
    Case("api/schema/", "anonymous", 401, "not_authenticated", lambda w: w.anonymous.get("/api/schema/")),
    Case("api/schema/", "post", 405, "method_not_allowed", lambda w: w.alice.post("/api/schema/")),
    Case("api/schema/", "unknown format", 404, "not_found", lambda w: w.alice.get("/api/schema/?format=xml")),
    Case(
        "api/docs/",
        "bad token",
        401,
        "authentication_failed",
        lambda w: APIClient(HTTP_AUTHORIZATION="Token nope").get("/api/docs/"),
    ),
    Case("api/docs/", "post", 405, "method_not_allowed", lambda w: w.alice.post("/api/docs/")),
    # /voice/sessions
    Case("voice/sessions", "anonymous", 401, "not_authenticated", lambda w: w.anonymous.get("/voice/sessions")),
    Case(
        "voice/sessions",
        "invalid",
        400,
        "invalid",
        lambda w: w.alice.post(
            "/voice/sessions", {"agent_type": "billing", "dynamic_variables": {"bad name": "x"}}, format="json"
        ),
        has_fields("customer_id", "agent_type", "dynamic_variables"),
    ),
    Case(
        "voice/sessions",
        "bad filter",
        400,
        "invalid",
        lambda w: w.alice.get("/voice/sessions?status=x"),
        has_fields("status"),
    ),
    Case(
        "voice/sessions",
        "too deep",
        400,
        "json_too_deep",
        lambda w: raw(w.alice, "/voice/sessions", '{"customer_id": "c", "x": ' + "[" * 100 + "]" * 100 + "}"),
    ),
    Case(
        "voice/sessions",
        "over the api cap",
        413,
        "body_too_large",
        lambda w: (
            setattr(w.settings, "API_MAX_BODY_BYTES", 1000)
            or raw(w.alice, "/voice/sessions", json.dumps({"customer_id": "c", "pad": "x" * 2000}))
        ),
        has_extra(limit=1000),
    ),
    Case(
        "voice/sessions",
        "text/plain",
        415,
        "unsupported_media_type",
        lambda w: raw(w.alice, "/voice/sessions", "x", "text/plain"),
    ),
    Case("voice/sessions", "delete", 405, "method_not_allowed", lambda w: w.alice.delete("/voice/sessions")),
    Case("voice/sessions", "throttled", 429, "throttled", too_many_sessions, retry_after),
    Case(
        "voice/sessions",
        "database down",
        503,
        "database_unavailable",
        sessions_database_down,
        has_header("Retry-After", "5"),
    ),
    # /voice/sessions/{id}
    Case(
        "voice/sessions/<uuid:session_id>",
        "someone else's",
        404,
        "not_found",
        lambda w: w.alice.get(f"/voice/sessions/{w.session(w.bob)}"),
    ),
    Case(
        "voice/sessions/<uuid:session_id>",
        "unknown",
        404,
        "not_found",
        lambda w: w.alice.get(f"/voice/sessions/{UUID_UNKNOWN}"),
    ),
    Case(
        "voice/sessions/<uuid:session_id>",
        "anonymous",
        401,
        "not_authenticated",
        lambda w: w.anonymous.get(f"/voice/sessions/{UUID_UNKNOWN}"),
    ),
    Case(
        "voice/sessions/<uuid:session_id>",
        "delete",
        405,
        "method_not_allowed",
        lambda w: w.alice.delete(f"/voice/sessions/{w.session()}"),
    ),
    # /voice/sessions/{id}/end
    Case(
        "voice/sessions/<uuid:session_id>/end",
        "unknown reason",
        400,
        "invalid",
        lambda w: w.alice.put(f"/voice/sessions/{w.session()}/end", {"reason": "bored"}, format="json"),
        has_fields("reason"),
    ),
    Case(
        "voice/sessions/<uuid:session_id>/end",
        "someone else's",
        404,
        "not_found",
        lambda w: w.alice.put(f"/voice/sessions/{w.session(w.bob)}/end", {}, format="json"),
    ),
    Case(
        "voice/sessions/<uuid:session_id>/end",
        "get",
        405,
        "method_not_allowed",
        lambda w: w.alice.get(f"/voice/sessions/{w.session()}/end"),
    ),
    # /voice/sessions/{id}/audio
    Case(
        "voice/sessions/<uuid:session_id>/audio",
        "no recording",
        404,
        "no_recording",
        lambda w: w.alice.get(f"/voice/sessions/{w.session()}/audio", HTTP_ACCEPT="audio/mpeg"),
    ),
    Case("voice/sessions/<uuid:session_id>/audio", "file gone", 404, "recording_missing", recording_missing),
    Case(
        "voice/sessions/<uuid:session_id>/audio",
        "range past the end",
        416,
        "range_not_satisfiable",
        lambda w: w.alice.get(f"/voice/sessions/{w.recorded()}/audio", HTTP_RANGE="bytes=999999-"),
        has_header("Content-Range"),
    ),
    Case(
        "voice/sessions/<uuid:session_id>/audio",
        "someone else's",
        404,
        "not_found",
        lambda w: w.bob.get(f"/voice/sessions/{w.recorded()}/audio"),
    ),
    Case(
        "voice/sessions/<uuid:session_id>/audio",
        "post",
        405,
        "method_not_allowed",
        lambda w: w.alice.post(f"/voice/sessions/{w.session()}/audio"),
    ),
    # /voice/sessions/{id}/events
    Case(
        "voice/sessions/<uuid:session_id>/events",
        "unknown type",
        400,
        "invalid",
        lambda w: w.alice.post(f"/voice/sessions/{w.session()}/events", {"type": "dance"}, format="json"),
        has_fields("type"),
    ),
    Case(
        "voice/sessions/<uuid:session_id>/events",
        "connected without a credential",
        409,
        "invalid_transition",
        lambda w: w.alice.post(
            f"/voice/sessions/{w.session()}/events", {"type": "connected", "conversation_id": "conv_1"}, format="json"
        ),
        has_extra(current_status="created"),
    ),
    Case(
        "voice/sessions/<uuid:session_id>/events",
        "another conversation",
        409,
        "conversation_mismatch",
        lambda w: w.alice.post(
            f"/voice/sessions/{w.started()}/events", {"type": "connected", "conversation_id": "conv_x"}, format="json"
        ),
        has_extra(conversation_id="conv_x"),
    ),
    Case(
        "voice/sessions/<uuid:session_id>/events",
        "someone else's",
        404,
        "not_found",
        lambda w: w.alice.post(f"/voice/sessions/{w.session(w.bob)}/events", {"type": "mode"}, format="json"),
    ),
    Case(
        "voice/sessions/<uuid:session_id>/events",
        "get",
        405,
        "method_not_allowed",
        lambda w: w.alice.get(f"/voice/sessions/{w.session()}/events"),
    ),
    # GET /api/analytics
    Case("api/analytics", "anonymous", 401, "not_authenticated", lambda w: w.anonymous.get("/api/analytics")),
    Case(
        "api/analytics",
        "bad date",
        400,
        "invalid",
        lambda w: w.alice.get("/api/analytics?from=2026-02-30&agent_type=billing"),
        has_fields("from", "agent_type"),
    ),
    Case(
        "api/analytics",
        "from after to",
        400,
        "invalid",
        lambda w: w.alice.get("/api/analytics?from=2026-03-02&to=2026-03-01"),
        has_fields("from"),
    ),
    Case(
        "api/analytics",
        "over 366 days",
        400,
        "invalid",
        lambda w: w.staff.get("/api/analytics?from=2025-01-01&to=2026-01-02"),
        has_fields("from"),
    ),
    Case("api/analytics", "post", 405, "method_not_allowed", lambda w: w.alice.post("/api/analytics", {})),
    Case(
        "api/analytics",
        "database down",
        503,
        "database_unavailable",
        lambda w: w.database_down() or w.alice.get("/api/analytics"),
        has_header("Retry-After", "5"),
    ),
    # POST /api/voice/sessions
    Case(
        "api/voice/sessions",
        "invalid",
        400,
        "invalid",
        lambda w: w.alice.post("/api/voice/sessions", {"agentType": "billing"}, format="json"),
        has_fields("agentType"),
    ),
    Case("api/voice/sessions", "agent not configured", 400, "agent_not_configured", agent_not_configured),
    Case("api/voice/sessions", "outbound unavailable", 400, "outbound_unavailable", outbound_without_a_phone_number_id),
    Case(
        "api/voice/sessions",
        "elevenlabs refuses",
        502,
        "invalid_api_key",
        start_refused_upstream,
        keeps_the_failed_session,
    ),
    Case(
        "api/voice/sessions",
        "no public base url",
        503,
        "public_base_url_missing",
        public_base_url_missing,
        has_extra(variable="PUBLIC_BASE_URL"),
    ),
    Case("api/voice/sessions", "throttled", 429, "throttled", too_many_starts, retry_after),
    Case("api/voice/sessions", "get", 405, "method_not_allowed", lambda w: w.alice.get("/api/voice/sessions")),
    # POST /api/elevenlabs
    Case(
        "api/elevenlabs",
        "unknown action",
        400,
        "invalid",
        lambda w: w.alice.post("/api/elevenlabs", {"action": "dance"}, format="json"),
        has_fields("action"),
    ),
    Case(
        "api/elevenlabs",
        "unknown session",
        404,
        "not_found",
        lambda w: w.alice.post(
            "/api/elevenlabs", {"action": "end_conversation", "sessionId": UUID_UNKNOWN}, format="json"
        ),
    ),
    Case(
        "api/elevenlabs",
        "agent type of another session",
        400,
        "invalid",
        lambda w: w.alice.post(
            "/api/elevenlabs",
            {"action": "start_conversation", "sessionId": w.session(), "agentType": "sales"},
            format="json",
        ),
        has_fields("agentType"),
    ),
    Case("api/elevenlabs", "started twice", 409, "invalid_transition", start_conversation_twice),
    Case(
        "api/elevenlabs",
        "elevenlabs refuses",
        502,
        "invalid_api_key",
        start_conversation_refused_upstream,
        has_extra(upstream_status=401, upstream_code="invalid_api_key"),
    ),
    Case("api/elevenlabs", "anonymous", 401, "not_authenticated", lambda w: w.anonymous.post("/api/elevenlabs", {})),
    # The webhook (a plain Django view)
    Case(
        "elevenlabs/webhook",
        "get",
        405,
        "method_not_allowed",
        lambda w: Client().get(WEBHOOK),
        has_header("Allow", "POST"),
    ),
    Case(
        "elevenlabs/webhook",
        "unsigned",
        401,
        "invalid_signature",
        lambda w: Client().post(WEBHOOK, data=b"{}", content_type="application/json"),
    ),
    Case(
        "elevenlabs/webhook",
        "simulator's key, real conversation",
        401,
        "not_simulated_conversation",
        webhook_not_a_simulated_conversation,
    ),
    Case(
        "elevenlabs/webhook",
        "malformed",
        400,
        "malformed_delivery",
        lambda w: deliver(w.settings, envelope("post_call_audio", {"conversation_id": "c", "full_audio": "!"})),
    ),
    Case("elevenlabs/webhook", "over its cap", 413, "body_too_large", webhook_too_large, has_extra(limit=1000)),
    Case("elevenlabs/webhook", "no secret", 503, "webhook_secret_missing", webhook_secret_missing),
    Case(
        "elevenlabs/webhook",
        "database down",
        503,
        "database_unavailable",
        webhook_database_down,
        has_header("Retry-After"),
    ),
    Case("elevenlabs/webhook", "crash", 500, "internal_error", webhook_crashes),
    # What ElevenLabs calls during a call (the tools token)
    Case(
        "elevenlabs/conversation-init",
        "no token",
        401,
        "not_authenticated",
        lambda w: elevenlabs_asks("/elevenlabs/conversation-init", INBOUND_CALL, headers={}),
        has_header("WWW-Authenticate", 'Bearer realm="elevenlabs"'),
    ),
    Case(
        "elevenlabs/conversation-init",
        "wrong token",
        401,
        "authentication_failed",
        lambda w: elevenlabs_asks(
            "/elevenlabs/conversation-init", INBOUND_CALL, headers={"HTTP_AUTHORIZATION": "Bearer nope"}
        ),
    ),
    Case(
        "elevenlabs/conversation-init",
        "no token configured",
        503,
        "tools_token_missing",
        tools_token_missing,
        has_extra(variable="ELEVENLABS_TOOLS_TOKEN"),
    ),
    Case(
        "elevenlabs/conversation-init",
        "unknown agent",
        404,
        "unknown_agent",
        lambda w: elevenlabs_asks("/elevenlabs/conversation-init", {**INBOUND_CALL, "agent_id": "agent_x"}),
        has_extra(agent_id="agent_x"),
    ),
    Case(
        "elevenlabs/conversation-init",
        "invalid",
        400,
        "invalid",
        lambda w: elevenlabs_asks("/elevenlabs/conversation-init", {"caller_id": 5}),
        has_fields("agent_id", "call_sid", "caller_id"),
    ),
    Case(
        "elevenlabs/conversation-init",
        "not json",
        400,
        "invalid_json",
        lambda w: elevenlabs_asks("/elevenlabs/conversation-init", "{not json"),
    ),
    Case(
        "elevenlabs/conversation-init",
        "over its cap",
        413,
        "body_too_large",
        lambda w: (
            setattr(w.settings, "ELEVENLABS_TOOLS_MAX_BYTES", 1024)
            or elevenlabs_asks("/elevenlabs/conversation-init", {**INBOUND_CALL, "pad": "x" * 2000})
        ),
        has_extra(limit=1024),
    ),
    Case(
        "elevenlabs/conversation-init",
        "get",
        405,
        "method_not_allowed",
        lambda w: Client().get("/elevenlabs/conversation-init", **TOOLS_AUTH),
    ),
    Case(
        "elevenlabs/conversation-init",
        "database down",
        503,
        "database_unavailable",
        inbound_database_down,
        has_header("Retry-After", "5"),
    ),
    Case(
        "elevenlabs/tools/<str:name>",
        "no token",
        401,
        "not_authenticated",
        lambda w: elevenlabs_asks("/elevenlabs/tools/customer_history", {}, headers={}),
    ),
    Case(
        "elevenlabs/tools/<str:name>",
        "unknown tool",
        404,
        "unknown_tool",
        lambda w: elevenlabs_asks("/elevenlabs/tools/dance", {"conversation_id": "c"}),
        has_extra(tools=["customer_history", "schedule_callback"]),
    ),
    Case(
        "elevenlabs/tools/<str:name>",
        "unknown session",
        404,
        "session_not_found",
        lambda w: elevenlabs_asks("/elevenlabs/tools/customer_history", {"conversation_id": "conv_nobody"}),
    ),
    Case(
        "elevenlabs/tools/<str:name>",
        "bad arguments",
        400,
        "invalid",
        lambda w: elevenlabs_asks(
            "/elevenlabs/tools/schedule_callback",
            {**inbound_call_with_a_tool_conversation(w), "when": "soon", "reason": ""},
        ),
        has_fields("when", "reason"),
    ),
    Case(
        "elevenlabs/tools/<str:name>",
        "another conversation",
        409,
        "conversation_mismatch",
        tool_conversation_mismatch,
        has_extra(conversation_id="conv_other"),
    ),
    Case("elevenlabs/tools/<str:name>", "tool crashes", 503, "tool_failed", tool_crashes),
    Case(
        "elevenlabs/tools/<str:name>",
        "get",
        405,
        "method_not_allowed",
        lambda w: Client().get("/elevenlabs/tools/customer_history", **TOOLS_AUTH),
    ),
]


@pytest.mark.parametrize("case", CASES, ids=lambda case: f"{case.route} {case.name}")
def test_every_error_has_the_one_shape(world, case, caplog):
    with caplog.at_level(logging.WARNING):
        response = case.call(world)
    error = assert_error_shape(response, case.status, case.code)
    if case.check is not None:
        case.check(response, error)
    if case.status == 500 or case.code == "tool_failed":  # unexpected: logged with its traceback, never shown
        assert "on fire" in caplog.text and "Traceback" in caplog.text
        assert "on fire" not in response.content.decode()


def test_every_json_endpoint_has_error_cases():
    covered = {case.route for case in CASES}
    assert json_routes() - covered == set(), "endpoints without error cases here"
    assert covered - json_routes() == set(), "cases for routes that no longer exist"


# --- Django's own error views: JSON on the API's paths, pages elsewhere -------------------------


@pytest.mark.parametrize("path", ["/api/nope", "/voice/sessions/not-a-uuid", "/elevenlabs/nope", "/api/voice/nope"])
def test_an_unknown_api_path_is_a_json_404(path):
    assert_error_shape(Client().get(path), 404, "not_found")


@pytest.mark.parametrize("path", ["/playground/nope", "/nope", "/admin/nope/"])
def test_an_unknown_page_elsewhere_is_an_html_404(path):
    response = Client().get(path, HTTP_ACCEPT="text/html")
    assert response.status_code in (302, 404)  # the admin sends a visitor to its login first
    assert not response["Content-Type"].startswith("application/json")


def test_a_csrf_failure_outside_the_api_is_django_s_page():
    response = csrf_enforcing_client().post("/accounts/login/", {"username": "a", "password": "b"})
    assert response.status_code == 403
    assert response["Content-Type"].startswith("text/html")


def test_a_suspicious_request_on_an_api_path_is_a_json_400():
    response = Client().get("/api/healthz", HTTP_HOST="evil.example")
    assert_error_shape(response, 400, "bad_request")
    assert "evil.example" not in response.content.decode()


def test_a_permission_denied_outside_drf_is_json_on_api_paths_and_a_page_elsewhere():
    factory = RequestFactory()
    api = project_views.permission_denied(factory.get("/api/anything"), PermissionError())
    page = project_views.permission_denied(factory.get("/playground/"), PermissionError())
    assert_error_shape(api, 403, "permission_denied")
    assert page.status_code == 403 and page["Content-Type"].startswith("text/html")


def test_a_crash_outside_drf_is_a_json_500_on_api_paths_and_a_page_elsewhere():
    factory = RequestFactory()
    assert_error_shape(project_views.server_error(factory.get("/voice/sessions")), 500, "internal_error")
    page = project_views.server_error(factory.get("/playground/"))
    assert page.status_code == 500 and page["Content-Type"].startswith("text/html")


def test_the_api_docs_page_still_sends_a_browser_without_a_login_to_the_login_page():
    response = Client().get("/api/docs/")
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_a_token_user_gets_the_same_shape(alice):
    token = Token.objects.create(user=alice)
    client = APIClient(HTTP_AUTHORIZATION=f"Token {token.key}")
    assert_error_shape(client.get(f"/voice/sessions/{UUID_UNKNOWN}"), 404, "not_found")


# --- what is not an error body ------------------------------------------------------------------


def test_health_503_is_the_report_not_an_error(monkeypatch, settings):
    """Health answers the question it is asked: its 503 is the report a monitor reads, not a refusal."""
    monkeypatch.setattr(project_views, "write_lock_probe", lambda **kwargs: "write lock not obtained within 1 s")
    project_views.database_status_cache.forget()
    try:
        response = Client().get("/healthz")
    finally:
        project_views.database_status_cache.forget()
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "degraded" and body["database"]["error"] == "write lock not obtained within 1 s"


# --- how DRF's validation errors are flattened -------------------------------------------------


class Item(serializers.Serializer):
    name = serializers.CharField()


class Order(serializers.Serializer):
    customer = serializers.CharField()
    address = Item()
    items = Item(many=True)
    tags = serializers.ListField(child=serializers.IntegerField())

    def validate(self, data):
        raise serializers.ValidationError("Orders are closed today.")


def validation_body(data) -> dict:
    order = Order(data=data)
    assert not order.is_valid()
    return validation_error_body(order.errors)["error"]


def test_nested_and_listed_fields_are_named_with_dots():
    error = validation_body({"address": {}, "items": [{"name": "ok"}, {}], "tags": [1, "x"]})
    assert error["fields"] == {
        "customer": ["This field is required."],
        "address.name": ["This field is required."],
        "items.1.name": ["This field is required."],
        "tags.1": ["A valid integer is required."],
    }
    assert error["message"].startswith("customer: This field is required. address.name: This field is required.")


def test_errors_of_no_field_are_the_message_and_add_no_field():
    error = validation_body({"customer": "c", "address": {"name": "n"}, "items": [], "tags": []})
    assert error == {"code": "invalid", "message": "Orders are closed today."}


def test_a_nested_object_s_own_errors_belong_to_its_field():
    error = validation_body({"customer": "c", "address": "not an object", "items": [], "tags": []})
    assert list(error["fields"]) == ["address"]


def test_the_message_names_a_few_fields_and_counts_the_rest():
    detail = {f"field_{index}": ["Bad."] for index in range(SUMMARY_FIELDS + 3)}
    error = validation_error_body(detail)["error"]
    assert len(error["fields"]) == SUMMARY_FIELDS + 3
    assert error["message"].endswith("(and 3 more fields)") and "field_0: Bad." in error["message"]
