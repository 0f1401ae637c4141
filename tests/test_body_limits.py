"""The body-limit guard as an ASGI (and WSGI) app, no server: what it refuses, when, and what it reads."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from elevenlabs.views import webhook_refusal_before_body
from elevenlabs.webhooks import sign
from sessions.validators import MAX_DYNAMIC_VALUE_LENGTH, MAX_DYNAMIC_VARIABLES
from voiceagent.asgi import application as asgi_application
from voiceagent.bodylimit import BodyLimitASGI, BodyLimits, BodyLimitWSGI, Refusal, header_value
from voiceagent.wsgi import application as wsgi_application

LIMITS = BodyLimits(1000, {"/healthz": 0, "/elevenlabs/webhook": 5000})


def http_scope(path: str, *, method: str = "POST", headers: dict[str, str] | None = None, **extra) -> dict:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in (headers or {}).items()],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
        **extra,
    }


class Client:
    """Feeds body chunks on demand and records what the app under test read and answered."""

    def __init__(self, chunks: list[bytes]):
        self.pending = [
            {"type": "http.request", "body": c, "more_body": i < len(chunks) - 1} for i, c in enumerate(chunks)
        ]
        self.read = 0
        self.sent: list[dict] = []

    async def receive(self) -> dict:
        if not self.pending:
            await asyncio.sleep(3600)  # a client that sends nothing more: the app must not wait for it
        self.read += 1
        return self.pending.pop(0)

    async def send(self, message: dict) -> None:
        self.sent.append(message)

    @property
    def status(self) -> int:
        return next(m["status"] for m in self.sent if m["type"] == "http.response.start")

    @property
    def headers(self) -> dict[bytes, bytes]:
        return dict(next(m["headers"] for m in self.sent if m["type"] == "http.response.start"))

    @property
    def json(self) -> dict:
        return json.loads(b"".join(m.get("body", b"") for m in self.sent if m["type"] == "http.response.body"))


class EchoApp:
    """Reads the whole body like Django does, then answers 200 with its length."""

    def __init__(self):
        self.calls = 0
        self.saw_disconnect = False
        self.body = b""

    async def __call__(self, scope, receive, send):
        self.calls += 1
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                self.saw_disconnect = True
                # Django would return here without answering; try to answer anyway to prove it is dropped.
                await send({"type": "http.response.start", "status": 500, "headers": []})
                await send({"type": "http.response.body", "body": b"late"})
                return
            self.body += message.get("body", b"")
            if not message.get("more_body"):
                break
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": str(len(self.body)).encode()})


def run(app, scope, client: Client) -> None:
    asyncio.run(asyncio.wait_for(app(scope, client.receive, client.send), timeout=5))


def test_a_declared_length_over_the_cap_is_refused_without_reading_the_body():
    app = EchoApp()
    client = Client([b"x" * 100] * 50)
    run(BodyLimitASGI(app, limits=LIMITS), http_scope("/voice/sessions", headers={"Content-Length": "5000"}), client)
    assert client.status == 413
    assert client.json == {
        "error": {
            "code": "body_too_large",
            "message": "The request body is larger than this endpoint accepts (1000 bytes).",
            "limit": 1000,
        }
    }
    assert client.headers[b"connection"] == b"close"
    assert client.headers[b"content-type"] == b"application/json"
    assert app.calls == 0 and client.read == 0


def test_a_streamed_body_is_cut_off_at_the_first_chunk_past_the_cap():
    app = EchoApp()
    client = Client([b"x" * 400] * 1000)  # 400 KB announced by nothing (chunked)
    run(BodyLimitASGI(app, limits=LIMITS), http_scope("/voice/sessions"), client)
    assert client.status == 413 and client.json["error"]["limit"] == 1000
    # Chunks 1-2 (800 bytes) reached the app; chunk 3 crossed the cap and nothing after it was read.
    assert client.read == 3
    assert app.body == b"x" * 800 and app.saw_disconnect
    # One answer only: the app's late one after the disconnect is dropped.
    assert [m["type"] for m in client.sent] == ["http.response.start", "http.response.body"]


def test_a_body_at_the_cap_passes_through_whole():
    app = EchoApp()
    client = Client([b"x" * 500, b"y" * 500])
    run(BodyLimitASGI(app, limits=LIMITS), http_scope("/voice/sessions", headers={"Content-Length": "1000"}), client)
    assert client.status == 200 and app.body == b"x" * 500 + b"y" * 500
    assert b"".join(m.get("body", b"") for m in client.sent) == b"1000"


def test_each_path_has_its_own_cap_and_others_the_default():
    guard = BodyLimitASGI(EchoApp(), limits=LIMITS)
    for path, size, expected in [
        ("/healthz", 1, 413),
        ("/healthz", 0, 200),
        ("/elevenlabs/webhook", 4000, 200),
        ("/elevenlabs/webhook", 5001, 413),
        ("/voice/sessions", 1001, 413),
        ("/anything/else", 1000, 200),
    ]:
        client = Client([b"x" * size])
        run(guard, http_scope(path), client)
        assert client.status == expected, (path, size)


def test_the_cap_is_looked_up_by_the_routed_path_under_a_root_path():
    client = Client([b"x"])
    guard = BodyLimitASGI(EchoApp(), limits=LIMITS)
    run(guard, http_scope("/prefix/healthz", root_path="/prefix"), client)
    assert client.status == 413 and client.json["error"]["limit"] == 0


def test_a_before_body_check_refuses_from_the_headers_alone():
    app = EchoApp()
    client = Client([b"x" * 10] * 10)
    seen = []

    def unsigned(scope):
        seen.append(header_value(scope, "X-Signature"))
        return Refusal(401, {"error": "unsigned"})

    guard = BodyLimitASGI(app, limits=LIMITS, before_body={"/elevenlabs/webhook": unsigned})
    run(guard, http_scope("/elevenlabs/webhook", headers={"x-signature": "abc"}), client)
    assert client.status == 401 and client.json == {"error": "unsigned"}
    assert seen == ["abc"] and app.calls == 0 and client.read == 0
    # Other paths are not asked.
    other = Client([b"{}"])
    run(guard, http_scope("/voice/sessions"), other)
    assert other.status == 200 and seen == ["abc"]


def test_a_before_body_check_that_passes_lets_the_body_through():
    app = EchoApp()
    client = Client([b"{}"])
    guard = BodyLimitASGI(app, limits=LIMITS, before_body={"/elevenlabs/webhook": lambda scope: None})
    run(guard, http_scope("/elevenlabs/webhook"), client)
    assert client.status == 200 and app.body == b"{}"


def test_websocket_and_other_scopes_pass_untouched():
    received = []

    async def app(scope, receive, send):
        received.append(scope["type"])

    guard = BodyLimitASGI(app, limits=BodyLimits(0))
    asyncio.run(guard({"type": "websocket", "path": "/healthz", "headers": []}, None, None))
    assert received == ["websocket"]


def test_an_unreadable_content_length_is_left_to_the_streamed_count():
    client = Client([b"x" * 600, b"x" * 600])
    run(
        BodyLimitASGI(EchoApp(), limits=LIMITS),
        http_scope("/voice/sessions", headers={"content-length": "lots"}),
        client,
    )
    assert client.status == 413


# --- the project's application: Django behind the guard -------------------------------------------


def test_django_behind_the_guard_answers_only_the_413(settings):
    limit = settings.API_MAX_BODY_BYTES
    client = Client([b"x" * 65536] * (limit // 65536 + 50))
    run(asgi_application, http_scope("/voice/sessions"), client)
    assert client.status == 413 and client.json["error"]["limit"] == limit
    assert client.read == limit // 65536 + 1
    assert [m["type"] for m in client.sent] == ["http.response.start", "http.response.body"]


@pytest.mark.parametrize(
    ("kind", "reason"),
    [
        ("missing", "missing signature header"),
        ("malformed", "malformed signature header"),
        ("stale", "signature timestamp too old"),
    ],
)
def test_the_project_refuses_an_unsigned_or_stale_webhook_before_its_body(settings, kind, reason):
    headers = {
        "missing": {},
        "malformed": {"ElevenLabs-Signature": "t=1,v0=zz"},
        # Signed with our secret, as a replay of a delivery from 1970 would be.
        "stale": {
            "ElevenLabs-Signature": sign(b"x" * 65536 * 100, secret=settings.ELEVENLABS_WEBHOOK_SECRET, timestamp=1)
        },
    }[kind]
    client = Client([b"x" * 65536] * 100)
    run(asgi_application, http_scope("/elevenlabs/webhook", headers=headers), client)
    assert client.status == 401
    assert client.json == {"error": {"code": "invalid_signature", "message": f"Invalid signature: {reason}."}}
    assert client.read == 0


# --- the webhook's header check ---------------------------------------------------------------------


def webhook_scope(header: str | None, method: str = "POST") -> dict:
    return http_scope("/elevenlabs/webhook", method=method, headers={"ElevenLabs-Signature": header} if header else {})


def test_a_fresh_well_formed_signature_header_lets_the_body_be_read(settings):
    header = sign(b"anything", secret=settings.ELEVENLABS_WEBHOOK_SECRET)
    assert webhook_refusal_before_body(webhook_scope(header)) is None
    # The header alone cannot tell a wrong MAC: that waits for the body, in the view.
    assert webhook_refusal_before_body(webhook_scope(sign(b"x", secret="another"))) is None


@pytest.mark.parametrize(
    ("age", "reason"),
    [(31 * 60, "signature timestamp too old"), (-6 * 60, "signature timestamp in the future")],
)
def test_a_signature_outside_the_tolerance_is_refused_from_the_header(settings, age, reason):
    header = sign(b"{}", secret=settings.ELEVENLABS_WEBHOOK_SECRET, timestamp=int(time.time()) - age)
    refusal = webhook_refusal_before_body(webhook_scope(header))
    assert refusal == Refusal(401, {"error": {"code": "invalid_signature", "message": f"Invalid signature: {reason}."}})


def test_without_our_secret_a_bad_header_is_refused_503_and_a_good_one_waits_for_the_body(settings):
    settings.ELEVENLABS_WEBHOOK_SECRET = ""
    refusal = webhook_refusal_before_body(webhook_scope("t=1,v0=" + "a" * 64))
    assert refusal.status == 503  # as the view answers: retried once the secret is set
    # The simulated agent still signs with its own key; only the body can tell whose it is.
    assert webhook_refusal_before_body(webhook_scope(sign(b"{}", secret="the-simulators-key"))) is None


def test_other_methods_are_left_to_the_view():
    assert webhook_refusal_before_body(webhook_scope(None, method="GET")) is None


# --- WSGI ------------------------------------------------------------------------------------------


def wsgi_call(app, path: str, content_length: str | None):
    environ = {"PATH_INFO": path, "REQUEST_METHOD": "POST", "REMOTE_ADDR": "127.0.0.1"}
    if content_length is not None:
        environ["CONTENT_LENGTH"] = content_length
    answer = {}

    def start_response(status, headers):
        answer["status"], answer["headers"] = status, dict(headers)

    answer["body"] = b"".join(app(environ, start_response))
    return answer


def test_the_wsgi_guard_refuses_a_declared_length_over_the_cap():
    calls = []

    def app(environ, start_response):
        calls.append(environ["PATH_INFO"])
        start_response("200 OK", [])
        return [b"ok"]

    guard = BodyLimitWSGI(app, limits=LIMITS)
    refused = wsgi_call(guard, "/voice/sessions", "1001")
    assert refused["status"].startswith("413")
    assert json.loads(refused["body"])["error"]["code"] == "body_too_large"
    assert calls == []
    assert wsgi_call(guard, "/voice/sessions", "1000")["body"] == b"ok"
    assert wsgi_call(guard, "/healthz", None)["body"] == b"ok"
    assert wsgi_call(guard, "/healthz", "1")["status"].startswith("413")


def test_the_project_wsgi_application_is_guarded(settings):
    refused = wsgi_call(wsgi_application, "/voice/sessions", str(settings.API_MAX_BODY_BYTES + 1))
    assert refused["status"].startswith("413")


# --- the default cap leaves room for the largest legitimate API body --------------------------------


@pytest.mark.django_db
def test_the_largest_valid_session_body_fits_the_default_api_cap(django_user_model, settings):
    """50 variables of 1000 characters outside the BMP, escaped as JSON does by default (12 bytes each)."""
    settings.ELEVENLABS_API_KEY = ""
    variables = {f"v{i:02d}_{'n' * 59}": "\U0001f600" * MAX_DYNAMIC_VALUE_LENGTH for i in range(MAX_DYNAMIC_VARIABLES)}
    body = json.dumps(
        {"customer_id": "c" * 128, "direction": "inbound", "locale": "en-US", "dynamic_variables": variables}
    ).encode()
    assert len(body) <= settings.API_MAX_BODY_BYTES == 1024 * 1024
    api = APIClient()
    user = django_user_model.objects.create_user("alice", password="alice-pass-123")
    api.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    response = api.post("/voice/sessions", body, content_type="application/json")
    assert response.status_code == 201, response.content[:500]


def test_a_cap_ending_in_a_slash_covers_every_path_under_it():
    limits = BodyLimits(1000, {"/tools/": 10, "/tools/big/": 50, "/tools/exact": 7})
    assert limits.for_path("/tools/a") == 10
    assert limits.for_path("/tools/big/b") == 50  # the longest prefix wins
    assert limits.for_path("/tools/exact") == 7  # an exact path before any prefix
    assert limits.for_path("/tools") == 1000  # not under "/tools/"
    assert limits.for_path("/toolshed/x") == 1000
