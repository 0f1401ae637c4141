"""GET /metrics: who may scrape it, and each metric family counted where its event happens.

The suite runs in one process without PROMETHEUS_MULTIPROC_DIR, so values live in the default
registry; tests compare a value before and after (other tests count too). The multiprocess
mode, two workers summed, is tests/test_metrics_server.py's.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import responses
from django.db import OperationalError, transaction
from django.test import Client
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from elevenlabs.client import ElevenLabsError
from elevenlabs.metrics import api_operation
from elevenlabs.views import webhook_refusal_before_body
from elevenlabs.webhooks import sign
from sessions.metrics import LiveSessionsCollector
from sessions.models import Status, VoiceSession
from sessions.services import lifecycle
from tests.elevenlabs_fakes import (
    SIGNED_URL_PATH,
    add_error,
    add_fault,
    add_signed_url,
    connect_timeout,
    conversation,
)
from tests.test_config import manage
from tests.test_simulator_protocol import WEBHOOK_URL, ManualClock, open_conversation, receive_turn
from tests.test_simulator_protocol import application as simulator_application
from tests.test_simulator_protocol import communicator as simulator_communicator
from tests.test_simulator_protocol import mint as simulator_mint
from voiceagent.logging import redact
from voiceagent.metrics import prepare_multiproc_dir

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "metrics-token-for-the-suite-0123456789"


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def scrape(token: str | None = TOKEN, **headers: str):
    if token is not None:
        headers["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    return Client().get("/metrics", **headers)


def families(response) -> dict:
    return {family.name: family for family in text_string_to_metric_families(response.content.decode())}


@pytest.fixture
def metrics_token(settings):
    settings.METRICS_TOKEN = TOKEN
    return TOKEN


# --- who may scrape ---------------------------------------------------------------------------------------


def test_without_a_configured_token_the_route_does_not_exist(settings):
    settings.METRICS_TOKEN = ""
    for response in (scrape(), Client().post("/metrics"), Client().get("/metrics")):
        assert response.status_code == 404
        assert response.json() == {"error": {"code": "not_found", "message": "Not found."}}
    # Exactly what an unknown API path answers.
    assert Client().get("/api/no-such-route").json() == scrape().json()


@pytest.mark.parametrize(
    "authorization",
    [None, "", "Bearer", "Bearer ", "Bearer wrong-token-0123456789abcdef", f"Token {TOKEN}", f"Basic {TOKEN}", TOKEN],
)
def test_a_missing_or_wrong_token_is_refused_in_the_error_shape(metrics_token, authorization):
    headers = {} if authorization is None else {"HTTP_AUTHORIZATION": authorization}

    response = Client().get("/metrics", **headers)

    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Bearer realm="metrics"'
    assert response.json() == {
        "error": {
            "code": "not_authenticated",
            "message": "Send the metrics token as `Authorization: Bearer <METRICS_TOKEN>`.",
        }
    }
    assert TOKEN not in response.content.decode()


def test_a_token_that_only_starts_like_the_right_one_is_refused(metrics_token):
    assert scrape(TOKEN[:-1]).status_code == 401
    assert scrape(TOKEN + "x").status_code == 401


def test_the_right_token_scrapes_in_prometheus_text_format(metrics_token):
    response = scrape()

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=0.0.4")
    assert "no-cache" in response["Cache-Control"] or "max-age=0" in response["Cache-Control"]
    names = families(response)
    assert "voiceagent_sessions" in names
    assert "voiceagent_session_transitions" in names
    assert "voiceagent_elevenlabs_api_call_duration_seconds" in names


def test_the_scheme_word_is_case_insensitive(metrics_token):
    assert Client().get("/metrics", HTTP_AUTHORIZATION=f"bearer {TOKEN}").status_code == 200


def test_openmetrics_is_answered_when_asked_for(metrics_token):
    response = scrape(HTTP_ACCEPT="application/openmetrics-text; version=1.0.0")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/openmetrics-text")
    assert response.content.decode().rstrip().endswith("# EOF")


def test_a_login_is_not_a_token_staff_or_not(metrics_token, alice, charlie_staff):
    for user in (alice, charlie_staff):
        client = Client()
        client.force_login(user)
        assert client.get("/metrics").status_code == 401
        assert client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").status_code == 200


def test_other_methods_are_refused_once_the_token_is_configured(metrics_token):
    response = Client().post("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")

    assert response.status_code == 405
    assert response["Allow"] == "GET, HEAD"
    assert response.json()["error"]["code"] == "method_not_allowed"


def test_the_token_is_redacted_from_the_logs(metrics_token):
    assert TOKEN not in redact(f"scraped with {TOKEN}")


# --- session transitions and the live sessions gauge -----------------------------------------------------


def transitions(from_status: str, to_status: str, agent_type: str = "support") -> float:
    return sample(
        "voiceagent_session_transitions_total", from_status=from_status, to_status=to_status, agent_type=agent_type
    )


def test_each_committed_transition_is_counted_once_by_statuses_and_agent_type(django_capture_on_commit_callbacks):
    edges = [("none", "created"), ("created", "connecting"), ("connecting", "active"), ("active", "ended")]
    before = {edge: transitions(*edge, agent_type="sales") for edge in edges}

    with django_capture_on_commit_callbacks(execute=True):
        session = lifecycle.session_create(customer_id="cust-m", agent_type="sales")
        lifecycle.session_mark_connecting(
            session=session, agent_id="agent_sales_test", connection_type="websocket", simulation=False
        )
        lifecycle.session_activate(session=session, conversation_id="conv_metrics_1")
        lifecycle.session_end(session=session)
        lifecycle.session_end(session=session)  # ending twice changes nothing, counts nothing

    for edge, value in before.items():
        assert transitions(*edge, agent_type="sales") == value + 1, edge


def test_a_failure_is_counted_from_the_status_it_left(django_capture_on_commit_callbacks):
    before = transitions("created", "failed")
    with django_capture_on_commit_callbacks(execute=True):
        session = lifecycle.session_create(customer_id="cust-m")
        lifecycle.session_fail(session=session, code="boom", message="It broke.")
        lifecycle.session_fail(session=session, code="boom", message="It broke.")
    assert transitions("created", "failed") == before + 1


def test_a_transition_rolled_back_is_not_counted(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        session = lifecycle.session_create(customer_id="cust-m")
    before = transitions("created", "ended")

    with django_capture_on_commit_callbacks(execute=True), pytest.raises(RuntimeError):
        with transaction.atomic():
            lifecycle.session_end(session=session)
            raise RuntimeError("the caller's transaction fails after the end")

    assert transitions("created", "ended") == before
    assert VoiceSession.objects.get(pk=session.pk).status == Status.CREATED


def live(response, status: str, agent_type: str) -> float:
    family = families(response)["voiceagent_sessions"]
    (value,) = [s.value for s in family.samples if s.labels == {"status": status, "agent_type": agent_type}]
    return value


def in_status(status: str, agent_type: str, count: int) -> None:
    for _ in range(count):
        VoiceSession.objects.create(customer_id="cust-live", agent_type=agent_type, status=status)


def test_live_sessions_are_read_from_the_database_at_scrape_time(metrics_token):
    in_status(Status.CONNECTING, "support", 2)
    in_status(Status.ACTIVE, "support", 3)
    in_status(Status.ACTIVE, "sales", 1)
    in_status(Status.ENDED, "sales", 4)
    in_status(Status.CREATED, "sales", 5)

    response = scrape()

    assert live(response, "connecting", "support") == 2
    assert live(response, "active", "support") == 3
    assert live(response, "active", "sales") == 1
    assert live(response, "connecting", "sales") == 0  # zeros are reported: a series never vanishes
    assert {s.labels["status"] for s in families(response)["voiceagent_sessions"].samples} == {"connecting", "active"}

    VoiceSession.objects.filter(status=Status.ACTIVE, agent_type="support").update(status=Status.ENDED)
    assert live(scrape(), "active", "support") == 0


def test_the_live_gauge_costs_one_query_per_scrape(metrics_token, django_assert_num_queries):
    in_status(Status.ACTIVE, "support", 2)
    with django_assert_num_queries(1):
        assert scrape().status_code == 200


def test_without_the_database_a_scrape_still_answers_its_counters(metrics_token, monkeypatch, caplog):
    def unavailable(*args, **kwargs):
        raise OperationalError("database is locked")

    monkeypatch.setattr("django.db.backends.utils.CursorWrapper._execute", unavailable)

    response = scrape()

    assert response.status_code == 200
    names = families(response)
    assert "voiceagent_sessions" not in names
    assert "voiceagent_session_transitions" in names
    assert "live sessions not read: OperationalError" in caplog.text


def test_the_collector_reports_every_agent_type_even_with_no_sessions():
    (gauge,) = LiveSessionsCollector().collect()
    assert {(s.labels["status"], s.labels["agent_type"]) for s in gauge.samples} == {
        ("connecting", "support"),
        ("connecting", "sales"),
        ("active", "support"),
        ("active", "sales"),
    }


# --- webhook deliveries ------------------------------------------------------------------------------------


def deliveries(event_type: str, outcome: str) -> float:
    return sample("voiceagent_webhook_deliveries_total", event_type=event_type, outcome=outcome)


def deliver(settings, event_type: str, data: dict, *, secret: str | None = None):
    body = json.dumps({"type": event_type, "event_timestamp": 1780000050, "data": data}).encode()
    signature = sign(body, secret=secret or settings.ELEVENLABS_WEBHOOK_SECRET)
    return Client().post(
        "/elevenlabs/webhook", body, content_type="application/json", HTTP_ELEVENLABS_SIGNATURE=signature
    )


def test_each_delivery_is_counted_with_its_event_type_and_outcome(settings):
    session = lifecycle.session_create(customer_id="cust-w")
    lifecycle.session_mark_connecting(
        session=session, agent_id="agent_support_test", connection_type="websocket", simulation=False
    )
    lifecycle.session_activate(session=session, conversation_id="conv_metric_hook")
    transcription = conversation("conv_metric_hook")
    counted = [
        ("post_call_transcription", "processed"),
        ("post_call_transcription", "duplicate"),
        ("post_call_transcription", "unmatched"),
        ("other", "ignored"),
        ("post_call_transcription", "malformed"),
        ("unknown", "invalid_signature"),
    ]
    before = {key: deliveries(*key) for key in counted}

    assert deliver(settings, "post_call_transcription", transcription).json() == {"status": "processed"}
    assert deliver(settings, "post_call_transcription", transcription).json() == {"status": "duplicate"}
    unclaimed = {**transcription, "conversation_id": "conv_nobody_has"}
    assert deliver(settings, "post_call_transcription", unclaimed).json() == {"status": "unmatched"}
    assert deliver(settings, "a_new_event_nobody_knows", {"x": 1}).json() == {"status": "ignored"}
    malformed = {"conversation_id": "conv_metric_bad", "agent_id": "a", "transcript": "not a list"}
    assert deliver(settings, "post_call_transcription", malformed).status_code == 400
    assert deliver(settings, "post_call_transcription", transcription, secret="not-the-secret").status_code == 401

    for key in counted:
        assert deliveries(*key) == before[key] + 1, key


def test_a_delivery_refused_from_its_headers_is_counted_once(settings):
    before = deliveries("unknown", "invalid_signature")
    scope = {"method": "POST", "headers": [(b"elevenlabs-signature", b"t=1,v0=00")], "client": ("10.0.0.1", 1)}

    refusal = webhook_refusal_before_body(scope)

    assert refusal is not None and refusal.status == 401
    assert deliveries("unknown", "invalid_signature") == before + 1


# --- ElevenLabs API calls -------------------------------------------------------------------------------


def api_calls(operation: str, status: str) -> float:
    return sample("voiceagent_elevenlabs_api_calls_total", operation=operation, status=status)


def api_latency_count(operation: str) -> float:
    return sample("voiceagent_elevenlabs_api_call_duration_seconds_count", operation=operation)


def test_a_call_is_counted_once_with_its_status_and_its_latency_observed(upstream):
    from elevenlabs.client import get_client

    before = (api_calls("get_signed_url", "200"), api_latency_count("get_signed_url"))
    add_signed_url(upstream, agent_id="agent_support_test")

    get_client().get_signed_url("agent_support_test")

    assert api_calls("get_signed_url", "200") == before[0] + 1
    assert api_latency_count("get_signed_url") == before[1] + 1


def test_retries_make_one_call_counted_with_its_final_status(upstream):
    from elevenlabs.client import get_client

    before = (api_calls("get_signed_url", "200"), api_calls("get_signed_url", "503"))
    add_error(upstream, "GET", SIGNED_URL_PATH, status=503, body={"detail": "busy"})
    add_signed_url(upstream, agent_id="agent_support_test")

    get_client().get_signed_url("agent_support_test")

    assert upstream.sleep.waits  # it did retry
    assert api_calls("get_signed_url", "200") == before[0] + 1
    assert api_calls("get_signed_url", "503") == before[1]


def test_failures_are_counted_by_http_status_or_by_what_went_wrong(upstream):
    from elevenlabs.client import get_client

    client = get_client()
    client.max_attempts = 1
    before = (api_calls("get_conversation", "401"), api_calls("get_conversation", "timeout"))
    add_error(upstream, "GET", "/v1/convai/conversations/conv_a", status=401, body={"detail": {"status": "x"}})
    add_fault(upstream, "GET", "/v1/convai/conversations/conv_b", connect_timeout())

    for conversation_id in ("conv_a", "conv_b"):
        with pytest.raises(ElevenLabsError):
            client.get_conversation(conversation_id)

    assert api_calls("get_conversation", "401") == before[0] + 1
    assert api_calls("get_conversation", "timeout") == before[1] + 1


def test_a_2xx_answer_we_cannot_use_is_counted_as_invalid_response(upstream):
    from elevenlabs.client import get_client

    before = api_calls("get_signed_url", "invalid_response")
    upstream.add("GET", f"https://api.elevenlabs.io{SIGNED_URL_PATH}", json={"nothing": "useful"}, status=200)

    with pytest.raises(ElevenLabsError):
        get_client().get_signed_url("agent_support_test")

    assert api_calls("get_signed_url", "invalid_response") == before + 1


@pytest.mark.parametrize(
    ("path", "operation"),
    [
        ("/v1/convai/conversation/get-signed-url", "get_signed_url"),
        ("/v1/convai/conversation/token", "get_conversation_token"),
        ("/v1/convai/conversations", "list_conversations"),
        ("/v1/convai/conversations/conv_123", "get_conversation"),
        ("/v1/convai/conversations/conv_123/audio", "download_conversation_audio"),
        ("/v1/convai/twilio/outbound-call", "outbound_call"),
        ("/v1/convai/sip-trunk/outbound-call", "outbound_call"),
        ("/v1/something/else", "other"),
    ],
)
def test_operations_are_named_by_path_without_the_conversation_id(path, operation):
    assert api_operation(path) == operation


# --- simulator conversations ------------------------------------------------------------------------------


def simulator(metric: str, **labels: str) -> float:
    return sample(f"voiceagent_simulator_conversations_{metric}_total", **labels)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(("webhook_status", "webhook"), [(200, "delivered"), (503, "failed")])
def test_simulated_conversations_are_counted_when_they_start_and_end(webhook_status, webhook):
    before = (simulator("started", agent_type="sales"), simulator("ended", agent_type="sales", webhook=webhook))

    async def scenario():
        comm = simulator_communicator(simulator_application(ManualClock()), simulator_mint("sales")["signed_url"])
        await open_conversation(comm, text_only=True)
        await receive_turn(comm)
        await comm.disconnect(code=1000)

    with responses.RequestsMock() as rsps:
        rsps.add(responses.POST, WEBHOOK_URL, status=webhook_status)
        asyncio.run(scenario())

    assert simulator("started", agent_type="sales") == before[0] + 1
    assert simulator("ended", agent_type="sales", webhook=webhook) == before[1] + 1


# --- client log entries -----------------------------------------------------------------------------------


def client_logs(outcome: str, reason: str = "") -> float:
    return sample("voiceagent_client_log_entries_total", outcome=outcome, reason=reason)


def post_log(client, body) -> int:
    return client.post("/api/logs", json.dumps(body), content_type="application/json").status_code


def test_client_log_entries_are_counted_accepted_or_refused_with_the_reason(api, alice_api, settings, fresh_throttles):
    before = {
        "accepted": client_logs("accepted"),
        "invalid": client_logs("refused", "invalid"),
        "not_authenticated": client_logs("refused", "not_authenticated"),
        "throttled": client_logs("refused", "throttled"),
        "body_too_large": client_logs("refused", "body_too_large"),
    }
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "client_logs": "3/min"},
    }

    assert post_log(alice_api, {"level": "info", "message": "hello"}) == 201
    assert post_log(alice_api, {"level": "loud", "message": "hello"}) == 400
    assert post_log(alice_api, {"level": "info", "message": "x" * (settings.CLIENT_LOG_MAX_BYTES + 1)}) == 413
    assert post_log(alice_api, {"level": "info", "message": "one too many"}) == 429
    assert post_log(api, {"level": "info", "message": "who am I"}) == 401
    assert alice_api.get("/api/logs").status_code == 403  # reading is not an entry

    assert client_logs("accepted") == before["accepted"] + 1
    assert client_logs("refused", "invalid") == before["invalid"] + 1
    assert client_logs("refused", "body_too_large") == before["body_too_large"] + 1
    assert client_logs("refused", "throttled") == before["throttled"] + 1
    assert client_logs("refused", "not_authenticated") == before["not_authenticated"] + 1
    assert client_logs("refused", "permission_denied") == 0


# --- the multiprocess folder ------------------------------------------------------------------------------


def test_prepare_empties_the_folder_of_prometheus_files_only(tmp_path):
    folder = tmp_path / "multiproc"
    folder.mkdir()
    for name in ("counter_123.db", "histogram_4.db", "gauge_livesum_77.db", "summary_9.db"):
        (folder / name).write_bytes(b"old run")
    (folder / "notes.txt").write_text("keep me")
    (folder / "counter_abc.db.bak").write_text("not ours either")

    assert prepare_multiproc_dir(folder) == 4

    assert sorted(p.name for p in folder.iterdir()) == ["counter_abc.db.bak", "notes.txt"]


def test_prepare_makes_a_missing_folder(tmp_path):
    folder = tmp_path / "a" / "b"
    assert prepare_multiproc_dir(folder) == 0
    assert folder.is_dir()


def run_prepare(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    base = {key: value for key, value in os.environ.items() if key != "PROMETHEUS_MULTIPROC_DIR"}
    return subprocess.run(
        [sys.executable, "-m", "voiceagent.metrics", "prepare", *args],
        cwd=ROOT,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_command_serve_sh_runs_prepares_the_configured_folder(tmp_path):
    folder = tmp_path / "multiproc"
    folder.mkdir()
    (folder / "counter_1.db").write_bytes(b"old run")

    result = run_prepare(PROMETHEUS_MULTIPROC_DIR=str(folder))

    assert result.returncode == 0, result.stderr
    assert not any(folder.iterdir())


def test_the_command_does_nothing_without_a_folder(tmp_path):
    result = run_prepare()
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


def test_the_command_names_a_folder_it_cannot_make(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")

    result = run_prepare(PROMETHEUS_MULTIPROC_DIR=str(blocker / "multiproc"))

    assert result.returncode == 1
    assert result.stderr.startswith("PROMETHEUS_MULTIPROC_DIR=") and "cannot be prepared" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_multiproc_folder_that_does_not_exist_is_refused_at_start(tmp_path):
    result = manage(tmp_path, "check", DEBUG="true", PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "missing"))

    assert result.returncode != 0
    assert "PROMETHEUS_MULTIPROC_DIR=" in result.stderr and "python -m voiceagent.metrics prepare" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_short_metrics_token_is_refused_at_start(tmp_path):
    result = manage(tmp_path, "check", DEBUG="true", METRICS_TOKEN="short")

    assert result.returncode != 0
    assert "METRICS_TOKEN is shorter than 16 characters" in result.stderr
    assert "short" not in result.stderr.replace("shorter", "")
