"""The ElevenLabs HTTP client: endpoints, retries and their budget, error mapping, logging without secrets."""

from __future__ import annotations

import io
import logging
import socket
import threading
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
import responses
from responses import matchers

from elevenlabs import client as client_module
from elevenlabs.client import ElevenLabsClient, ElevenLabsError, get_client, parse_retry_after, reset_client
from tests.elevenlabs_fakes import (
    API_KEY,
    BASE,
    CONVERSATIONS_PATH,
    EU_BASE,
    SIGNATURE,
    SIGNED_URL_PATH,
    SIP_CALL_PATH,
    TOKEN,
    TOKEN_PATH,
    TWILIO_CALL_PATH,
    add_conversation,
    add_error,
    add_fault,
    add_outbound_call,
    add_signed_url,
    add_token,
    connect_timeout,
    connection_refused,
    connection_reset,
    conversation,
    make_client,
    read_timeout,
    validation_body,
)

AGENT = "agent_support_test"


@pytest.fixture
def rsps():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


def call_twilio(client: ElevenLabsClient) -> dict:
    return client.outbound_call(
        provider="twilio", agent_id=AGENT, agent_phone_number_id="phnum_1", to_number="+15555550100"
    )


# --- every endpoint's success -----------------------------------------------------------


def test_signed_url_sends_the_key_header_timeouts_and_agent(rsps):
    client, sleep = make_client()
    url = add_signed_url(rsps, agent_id=AGENT)

    assert client.get_signed_url(AGENT) == {"signed_url": url}

    (call,) = rsps.calls
    assert call.request.headers["xi-api-key"] == API_KEY
    assert call.request.params == {"agent_id": AGENT}  # include_conversation_id only when asked for
    assert call.request.req_kwargs["timeout"] == (3.05, 8.0)
    assert sleep.waits == []


def test_signed_url_can_ask_for_a_single_use_signature(rsps):
    client, _ = make_client()
    add_signed_url(rsps, agent_id=AGENT)

    client.get_signed_url(AGENT, include_conversation_id=True)

    assert rsps.calls[0].request.params == {"agent_id": AGENT, "include_conversation_id": "true"}


def test_conversation_token_passes_participant_name_and_returns_conversation_id(rsps):
    client, _ = make_client()
    add_token(rsps, agent_id=AGENT, conversation_id="conv_42")

    assert client.get_conversation_token(AGENT, participant_name="Alice") == {
        "token": TOKEN,
        "conversation_id": "conv_42",
    }
    assert rsps.calls[0].request.params == {"agent_id": AGENT, "participant_name": "Alice"}


def test_get_conversation_returns_the_details(rsps):
    client, _ = make_client()
    body = add_conversation(rsps, conversation("conv_abc", status="processing"))

    assert client.get_conversation("conv_abc") == body
    assert rsps.calls[0].request.url == f"{BASE}{CONVERSATIONS_PATH}/conv_abc"


@pytest.mark.parametrize("bad_id", ["", "..", "../../v1/user", "conv/1", "conv 1", "-x"])
def test_a_conversation_id_that_could_leave_its_path_is_refused_before_any_request(rsps, bad_id):
    client, _ = make_client()

    with pytest.raises(ValueError):
        client.get_conversation(bad_id)
    assert len(rsps.calls) == 0


def test_list_conversations_sends_paging_and_filters(rsps):
    client, _ = make_client()
    rsps.add("GET", BASE + CONVERSATIONS_PATH, json={"conversations": [], "next_cursor": None, "has_more": False})

    page = client.list_conversations(
        page_size=50,
        cursor="cur_1",
        agent_id=AGENT,
        call_successful="success",
        call_start_after_unix=1700000000,
        summary_mode=None,
        exclude_statuses=["failed", "initiated"],
        include_summary=True,
    )

    assert page == {"conversations": [], "next_cursor": None, "has_more": False}
    assert rsps.calls[0].request.params == {
        "page_size": "50",
        "cursor": "cur_1",
        "agent_id": AGENT,
        "call_successful": "success",
        "call_start_after_unix": "1700000000",
        "exclude_statuses": ["failed", "initiated"],
        "include_summary": "true",
    }


def test_list_conversations_refuses_a_page_size_elevenlabs_refuses(rsps):
    client, _ = make_client()
    with pytest.raises(ValueError):
        client.list_conversations(page_size=101)
    assert len(rsps.calls) == 0


def test_iter_conversations_walks_every_page_until_has_more_is_false(rsps):
    client, _ = make_client()
    pages = [
        (None, [{"conversation_id": "c1"}, {"conversation_id": "c2"}], "cur_2", True),
        ("cur_2", [{"conversation_id": "c3"}], "cur_3", True),
        ("cur_3", [{"conversation_id": "c4"}], None, False),
    ]
    for cursor, items, next_cursor, has_more in pages:
        expected = {"page_size": "100", "agent_id": AGENT} | ({"cursor": cursor} if cursor else {})
        rsps.add(
            "GET",
            BASE + CONVERSATIONS_PATH,
            json={"conversations": items, "next_cursor": next_cursor, "has_more": has_more},
            match=[matchers.query_param_matcher(expected)],
        )

    ids = [c["conversation_id"] for c in client.iter_conversations(agent_id=AGENT)]

    assert ids == ["c1", "c2", "c3", "c4"]
    assert len(rsps.calls) == 3


def test_iter_conversations_fetches_a_page_only_when_it_is_needed(rsps):
    client, _ = make_client()
    rsps.add(
        "GET",
        BASE + CONVERSATIONS_PATH,
        json={"conversations": [{"conversation_id": "c1"}], "next_cursor": "cur_2", "has_more": True},
    )

    first = next(client.iter_conversations())

    assert first == {"conversation_id": "c1"}
    assert len(rsps.calls) == 1


def test_iter_conversations_stops_on_a_cursor_that_repeats(rsps):
    client, _ = make_client()
    rsps.add(
        "GET",
        BASE + CONVERSATIONS_PATH,
        json={"conversations": [{"conversation_id": "c1"}], "next_cursor": "same", "has_more": True},
    )

    with pytest.raises(ElevenLabsError) as info:
        list(client.iter_conversations())

    assert info.value.code == "invalid_response"
    assert len(rsps.calls) == 2  # the first page, then the page that repeated the cursor


class RecordingFile(io.BytesIO):
    def __init__(self):
        super().__init__()
        self.write_sizes: list[int] = []

    def write(self, data):
        self.write_sizes.append(len(data))
        return super().write(data)


def test_audio_download_streams_every_byte_in_bounded_chunks(rsps):
    client, _ = make_client()
    audio = bytes(range(256)) * 1000 + b"tail"  # 256 004 bytes
    rsps.add("GET", f"{BASE}{CONVERSATIONS_PATH}/conv_abc/audio", body=audio, content_type="audio/mpeg")
    target = RecordingFile()

    written = client.download_conversation_audio("conv_abc", target, chunk_size=64 * 1024)

    assert written == len(audio)
    assert target.getvalue() == audio
    assert max(target.write_sizes) <= 64 * 1024
    assert len(target.write_sizes) == 4  # ceil(256 004 / 65 536): never the whole body at once
    assert rsps.calls[0].request.req_kwargs["stream"] is True


def test_audio_download_of_a_missing_conversation_writes_nothing(rsps):
    client, _ = make_client()
    add_error(
        rsps,
        "GET",
        f"{CONVERSATIONS_PATH}/conv_gone/audio",
        404,
        code="conversation_not_found",
        message="Conversation not found",
    )
    target = io.BytesIO()

    with pytest.raises(ElevenLabsError) as info:
        client.download_conversation_audio("conv_gone", target)

    assert (info.value.status, info.value.code, info.value.message) == (
        404,
        "conversation_not_found",
        "Conversation not found",
    )
    assert target.getvalue() == b""
    assert len(rsps.calls) == 1


def test_audio_download_retries_a_503_before_the_body_starts(rsps):
    client, sleep = make_client()
    add_error(rsps, "GET", f"{CONVERSATIONS_PATH}/conv_abc/audio", 503, code="system_busy", message="Busy")
    rsps.add("GET", f"{BASE}{CONVERSATIONS_PATH}/conv_abc/audio", body=b"ID3-mp3-bytes")
    target = io.BytesIO()

    assert client.download_conversation_audio("conv_abc", target) == 13
    assert target.getvalue() == b"ID3-mp3-bytes"
    assert sleep.waits == [0.5]


@pytest.mark.parametrize(
    ("provider", "path", "id_field"),
    [("twilio", TWILIO_CALL_PATH, "callSid"), ("sip_trunk", SIP_CALL_PATH, "sip_call_id")],
)
def test_outbound_call_posts_the_documented_body_to_the_provider_path(rsps, provider, path, id_field):
    client, _ = make_client()
    expected = add_outbound_call(rsps, provider=provider, conversation_id="conv_out_9")
    client_data = {"dynamic_variables": {"customer_name": "Alice"}, "user_id": "cust_1"}

    result = client.outbound_call(
        provider=provider,
        agent_id=AGENT,
        agent_phone_number_id="phnum_1",
        to_number="+15555550100",
        conversation_initiation_client_data=client_data,
    )

    assert result == expected and result[id_field] == "CA0001"
    (call,) = rsps.calls
    assert call.request.url == BASE + path
    assert call.request.headers["xi-api-key"] == API_KEY
    import json

    assert json.loads(call.request.body) == {
        "agent_id": AGENT,
        "agent_phone_number_id": "phnum_1",
        "to_number": "+15555550100",
        "conversation_initiation_client_data": client_data,
    }


def test_outbound_call_refuses_an_unknown_provider(rsps):
    client, _ = make_client()
    with pytest.raises(ValueError, match="provider"):
        client.outbound_call(provider="vonage", agent_id=AGENT, agent_phone_number_id="p", to_number="+1555")
    assert len(rsps.calls) == 0


def test_outbound_call_that_elevenlabs_did_not_place_is_an_error(rsps):
    client, _ = make_client()
    rsps.add("POST", BASE + TWILIO_CALL_PATH, json={"success": False, "message": "Number is not verified"})

    with pytest.raises(ElevenLabsError) as info:
        call_twilio(client)

    assert info.value.code == "outbound_call_failed"
    assert info.value.message == "Number is not verified"
    assert info.value.http_status == 502
    assert len(rsps.calls) == 1


def test_the_eu_residency_base_url_is_used_for_every_call(rsps):
    client, _ = make_client(base_url=EU_BASE + "/")
    url = add_signed_url(rsps, agent_id=AGENT, base=EU_BASE)
    add_conversation(rsps, conversation("conv_eu"), base=EU_BASE)
    add_outbound_call(rsps, base=EU_BASE)

    assert client.get_signed_url(AGENT)["signed_url"] == url
    client.get_conversation("conv_eu")
    call_twilio(client)

    assert [c.request.url.split("?")[0] for c in rsps.calls] == [
        EU_BASE + SIGNED_URL_PATH,
        f"{EU_BASE}{CONVERSATIONS_PATH}/conv_eu",
        EU_BASE + TWILIO_CALL_PATH,
    ]


def test_one_pooled_session_serves_every_call_and_urllib3_does_not_retry_underneath(rsps):
    client, _ = make_client()
    add_signed_url(rsps)
    add_token(rsps)
    session = client.session

    client.get_signed_url(AGENT)
    client.get_conversation_token(AGENT)

    assert client.session is session
    assert session.get_adapter(BASE).max_retries.total == 0
    assert "xi-api-key" not in session.headers  # sent per request, never left on a session


# --- transient faults on GET: retried ---------------------------------------------------


@pytest.mark.parametrize("status", [500, 502, 503, 504, 408])
def test_a_transient_status_is_retried_then_succeeds(rsps, status):
    client, sleep = make_client()
    add_error(rsps, "GET", TOKEN_PATH, status, code="server_error", message="Try again")
    add_token(rsps)

    assert client.get_conversation_token(AGENT)["token"] == TOKEN
    assert len(rsps.calls) == 2
    assert sleep.waits == [0.5]


@pytest.mark.parametrize(("status", "http_status"), [(500, 502), (502, 502), (503, 503), (504, 502)])
def test_a_5xx_that_persists_uses_every_attempt_with_exponential_waits(rsps, status, http_status):
    client, sleep = make_client(max_attempts=4)
    add_error(rsps, "GET", SIGNED_URL_PATH, status, code="server_error", message="Internal failure")

    with pytest.raises(ElevenLabsError) as info:
        client.get_signed_url(AGENT)

    assert len(rsps.calls) == 4
    assert sleep.waits == [0.5, 1.0, 2.0]
    error = info.value
    assert (error.status, error.code, error.message, error.attempts) == (status, "server_error", "Internal failure", 4)
    assert error.http_status == http_status


def test_backoff_waits_carry_bounded_jitter():
    client, sleep = make_client(jitter=None)  # the real jitter
    with responses.RequestsMock() as rsps:
        add_error(rsps, "GET", TOKEN_PATH, 503)
        with pytest.raises(ElevenLabsError):
            client.get_conversation_token(AGENT)

    assert len(sleep.waits) == 3
    for wait, base in zip(sleep.waits, [0.5, 1.0, 2.0], strict=True):
        assert base <= wait <= base + ElevenLabsClient.BACKOFF_JITTER


def test_a_5xx_html_page_without_json_still_gives_a_clear_message(rsps):
    client, _ = make_client(max_attempts=1)
    add_error(rsps, "GET", TOKEN_PATH, 502, body="<html><h1>502 Bad Gateway</h1></html>")

    with pytest.raises(ElevenLabsError) as info:
        client.get_conversation_token(AGENT)

    assert info.value.code == "upstream_error"
    assert info.value.upstream_code is None
    assert info.value.message == "ElevenLabs answered HTTP 502 Bad Gateway."


def test_429_without_retry_after_backs_off_and_maps_to_503(rsps):
    client, sleep = make_client(max_attempts=3)
    add_error(
        rsps, "GET", SIGNED_URL_PATH, 429, code="too_many_concurrent_requests", message="Too many concurrent requests"
    )

    with pytest.raises(ElevenLabsError) as info:
        client.get_signed_url(AGENT)

    assert len(rsps.calls) == 3
    assert sleep.waits == [0.5, 1.0]
    assert info.value.code == "too_many_concurrent_requests"
    assert info.value.http_status == 503
    assert info.value.as_dict() == {
        "code": "too_many_concurrent_requests",
        "message": "Too many concurrent requests",
        "upstream_status": 429,
        "upstream_code": "too_many_concurrent_requests",
    }


def test_429_retry_after_in_seconds_is_honoured(rsps):
    client, sleep = make_client()
    add_error(rsps, "GET", SIGNED_URL_PATH, 429, code="system_busy", headers={"Retry-After": "3"})
    add_signed_url(rsps)

    client.get_signed_url(AGENT)

    assert sleep.waits == [3.0]
    assert len(rsps.calls) == 2


def test_429_retry_after_as_an_http_date_is_honoured(rsps):
    client, sleep = make_client()
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=4), usegmt=True)
    add_error(rsps, "GET", SIGNED_URL_PATH, 429, code="system_busy", headers={"Retry-After": when})
    add_signed_url(rsps)

    client.get_signed_url(AGENT)

    (wait,) = sleep.waits
    assert 2.0 <= wait <= 4.0  # the date has one-second resolution
    assert len(rsps.calls) == 2


def test_a_long_retry_after_is_capped(rsps):
    client, sleep = make_client(retry_budget=100.0)
    add_error(rsps, "GET", SIGNED_URL_PATH, 503, headers={"Retry-After": "120"})
    add_signed_url(rsps)

    client.get_signed_url(AGENT)

    assert sleep.waits == [ElevenLabsClient.RETRY_AFTER_CAP]


def test_a_retry_after_beyond_the_budget_gives_up_at_once(rsps):
    client, sleep = make_client(retry_budget=10.0)
    add_error(rsps, "GET", SIGNED_URL_PATH, 429, code="system_busy", message="Busy", headers={"Retry-After": "15"})

    with pytest.raises(ElevenLabsError) as info:
        client.get_signed_url(AGENT)

    assert sleep.waits == []
    assert len(rsps.calls) == 1
    assert info.value.retry_after == 15.0
    assert info.value.attempts == 1


def test_the_budget_stops_retries_before_max_attempts(rsps):
    client, sleep = make_client(max_attempts=10, retry_budget=2.0)
    add_error(rsps, "GET", TOKEN_PATH, 503)

    with pytest.raises(ElevenLabsError) as info:
        client.get_conversation_token(AGENT)

    # 0.5 then 1.0 fit in 2 s; the next wait (2.0) would pass it.
    assert sleep.waits == [0.5, 1.0]
    assert len(rsps.calls) == 3
    assert info.value.attempts == 3


def test_the_default_budget_allows_the_default_attempts():
    client, sleep = make_client(max_attempts=4, retry_budget=10.0, jitter=None)
    with responses.RequestsMock() as rsps:
        add_error(rsps, "GET", TOKEN_PATH, 500)
        with pytest.raises(ElevenLabsError):
            client.get_conversation_token(AGENT)
        assert len(rsps.calls) == 4
    assert sum(sleep.waits) <= 10.0


def test_a_zero_budget_means_no_retry(rsps):
    client, sleep = make_client(retry_budget=0.0)
    add_error(rsps, "GET", TOKEN_PATH, 503)

    with pytest.raises(ElevenLabsError):
        client.get_conversation_token(AGENT)

    assert len(rsps.calls) == 1 and sleep.waits == []


@pytest.mark.parametrize(
    ("fault", "code", "http_status"),
    [
        (connect_timeout, "timeout", 504),
        (read_timeout, "timeout", 504),
        (connection_reset, "connection_error", 503),
        (connection_refused, "connection_error", 503),
    ],
)
def test_transport_faults_on_a_get_are_retried_then_reported(rsps, fault, code, http_status):
    client, sleep = make_client(max_attempts=3)
    add_fault(rsps, "GET", SIGNED_URL_PATH, fault())

    with pytest.raises(ElevenLabsError) as info:
        client.get_signed_url(AGENT)

    assert len(rsps.calls) == 3
    assert sleep.waits == [0.5, 1.0]
    error = info.value
    assert (error.code, error.status, error.http_status, error.attempts) == (code, None, http_status, 3)
    assert "api.elevenlabs.io" in error.message and "agent_id" not in error.message
    assert error.as_dict()["upstream_status"] is None


def test_a_transport_fault_then_success_returns_the_answer(rsps):
    client, sleep = make_client()
    add_fault(rsps, "GET", SIGNED_URL_PATH, connection_reset())
    add_fault(rsps, "GET", SIGNED_URL_PATH, read_timeout())
    url = add_signed_url(rsps)

    assert client.get_signed_url(AGENT)["signed_url"] == url
    assert sleep.waits == [0.5, 1.0]


def test_max_attempts_of_one_means_a_single_try(rsps):
    client, sleep = make_client(max_attempts=1)
    add_error(rsps, "GET", TOKEN_PATH, 503)

    with pytest.raises(ElevenLabsError):
        client.get_conversation_token(AGENT)

    assert len(rsps.calls) == 1 and sleep.waits == []


# --- faults that are final: tried once, no other endpoint ---------------------------------------


def test_invalid_json_is_an_invalid_response_and_not_retried(rsps):
    client, sleep = make_client()
    rsps.add("GET", BASE + SIGNED_URL_PATH, body="{not json", content_type="application/json")

    with pytest.raises(ElevenLabsError) as info:
        client.get_signed_url(AGENT)

    error = info.value
    assert (error.code, error.status, error.http_status, error.attempts) == ("invalid_response", 200, 502, 1)
    assert len(rsps.calls) == 1 and sleep.waits == []


@pytest.mark.parametrize("body", [[{"signed_url": "x"}], {"url": "wss://x"}, {"signed_url": ""}])
def test_an_answer_without_the_credential_is_an_invalid_response(rsps, body):
    client, _ = make_client()
    rsps.add("GET", BASE + SIGNED_URL_PATH, json=body)

    with pytest.raises(ElevenLabsError) as info:
        client.get_signed_url(AGENT)

    assert info.value.code == "invalid_response"


def test_a_conversation_list_without_conversations_is_an_invalid_response(rsps):
    client, _ = make_client()
    rsps.add("GET", BASE + CONVERSATIONS_PATH, json={"items": []})

    with pytest.raises(ElevenLabsError) as info:
        client.list_conversations()

    assert info.value.code == "invalid_response"


def test_401_invalid_api_key_is_final_and_keeps_elevenlabs_message(rsps):
    client, sleep = make_client()
    add_error(rsps, "GET", SIGNED_URL_PATH, 401, code="invalid_api_key", message="Invalid API key")

    with pytest.raises(ElevenLabsError) as info:
        client.get_signed_url(AGENT)

    error = info.value
    assert (error.status, error.code, error.message, error.attempts) == (401, "invalid_api_key", "Invalid API key", 1)
    assert error.http_status == 502
    assert str(error) == "Invalid API key"
    assert len(rsps.calls) == 1 and sleep.waits == []


def test_404_agent_not_found_is_final_and_no_other_endpoint_is_tried(rsps):
    client, sleep = make_client()
    add_error(rsps, "GET", TOKEN_PATH, 404, code="agent_not_found", message="Agent agent_x not found")

    with pytest.raises(ElevenLabsError) as info:
        client.get_conversation_token("agent_x")

    assert (info.value.status, info.value.code, info.value.message) == (
        404,
        "agent_not_found",
        "Agent agent_x not found",
    )
    assert info.value.http_status == 502
    assert [c.request.url.split("?")[0] for c in rsps.calls] == [BASE + TOKEN_PATH]
    assert sleep.waits == []


def test_422_fastapi_validation_error_names_the_field(rsps):
    client, _ = make_client()
    body = validation_body("Field required", ["body", "to_number"])
    body["detail"].append({"loc": ["body", "agent_id"], "msg": "Field required", "type": "missing"})
    add_error(rsps, "POST", TWILIO_CALL_PATH, 422, body=body)

    with pytest.raises(ElevenLabsError) as info:
        call_twilio(client)

    error = info.value
    assert (error.status, error.code, error.upstream_code) == (422, "validation_error", "missing")
    assert error.message == "Field required at body.to_number (and 1 more)"
    assert error.http_status == 502
    assert len(rsps.calls) == 1


@pytest.mark.parametrize("status", [400, 403, 405, 409])
def test_other_4xx_are_never_retried(rsps, status):
    client, sleep = make_client()
    add_error(rsps, "GET", f"{CONVERSATIONS_PATH}/conv_1", status, code="bad", message="No")

    with pytest.raises(ElevenLabsError) as info:
        client.get_conversation("conv_1")

    assert info.value.status == status
    assert len(rsps.calls) == 1 and sleep.waits == []


def test_a_redirect_is_not_followed_so_the_key_goes_nowhere_else(rsps):
    client, _ = make_client()
    rsps.add("GET", BASE + TOKEN_PATH, status=302, headers={"Location": "https://elsewhere.example/steal"})

    with pytest.raises(ElevenLabsError) as info:
        client.get_conversation_token(AGENT)

    assert (info.value.code, info.value.status, info.value.http_status) == ("invalid_response", 302, 502)
    assert len(rsps.calls) == 1


# --- the outbound POST is never sent twice ---------------------------------------------------


@pytest.mark.parametrize(
    "register",
    [
        lambda r: add_fault(r, "POST", TWILIO_CALL_PATH, read_timeout()),
        lambda r: add_fault(r, "POST", TWILIO_CALL_PATH, connection_reset()),
        lambda r: add_error(r, "POST", TWILIO_CALL_PATH, 500, code="server_error"),
        lambda r: add_error(r, "POST", TWILIO_CALL_PATH, 502),
        lambda r: add_error(r, "POST", TWILIO_CALL_PATH, 503, headers={"Retry-After": "1"}),
        lambda r: add_error(r, "POST", TWILIO_CALL_PATH, 504),
        lambda r: add_error(r, "POST", TWILIO_CALL_PATH, 429, code="too_many_concurrent_requests"),
    ],
    ids=["read-timeout", "reset", "500", "502", "503", "504", "429"],
)
def test_outbound_call_is_not_retried_when_it_may_have_reached_elevenlabs(rsps, register):
    client, sleep = make_client()
    register(rsps)
    add_outbound_call(rsps)  # would be answered if the client dared a second POST

    with pytest.raises(ElevenLabsError) as info:
        call_twilio(client)

    assert len(rsps.calls) == 1
    assert sleep.waits == []
    assert info.value.attempts == 1


@pytest.mark.parametrize("fault", [connection_refused, connect_timeout])
def test_outbound_call_is_retried_when_the_request_surely_never_left(rsps, fault):
    client, sleep = make_client()
    add_fault(rsps, "POST", SIP_CALL_PATH, fault())
    expected = add_outbound_call(rsps, provider="sip_trunk")

    result = client.outbound_call(
        provider="sip_trunk", agent_id=AGENT, agent_phone_number_id="phnum_1", to_number="+15555550100"
    )

    assert result == expected
    assert len(rsps.calls) == 2
    assert sleep.waits == [0.5]


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_a_real_refused_connection_counts_as_never_sent():
    """Against a real closed port, not a fake: requests' own exception must read as 'never left'."""
    client, sleep = make_client(base_url=f"http://127.0.0.1:{_closed_port()}", max_attempts=3)

    with pytest.raises(ElevenLabsError) as info:
        call_twilio(client)

    assert (info.value.code, info.value.attempts, info.value.http_status) == ("connection_error", 3, 503)
    assert sleep.waits == [0.5, 1.0]


def test_a_real_read_timeout_on_the_outbound_post_sends_it_once():
    """A server that takes the POST and never answers: the client must not dial again."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    server.settimeout(5)
    requests_seen: list[bytes] = []
    held: list[socket.socket] = []
    done = threading.Event()

    def accept_and_stay_silent():
        while not done.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                return
            held.append(conn)
            requests_seen.append(conn.recv(65536))

    thread = threading.Thread(target=accept_and_stay_silent, daemon=True)
    thread.start()
    client, sleep = make_client(base_url=f"http://127.0.0.1:{server.getsockname()[1]}", read_timeout=0.2)
    try:
        with pytest.raises(ElevenLabsError) as info:
            call_twilio(client)
    finally:
        done.set()
        server.close()
        for conn in held:
            conn.close()
        thread.join(timeout=2)

    assert info.value.code == "timeout" and info.value.http_status == 504
    assert len(requests_seen) == 1 and requests_seen[0].startswith(b"POST /v1/convai/twilio/outbound-call")
    assert sleep.waits == []


# --- logging: every call, never a secret ----------------------------------------------------


def test_every_call_is_logged_without_any_secret(rsps, caplog):
    caplog.set_level(logging.DEBUG)
    client, _ = make_client()
    add_error(rsps, "GET", SIGNED_URL_PATH, 503, code="system_busy", message="Busy")
    signed_url = add_signed_url(rsps)
    add_token(rsps)
    add_error(rsps, "GET", f"{CONVERSATIONS_PATH}/conv_1", 401, code="invalid_api_key", message="Invalid API key")

    assert client.get_signed_url(AGENT)["signed_url"] == signed_url
    assert client.get_conversation_token(AGENT, participant_name="Alice")["token"] == TOKEN
    with pytest.raises(ElevenLabsError):
        client.get_conversation("conv_1")

    records = [r for r in caplog.records if r.name == "voiceagent.elevenlabs"]
    lines = [r.getMessage() for r in records]
    assert lines[0].startswith(
        "elevenlabs GET /v1/convai/conversation/get-signed-url attempt=1 failed code=system_busy"
    )
    assert "outcome=ok status=200 attempts=2 latency_ms=" in lines[1]
    assert lines[1].startswith("elevenlabs GET /v1/convai/conversation/get-signed-url ")
    assert lines[2].startswith("elevenlabs GET /v1/convai/conversation/token outcome=ok status=200 attempts=1")
    assert lines[3].startswith("elevenlabs GET /v1/convai/conversations/conv_1 outcome=error code=invalid_api_key")
    assert "attempts=1" in lines[3] and "latency_ms=" in lines[3]
    assert records[3].levelno == logging.WARNING
    everything = caplog.text + "\n".join(lines)
    for secret in (API_KEY, SIGNATURE, TOKEN, signed_url, "conversation_signature"):
        assert secret not in everything
    assert "?" not in "\n".join(lines)  # no query string at all


def test_an_upstream_message_that_echoes_the_key_is_scrubbed(rsps, caplog):
    caplog.set_level(logging.DEBUG)
    client, _ = make_client()
    add_error(rsps, "GET", TOKEN_PATH, 401, code="invalid_api_key", message=f"Invalid API key: {API_KEY}")

    with pytest.raises(ElevenLabsError) as info:
        client.get_conversation_token(AGENT)

    assert API_KEY not in info.value.message and API_KEY not in str(info.value.as_dict())
    assert info.value.message == "Invalid API key: [REDACTED]"
    assert API_KEY not in caplog.text


def test_the_client_repr_does_not_show_the_key():
    client, _ = make_client()
    assert API_KEY not in repr(client) and API_KEY not in str(vars(client).get("session", ""))


def test_an_audio_download_is_logged_with_its_size(rsps, caplog):
    caplog.set_level(logging.INFO, logger="voiceagent.elevenlabs")
    client, _ = make_client()
    rsps.add("GET", f"{BASE}{CONVERSATIONS_PATH}/conv_abc/audio", body=b"x" * 1000)

    client.download_conversation_audio("conv_abc", io.BytesIO())

    (record,) = [r for r in caplog.records if r.name == "voiceagent.elevenlabs"]
    assert "GET /v1/convai/conversations/conv_abc/audio outcome=ok status=200 attempts=1" in record.getMessage()
    assert record.getMessage().endswith("bytes=1000")


# --- the error type --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "http_status"),
    [
        ({"status": 400, "code": "bad_request"}, 502),
        ({"status": 401, "code": "invalid_api_key"}, 502),
        ({"status": 404, "code": "agent_not_found"}, 502),
        ({"status": 422, "code": "validation_error"}, 502),
        ({"status": 429, "code": "system_busy"}, 503),
        ({"status": 500, "code": "upstream_error"}, 502),
        ({"status": 503, "code": "upstream_error"}, 503),
        ({"status": 200, "code": "invalid_response"}, 502),
        ({"status": None, "code": "timeout"}, 504),
        ({"status": None, "code": "connection_error"}, 503),
        ({"status": None, "code": "not_configured"}, 503),
    ],
)
def test_http_status_maps_upstream_failures_to_what_our_api_answers(kwargs, http_status):
    assert ElevenLabsError("m", **kwargs).http_status == http_status


def test_parse_retry_after_reads_seconds_and_http_dates():
    now = datetime(2026, 12, 1, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after("7", now=now) == 7.0
    assert parse_retry_after(" 1.5 ", now=now) == 1.5
    assert parse_retry_after("Tue, 01 Dec 2026 12:00:04 GMT", now=now) == 4.0
    assert parse_retry_after("Tue, 01 Dec 2026 11:00:00 GMT", now=now) == 0.0  # in the past: now
    for unusable in (None, "", "soon", "-3", "nan", "inf"):
        assert parse_retry_after(unusable, now=now) is None


# --- settings and the process-wide client ------------------------------------------------------


@pytest.fixture
def fresh_client():
    reset_client()
    yield
    reset_client()


def test_from_settings_reads_every_elevenlabs_setting(settings):
    settings.ELEVENLABS_BASE_URL = EU_BASE
    settings.ELEVENLABS_CONNECT_TIMEOUT = 2.0
    settings.ELEVENLABS_READ_TIMEOUT = 5.0
    settings.ELEVENLABS_MAX_ATTEMPTS = 3
    settings.ELEVENLABS_RETRY_BUDGET_SECONDS = 6.0

    client = ElevenLabsClient.from_settings()

    assert (client.base_url, client.connect_timeout, client.read_timeout) == (EU_BASE, 2.0, 5.0)
    assert (client.max_attempts, client.retry_budget) == (3, 6.0)
    assert client._headers["xi-api-key"] == settings.ELEVENLABS_API_KEY


def test_from_settings_without_a_key_is_a_clear_not_configured_error(settings):
    settings.ELEVENLABS_API_KEY = ""

    with pytest.raises(ElevenLabsError) as info:
        ElevenLabsClient.from_settings()

    assert (info.value.code, info.value.http_status, info.value.attempts) == ("not_configured", 503, 0)


def test_get_client_is_cached_per_process_and_can_be_reset(fresh_client):
    first = get_client()
    assert get_client() is first

    reset_client()

    assert get_client() is not first


def test_changing_an_elevenlabs_setting_drops_the_cached_client(fresh_client, settings):
    first = get_client()

    settings.ELEVENLABS_BASE_URL = EU_BASE

    second = get_client()
    assert second is not first and second.base_url == EU_BASE


def test_a_forked_process_builds_its_own_client(fresh_client, monkeypatch):
    first = get_client()
    monkeypatch.setattr(client_module.os, "getpid", lambda: -1)

    assert get_client() is not first


def test_the_constructor_refuses_unusable_arguments():
    good = dict(api_key="k", base_url=BASE, connect_timeout=1, read_timeout=1, max_attempts=1, retry_budget=0)
    for bad in ({"api_key": ""}, {"base_url": "api.elevenlabs.io"}, {"read_timeout": 0}, {"max_attempts": 0}):
        with pytest.raises(ValueError):
            ElevenLabsClient(**(good | bad))


class _StallingBody(io.RawIOBase):
    """A body that delivers some bytes, then times out like a stalled socket."""

    def __init__(self, data: bytes):
        self._data = data

    def readable(self):
        return True

    def readinto(self, buffer):
        if not self._data:
            raise TimeoutError("timed out")
        size = min(len(buffer), len(self._data))
        buffer[:size] = self._data[:size]
        self._data = self._data[size:]
        return size


def test_audio_download_that_stalls_mid_body_is_a_timeout_and_not_retried(rsps, caplog):
    caplog.set_level(logging.INFO, logger="voiceagent.elevenlabs")
    client, sleep = make_client()
    rsps.add(
        "GET",
        f"{BASE}{CONVERSATIONS_PATH}/conv_abc/audio",
        body=io.BufferedReader(_StallingBody(b"y" * 100_000)),
        auto_calculate_content_length=False,
    )
    target = io.BytesIO()

    with pytest.raises(ElevenLabsError) as info:
        client.download_conversation_audio("conv_abc", target, chunk_size=16 * 1024)

    assert (info.value.code, info.value.http_status, info.value.attempts) == ("timeout", 504, 1)
    assert len(rsps.calls) == 1 and sleep.waits == []
    assert 0 < len(target.getvalue()) <= 100_000
    assert "outcome=error code=timeout" in caplog.text
