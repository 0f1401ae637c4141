"""Hostile JSON: nesting, sizes, numbers, NUL, wrong types and loose booleans answer 400 JSON, never a 500.

The bounded loader and its scanner first, then the API bodies, then signed webhooks whose
data has the wrong shape, then the reconciler's copy of the same data.
"""

from __future__ import annotations

import json
import logging

import pytest

from elevenlabs.client import CONVERSATION_ID, ElevenLabsError
from elevenlabs.models import WebhookDelivery
from elevenlabs.postcall import post_call_problem
from sessions.models import VoiceSession
from sessions.services import lifecycle
from tests.elevenlabs_fakes import add_conversation, conversation
from tests.test_webhook_ingest import TRANSCRIPTION_DATA, active_session, deliver, envelope  # noqa: F401
from voiceagent.jsonlimits import JsonRejected, JsonShapeScanner, loads_bounded


def nested(depth: int, leaf: str = "1") -> str:
    return "[" * depth + leaf + "]" * depth


# --- the bounded loader ----------------------------------------------------------------------

TRICKY = json.dumps(
    {"a": '[[[{{"\\', "b": ["\\", '"', [[["x\\\\]]]"]]]], "c": [{"d": "}}}"}]}, separators=(",", ":")
).encode()  # depth 5, with brackets, quotes and backslashes inside strings


@pytest.mark.parametrize("chunk", [1, 2, 3, 7, 64, len(TRICKY)])
def test_the_scanner_sees_the_real_depth_whatever_the_chunks_and_strings(chunk):
    exact = JsonShapeScanner(max_depth=5)
    for start in range(0, len(TRICKY), chunk):
        exact.feed(TRICKY[start : start + chunk])
    assert exact.depth == 0

    shallow = JsonShapeScanner(max_depth=4)
    with pytest.raises(JsonRejected) as refused:
        for start in range(0, len(TRICKY), chunk):
            shallow.feed(TRICKY[start : start + chunk])
    assert refused.value.code == "json_too_deep"


def test_the_scanner_refuses_a_body_with_too_many_values():
    scanner = JsonShapeScanner(max_depth=8, max_items=1000)
    with pytest.raises(JsonRejected) as refused:
        scanner.feed(("[" + "0," * 2000 + "0]").encode())
    assert refused.value.code == "json_too_many_items"


def test_a_long_string_costs_the_scanner_no_structure():
    scanner = JsonShapeScanner(max_depth=2, max_items=10)
    scanner.feed(b'{"audio":"' + b"QUJD" * 100_000)
    scanner.feed(b"QUJD" * 100_000 + b'"}')
    assert (scanner.depth, scanner.items) == (0, 1)


def test_loads_bounded_refuses_deep_nesting_without_recursing():
    with pytest.raises(JsonRejected, match="deeper than 64 levels"):
        loads_bounded(nested(100_000), max_depth=64)
    assert loads_bounded(nested(64), max_depth=64)


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ('{"a": {"b": 18446744073709551616}}', "a.b"),
        ('{"a": [1, -9223372036854775809]}', "a[1]"),
        ('{"a": 1e400}', "a"),
        ('{"a": NaN}', None),
        ('{"a": -Infinity}', None),
    ],
)
def test_loads_bounded_keeps_numbers_in_64_bits_and_finite(text, where):
    with pytest.raises(JsonRejected) as refused:
        loads_bounded(text, max_depth=8)
    assert refused.value.code == "number_out_of_range"
    assert "64 bits" in refused.value.message
    if where:
        assert f"(at {where})" in refused.value.message
    assert loads_bounded('{"a": 9223372036854775807, "b": 1.5e300}', max_depth=8)["a"] == 2**63 - 1


def test_loads_bounded_refuses_nul_in_values_and_keys_but_not_an_escaped_backslash():
    with pytest.raises(JsonRejected, match=r"NUL.*\(at x\.y\)"):
        loads_bounded('{"x": {"y": "a\\u0000b"}}', max_depth=8)
    with pytest.raises(JsonRejected, match="NUL"):
        loads_bounded('{"k\\u0000": 1}', max_depth=8)
    assert loads_bounded('{"x": "\\\\u0000"}', max_depth=8) == {"x": "\\u0000"}


# --- API bodies --------------------------------------------------------------------------------

pytestmark = pytest.mark.django_db

VALID = {"customer_id": "cust-1"}


def post_raw(client, path: str, text: str):
    return client.post(path, text, content_type="application/json")


def test_a_deeply_nested_api_body_is_a_400_without_a_traceback(alice_api, caplog):
    body = '{"customer_id": "c", "dynamic_variables": {"a": ' + nested(5000) + "}}"
    with caplog.at_level(logging.WARNING):
        response = post_raw(alice_api, "/voice/sessions", body)
    assert response.status_code == 400
    assert "deeper than 64 levels" in response.json()["error"]["message"]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert VoiceSession.objects.count() == 0


def test_an_api_body_over_the_size_cap_is_a_413(alice_api, settings):
    settings.API_MAX_BODY_BYTES = 16 * 1024
    body = json.dumps({**VALID, "dynamic_variables": {"note": "x" * 20_000}})
    response = post_raw(alice_api, "/voice/sessions", body)
    assert response.status_code == 413
    error = response.json()["error"]
    assert (error["code"], error["limit"]) == ("body_too_large", 16 * 1024)


def test_an_integer_past_64_bits_is_named_and_called_too_large(alice_api):
    body = json.dumps({**VALID, "dynamic_variables": {"order": 2**64}})
    response = post_raw(alice_api, "/voice/sessions", body)
    assert response.status_code == 400
    detail = response.json()["error"]["message"]
    assert "dynamic_variables.order" in detail and "64 bits" in detail
    assert "not valid JSON" not in detail


@pytest.mark.parametrize(
    "body",
    [
        {**VALID, "dynamic_variables": {"name": "Ada\u0000"}},
        {**VALID, "dynamic_variables": {"na\u0000me": "Ada"}},
        {"customer_id": "cust\u0000-1"},
    ],
)
def test_nul_anywhere_in_an_api_body_is_a_400(alice_api, body):
    response = post_raw(alice_api, "/voice/sessions", json.dumps(body))
    assert response.status_code == 400
    assert "NUL" in response.json()["error"]["message"]
    assert VoiceSession.objects.count() == 0


def test_nul_in_a_client_event_is_a_400(alice_api, alice):
    session = lifecycle.session_create(user=alice, customer_id="cust-1")
    body = json.dumps({"type": "error", "message": "boom\u0000"})
    response = post_raw(alice_api, f"/voice/sessions/{session.pk}/events", body)
    assert response.status_code == 400
    assert "NUL" in response.json()["error"]["message"]


@pytest.mark.parametrize("value", [1, 0, 1.0, "1", "yes"])
def test_simulation_takes_only_true_or_false(alice_api, value):
    response = post_raw(alice_api, "/voice/sessions", json.dumps({**VALID, "simulation": value}))
    assert response.status_code == 400
    assert response.json()["error"]["fields"]["simulation"] == ["Must be true or false."]


@pytest.mark.parametrize("field", ["textOnly", "simulation"])
def test_the_prototype_start_takes_only_true_or_false(alice_api, field):
    body = {"agentType": "support", "customerId": "cust-1", field: 1}
    response = post_raw(alice_api, "/api/voice/sessions", json.dumps(body))
    assert response.status_code == 400
    assert response.json()["error"]["fields"][field] == ["Must be true or false."]


def test_the_elevenlabs_action_takes_only_true_or_false(alice_api):
    body = {"action": "start_conversation", "agentType": "support", "textOnly": 0}
    response = post_raw(alice_api, "/api/elevenlabs", json.dumps(body))
    assert response.status_code == 400
    assert response.json()["error"]["fields"]["textOnly"] == ["Must be true or false."]


def test_the_words_true_and_false_still_work(alice_api):
    response = post_raw(alice_api, "/voice/sessions", json.dumps({**VALID, "simulation": "true"}))
    assert response.status_code == 201 and response.json()["simulation"] is True


def test_an_outbound_session_needs_a_phone_number(alice_api):
    response = post_raw(alice_api, "/voice/sessions", json.dumps({**VALID, "direction": "outbound"}))
    assert response.status_code == 400
    assert response.json()["error"]["fields"] == {"phone_number": ["Required for an outbound call."]}
    ok = {**VALID, "direction": "outbound", "phone_number": "+14155550100"}
    assert post_raw(alice_api, "/voice/sessions", json.dumps(ok)).status_code == 201


def test_a_variable_name_with_a_trailing_newline_is_refused(alice_api):
    body = json.dumps({**VALID, "dynamic_variables": {"name\n": "Ada"}})
    response = post_raw(alice_api, "/voice/sessions", body)
    assert response.status_code == 400
    assert "not a variable name" in response.json()["error"]["fields"]["dynamic_variables"][0]


def test_a_conversation_id_with_a_trailing_newline_does_not_match():
    assert CONVERSATION_ID.match("conv_1")
    assert not CONVERSATION_ID.match("conv_1\n")
    assert not CONVERSATION_ID.search("x conv_1")


# --- signed webhooks -----------------------------------------------------------------------------


def transcription_with(**changes) -> dict:
    data = json.loads(json.dumps(TRANSCRIPTION_DATA))
    for dotted, value in changes.items():
        *parents, name = dotted.split("__")
        target = data
        for parent in parents:
            target = target[parent]
        target[name] = value
    return data


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"analysis__call_successful": 5}, "data.analysis.call_successful"),
        ({"analysis__transcript_summary": ["x"]}, "data.analysis.transcript_summary"),
        ({"metadata__termination_reason": 7}, "data.metadata.termination_reason"),
        ({"metadata__call_duration_secs": 1e308}, "data.metadata.call_duration_secs"),
        ({"metadata__call_duration_secs": -1}, "data.metadata.call_duration_secs"),
        ({"metadata__call_duration_secs": 2**40}, "data.metadata.call_duration_secs"),
        ({"metadata__call_duration_secs": True}, "data.metadata.call_duration_secs"),
        ({"metadata__call_duration_secs": "42"}, "data.metadata.call_duration_secs"),
        ({"status": 1}, "data.status"),
        ({"transcript": [1, 2]}, "data.transcript[0]"),
        ({"analysis": "good"}, "data.analysis"),
    ],
)
def test_wrong_types_in_a_signed_transcription_are_a_400_noted_as_malformed(deliver, change, field):  # noqa: F811
    session = active_session()
    events = session.events.count()
    response = deliver(envelope("post_call_transcription", transcription_with(**change)))
    assert response.status_code == 400
    assert field in response.json()["error"]["message"]
    delivery = WebhookDelivery.objects.get()
    assert (delivery.outcome, delivery.event_type, delivery.conversation_id) == (
        "malformed",
        "post_call_transcription",
        "conv_1",
    )
    assert field in delivery.error and delivery.payload == {}
    session.refresh_from_db()
    assert session.status == "active" and session.events.count() == events and session.transcript == []


def test_a_corrected_delivery_after_a_malformed_one_is_processed(deliver):  # noqa: F811
    active_session()
    bad = envelope("post_call_transcription", transcription_with(metadata__termination_reason=7))
    assert deliver(bad).status_code == 400
    assert deliver(envelope("post_call_transcription", TRANSCRIPTION_DATA)).json() == {"status": "processed"}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"type": "post_call_transcription", "data": {"x": ' + nested(5000).encode() + b"}}", "deeper than 64"),
        (b'{"type": "post_call_transcription", "data": {"conversation_id": "conv_1", "n": 1e400}}', "out of range"),
        (
            b'{"type": "post_call_transcription", "data": {"conversation_id": "conv_1", "n": 99999999999999999999}}',
            "64 bits",
        ),
        (b'{"type": "post_call_transcription", "data": {"conversation_id": "conv_1\\n"}}', "conversation_id"),
        (
            b'{"type": "post_call_transcription", "data": {"conversation_id": "conv_1", "status": "do\\u0000ne"}}',
            "data.status",
        ),
    ],
)
def test_hostile_json_in_a_signed_webhook_is_a_400_json_answer(deliver, body, message):  # noqa: F811
    session = active_session()
    response = deliver(body)
    assert response.status_code == 400
    assert message in response.json()["error"]["message"]
    assert WebhookDelivery.objects.get().outcome == "malformed"
    session.refresh_from_db()
    assert session.status == "active"


def test_a_webhook_holding_too_many_values_is_refused_before_parsing(deliver, settings):  # noqa: F811
    settings.ELEVENLABS_WEBHOOK_MAX_JSON_ITEMS = 1000
    active_session()
    response = deliver(envelope("post_call_transcription", {**TRANSCRIPTION_DATA, "extra": [0] * 2000}))
    assert response.status_code == 400
    assert "more than 1000 values" in response.json()["error"]["message"]


# --- the reconciler's copy of the same data ------------------------------------------------------


def test_the_webhook_and_the_reconciler_share_one_shape_check():
    assert post_call_problem(TRANSCRIPTION_DATA) is None
    assert post_call_problem({"analysis": {"call_successful": 5}}) == (
        "analysis.call_successful must be a string, not a number."
    )


def test_conversation_details_with_wrong_types_are_an_invalid_response(upstream):
    from elevenlabs.client import get_client

    add_conversation(upstream, conversation("conv_9", metadata={"call_duration_secs": -5}))
    with pytest.raises(ElevenLabsError) as failed:
        get_client().get_conversation("conv_9")
    assert failed.value.code == "invalid_response"
    assert "metadata.call_duration_secs" in failed.value.message


@pytest.mark.parametrize(
    "conversation",
    [
        {"analysis": {"call_successful": 5}, "metadata": {"termination_reason": 7, "call_duration_secs": 1e308}},
        {"analysis": "x", "metadata": [1], "transcript": "hi"},
        {"metadata": {"call_duration_secs": -1}},
        {"metadata": {"call_duration_secs": 2**40}},
    ],
)
def test_storing_post_call_data_of_the_wrong_types_drops_them_instead_of_crashing(conversation):
    session = active_session()
    stored = lifecycle.session_store_post_call(session=session, conversation=conversation, source="reconciler")
    assert stored.status == "ended"
    # Post-call data did arrive, without a usable verdict: the outcome is "unknown", not the "" of no data yet.
    assert (stored.call_successful, stored.termination_reason, stored.call_duration_secs) == ("unknown", "", None)
