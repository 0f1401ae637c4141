"""POST /elevenlabs/tools/<name>: the agent calls our server mid-conversation.

Finding the session (conversation id, else call sid, binding on first sight), the two tools,
their timeline rows, authentication and every refusal.
"""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.db import OperationalError
from django.db.backends.utils import CursorWrapper
from django.test import Client
from django.utils import timezone

from elevenlabs import tools as tools_module
from sessions.models import Callback, SessionEvent, VoiceSession
from sessions.services import lifecycle
from tests.test_conversation_init import CALL, TOKEN, answered

pytestmark = pytest.mark.django_db

CALL_SID = CALL["call_sid"]


def call_tool(name: str, body: dict | str, *, token: str | None = TOKEN):
    headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"} if token is not None else {}
    data = body if isinstance(body, str) else json.dumps(body)
    return Client().post(f"/elevenlabs/tools/{name}", data=data, content_type="application/json", **headers)


def system(conversation_id: str = "conv_call_1", call_sid: str = CALL_SID) -> dict:
    """What ElevenLabs fills in from its system variables."""
    return {"conversation_id": conversation_id, "call_sid": call_sid, "caller_id": CALL["caller_id"]}


def inbound_session() -> VoiceSession:
    answered()
    return VoiceSession.objects.get(call_sid=CALL_SID)


def ended_call(customer_id: str, *, title: str, summary: str, outcome: str = "success", ago_days: int = 1):
    session = lifecycle.session_create(customer_id=customer_id, agent_type="sales")
    lifecycle.session_mark_connecting(
        session=session, agent_id="agent_sales_test", connection_type="websocket", simulation=False
    )
    conversation = {
        "analysis": {"call_successful": outcome, "call_summary_title": title, "transcript_summary": summary},
        "metadata": {},
    }
    lifecycle.session_store_post_call(session=session, conversation=conversation, source="webhook")
    VoiceSession.objects.filter(pk=session.pk).update(ended_at=timezone.now() - timedelta(days=ago_days))
    return session


def tool_rows(session: VoiceSession) -> list[dict]:
    return list(session.events.filter(kind="tool_call").values_list("payload", flat=True))


def in_an_hour() -> str:
    return (timezone.now() + timedelta(hours=1)).replace(microsecond=0).isoformat()


# --- Finding the session ----------------------------------------------------------------------------


def test_the_first_tool_call_binds_the_inbound_call_s_conversation_and_makes_it_active():
    session = inbound_session()

    response = call_tool("customer_history", system())

    assert response.status_code == 200, response.content
    session.refresh_from_db()
    assert session.conversation_id == "conv_call_1"
    assert session.status == "active" and session.started_at is not None
    bound = session.events.get(kind="conversation_bound")
    assert bound.payload == {"conversation_id": "conv_call_1", "source": "tool_call"}


def test_later_calls_find_the_session_by_its_conversation():
    session = inbound_session()
    call_tool("customer_history", system())

    response = call_tool("customer_history", {"conversation_id": "conv_call_1"})

    assert response.status_code == 200
    assert len(tool_rows(session)) == 2
    assert session.events.filter(kind="conversation_bound").count() == 1


def test_a_web_session_bound_at_start_is_found_by_its_conversation():
    session = lifecycle.session_create(customer_id="cust-web")
    lifecycle.session_mark_connecting(
        session=session,
        agent_id="agent_support_test",
        connection_type="websocket",
        simulation=False,
        conversation_id="conv_web",
    )
    response = call_tool("customer_history", {"conversation_id": "conv_web"})
    assert response.status_code == 200 and response.json()["customer_id"] == "cust-web"
    assert len(tool_rows(session)) == 1


def test_an_unknown_conversation_and_call_is_404():
    response = call_tool("customer_history", system("conv_nobody", "CAnobody"))
    assert response.status_code == 404
    error = response.json()["error"]
    assert error["code"] == "session_not_found" and "conv_nobody" in error["message"]


def test_a_call_sid_whose_session_holds_another_conversation_is_409():
    session = inbound_session()
    call_tool("customer_history", system("conv_call_1"))

    response = call_tool("customer_history", system("conv_intruder"))

    assert response.status_code == 409 and response.json()["error"]["code"] == "conversation_mismatch"
    session.refresh_from_db()
    assert session.conversation_id == "conv_call_1"


def test_a_conversation_whose_post_call_data_waited_since_before_the_call_is_not_taken():
    from elevenlabs.models import WebhookDelivery

    WebhookDelivery.objects.create(
        event_type="post_call_transcription",
        conversation_id="conv_old",
        outcome="unmatched",
        body_sha256="0" * 64,
        body_bytes=10,
        payload={},
    )
    session = inbound_session()

    response = call_tool("customer_history", system("conv_old"))

    assert response.status_code == 409 and response.json()["error"]["code"] == "conversation_claimed"
    session.refresh_from_db()
    assert session.conversation_id is None


# --- customer_history -------------------------------------------------------------------------------


def test_customer_history_lists_the_caller_s_last_five_ended_calls_newest_first():
    for day in range(7):
        ended_call("+15551234567", title=f"Call {day}", summary=f"Summary {day}", ago_days=day + 1)
    ended_call("cust-someone-else", title="Not theirs", summary="-")
    inbound_session()

    body = call_tool("customer_history", system()).json()

    assert body["customer_id"] == "+15551234567"
    assert [call["summary_title"] for call in body["calls"]] == [f"Call {day}" for day in range(5)]
    first = body["calls"][0]
    assert set(first) == {"date", "agent", "outcome", "summary_title", "summary"}
    assert first["agent"] == "sales" and first["outcome"] == "success" and first["summary"] == "Summary 0"


def test_customer_history_leaves_out_the_current_call_and_open_ones():
    session = inbound_session()
    lifecycle.session_create(customer_id="+15551234567")  # open, not ended
    call_tool("customer_history", system())
    lifecycle.session_end(session=session)

    body = call_tool("customer_history", {"conversation_id": "conv_call_1"}).json()

    assert body["calls"] == []


def test_customer_history_of_a_named_customer():
    ended_call("cust-42", title="Billing", summary="Refund issued.", outcome="failure")
    inbound_session()

    body = call_tool("customer_history", {**system(), "customer_id": "cust-42"}).json()

    assert body["customer_id"] == "cust-42"
    assert [(c["summary_title"], c["outcome"]) for c in body["calls"]] == [("Billing", "failure")]


def test_customer_history_is_on_the_timeline_with_its_arguments_result_and_time():
    ended_call("+15551234567", title="Earlier", summary="Earlier call.")
    session = inbound_session()

    result = call_tool("customer_history", system()).json()

    [row] = tool_rows(session)
    assert row["tool"] == "customer_history"
    assert row["arguments"] == {}  # the system variables are not the tool's arguments
    assert row["result"] == result
    assert isinstance(row["ms"], float) and row["ms"] >= 0
    assert "error" not in row


def test_customer_history_with_a_bad_customer_id_is_400_and_on_the_timeline():
    session = inbound_session()

    response = call_tool("customer_history", {**system(), "customer_id": "no spaces allowed"})

    assert response.status_code == 400
    assert "customer_id" in response.json()["error"]["fields"]
    [row] = tool_rows(session)
    assert row["error"]["code"] == "invalid" and "customer_id" in row["error"]["fields"]
    assert row["arguments"] == {"customer_id": "no spaces allowed"}


# --- schedule_callback ------------------------------------------------------------------------------


def test_schedule_callback_records_an_open_callback_for_the_caller():
    session = inbound_session()
    when = in_an_hour()

    response = call_tool("schedule_callback", {**system(), "when": when, "reason": "Check the refund arrived."})

    assert response.status_code == 200, response.content
    callback = Callback.objects.get()
    assert response.json() == {
        "scheduled": True,
        "callback_id": callback.pk,
        "when": callback.requested_time.isoformat(),
    }
    assert callback.session == session
    assert callback.customer_id == "+15551234567" and callback.phone_number == "+15551234567"
    assert callback.requested_time.isoformat() == when
    assert callback.reason == "Check the refund arrived." and callback.status == "open"
    [row] = tool_rows(session)
    assert row["arguments"] == {"when": when, "reason": "Check the refund arrived."}
    assert row["result"]["callback_id"] == callback.pk


def test_schedule_callback_keeps_the_offset_s_moment():
    inbound_session()
    when = (timezone.now() + timedelta(days=1)).astimezone(timezone.get_fixed_timezone(-300))
    call_tool("schedule_callback", {**system(), "when": when.isoformat(), "reason": "r"})
    assert abs(Callback.objects.get().requested_time - when) < timedelta(seconds=1)


def test_schedule_callback_accepts_z_for_utc():
    inbound_session()
    when = (timezone.now() + timedelta(days=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert call_tool("schedule_callback", {**system(), "when": when, "reason": "r"}).status_code == 200


def test_schedule_callback_to_another_number():
    inbound_session()
    body = {**system(), "when": in_an_hour(), "reason": "r", "phone_number": "+442071234567"}
    assert call_tool("schedule_callback", body).status_code == 200
    assert Callback.objects.get().phone_number == "+442071234567"


def test_schedule_callback_for_a_withheld_caller_needs_a_number():
    answered({**CALL, "caller_id": "anonymous"})
    session = VoiceSession.objects.get()

    response = call_tool("schedule_callback", {**system(), "when": in_an_hour(), "reason": "r"})

    assert response.status_code == 400
    assert "withheld" in response.json()["error"]["fields"]["phone_number"][0]
    assert not Callback.objects.exists()
    assert tool_rows(session)[0]["error"]["fields"] == {
        "phone_number": ["The caller's number is withheld: ask for a number to call back."]
    }


@pytest.mark.parametrize(
    "arguments, field",
    [
        ({"reason": "r"}, "when"),
        ({"when": "tomorrow at noon", "reason": "r"}, "when"),
        ({"when": "2030-01-15T14:30:00", "reason": "r"}, "when"),  # no offset
        ({"when": "2030-02-30T14:30:00+00:00", "reason": "r"}, "when"),  # no such day
        ({"when": "2020-01-15T14:30:00+00:00", "reason": "r"}, "when"),  # the past
        ({"when": "2099-01-15T14:30:00+00:00", "reason": "r"}, "when"),  # beyond a year
        ({"when": 1780000000, "reason": "r"}, "when"),
        ({"when": "IN_AN_HOUR"}, "reason"),
        ({"when": "IN_AN_HOUR", "reason": ""}, "reason"),
        ({"when": "IN_AN_HOUR", "reason": "x" * 501}, "reason"),
        ({"when": "IN_AN_HOUR", "reason": "r", "phone_number": "555-1234"}, "phone_number"),
    ],
)
def test_schedule_callback_with_bad_arguments_is_400_naming_the_field(arguments, field):
    session = inbound_session()
    arguments = {k: in_an_hour() if v == "IN_AN_HOUR" else v for k, v in arguments.items()}

    response = call_tool("schedule_callback", {**system(), **arguments})

    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] == "invalid" and field in error["fields"], error
    assert not Callback.objects.exists()
    [row] = tool_rows(session)
    assert field in row["error"]["fields"]


def test_a_naive_time_is_refused_with_a_message_that_says_why():
    inbound_session()
    response = call_tool("schedule_callback", {**system(), "when": "2030-01-15T14:30:00", "reason": "r"})
    assert "offset" in response.json()["error"]["fields"]["when"][0]


# --- Refusals ---------------------------------------------------------------------------------------


def test_an_unknown_tool_is_404_listing_the_tools():
    inbound_session()
    response = call_tool("delete_everything", system())
    assert response.status_code == 404
    error = response.json()["error"]
    assert error["code"] == "unknown_tool"
    assert error["tools"] == ["customer_history", "schedule_callback"]
    assert "customer_history" in error["message"]


def test_a_tool_call_without_a_conversation_id_is_400():
    inbound_session()
    response = call_tool("customer_history", {"call_sid": CALL_SID})
    assert response.status_code == 400 and "conversation_id" in response.json()["error"]["fields"]


def test_a_malformed_conversation_id_is_400():
    response = call_tool("customer_history", {"conversation_id": "../etc"})
    assert response.status_code == 400 and "conversation_id" in response.json()["error"]["fields"]


@pytest.mark.parametrize("token, code", [(None, "not_authenticated"), ("wrong", "authentication_failed")])
def test_a_tool_needs_the_token(token, code):
    session = inbound_session()
    response = call_tool("customer_history", system(), token=token)
    assert response.status_code == 401 and response.json()["error"]["code"] == code
    assert tool_rows(session) == []
    session.refresh_from_db()
    assert session.conversation_id is None


def test_an_unknown_tool_without_the_token_does_not_list_the_tools():
    response = call_tool("nope", system(), token=None)
    assert response.status_code == 401 and "tools" not in response.json()["error"]


def test_no_token_configured_is_503(settings):
    settings.ELEVENLABS_TOOLS_TOKEN = ""
    response = call_tool("customer_history", system())
    assert response.status_code == 503 and response.json()["error"]["variable"] == "ELEVENLABS_TOOLS_TOKEN"


def test_a_tool_that_crashes_is_503_on_the_timeline_and_never_a_500(monkeypatch, caplog):
    session = inbound_session()

    def broken(**kwargs):
        raise RuntimeError("history on fire")

    monkeypatch.setitem(
        tools_module.TOOLS,
        "customer_history",
        tools_module.ServerTool("customer_history", tools_module.CustomerHistoryInput, broken),
    )
    response = call_tool("customer_history", system())

    assert response.status_code == 503
    assert response.json()["error"]["code"] == "tool_failed"
    assert "on fire" not in response.content.decode()
    assert "history on fire" in caplog.text
    [row] = tool_rows(session)
    assert row["error"] == {"code": "tool_failed", "exception": "RuntimeError"}


def test_a_database_fault_is_the_database_s_503(monkeypatch):
    inbound_session()

    def unavailable(*args, **kwargs):
        raise OperationalError("database is locked")

    monkeypatch.setattr(CursorWrapper, "_execute", unavailable)
    response = call_tool("customer_history", system())
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "database_unavailable"
    assert response["Retry-After"]


def test_a_tool_body_over_its_cap_is_413(settings):
    settings.ELEVENLABS_TOOLS_MAX_BYTES = 1024
    response = call_tool("schedule_callback", {**system(), "reason": "x" * 2000})
    assert response.status_code == 413 and response.json()["error"]["limit"] == 1024


def test_tool_calls_never_write_outside_their_session():
    other = lifecycle.session_create(customer_id="cust-other")
    inbound_session()
    call_tool("schedule_callback", {**system(), "when": in_an_hour(), "reason": "r"})
    assert not SessionEvent.objects.filter(session=other, kind="tool_call").exists()
