"""POST /elevenlabs/conversation-init: ElevenLabs asks who is calling before the agent speaks.

The contract, its bearer token, bad input, the session it opens (and never twice for one call),
and the post-call webhook that finds that session by the call's sid.
"""

from __future__ import annotations

import json

import pytest
from django.test import Client

from elevenlabs.models import WebhookDelivery
from elevenlabs.webhooks import sign, simulator_signing_secret
from sessions.models import SessionEvent, VoiceSession
from sessions.services import lifecycle

pytestmark = pytest.mark.django_db

URL = "/elevenlabs/conversation-init"
TOKEN = "tools_test_token_0000000000"
CALL = {
    "caller_id": "+15551234567",
    "agent_id": "agent_support_test",
    "called_number": "+15557654321",
    "call_sid": "CA0123456789abcdef0123456789abcdef",
}


def ask(body: dict | str, *, token: str | None = TOKEN, **headers):
    if token is not None:
        headers["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    data = body if isinstance(body, str) else json.dumps(body)
    return Client().post(URL, data=data, content_type="application/json", **headers)


def answered(body: dict | None = None) -> dict:
    response = ask(body or CALL)
    assert response.status_code == 200, response.content
    return response.json()


# --- The contract -----------------------------------------------------------------------------------


def test_it_answers_client_data_with_the_session_and_the_memory_variables():
    body = answered()

    session = VoiceSession.objects.get()
    assert body["type"] == "conversation_initiation_client_data"
    variables = body["dynamic_variables"]
    assert variables["session_id"] == str(session.pk)
    assert variables["customer_id"] == "+15551234567"
    # Always present: an agent that declares a variable fails a call that lacks it.
    assert {"previous_call_count", "previous_call_summary"} <= set(variables)
    assert isinstance(variables["previous_call_count"], int)
    assert isinstance(variables["previous_call_summary"], str)
    # ElevenLabs takes strings, numbers and booleans only.
    assert all(isinstance(value, (str, int, float, bool)) for value in variables.values())
    assert set(body) == {"type", "dynamic_variables"}


def test_it_opens_an_inbound_phone_session_for_the_caller():
    answered()

    session = VoiceSession.objects.get()
    assert session.direction == "inbound"
    assert session.customer_id == "+15551234567"
    assert session.phone_number == "+15551234567"
    assert session.agent_type == "support"
    assert session.agent_id == "agent_support_test"
    assert session.status == "connecting"
    assert session.connection_type == "phone"
    assert session.call_sid == CALL["call_sid"]
    assert session.conversation_id is None
    assert session.simulation is False
    assert session.created_by is None


def test_the_timeline_says_an_inbound_call_was_answered():
    answered()

    session = VoiceSession.objects.get()
    rows = list(session.events.values_list("kind", "to_status"))
    assert rows == [("inbound_call", "connecting")]  # the creation is read from the session itself
    payload = session.events.get(kind="inbound_call").payload
    assert payload["call_sid"] == CALL["call_sid"]
    assert payload["called_number"] == "+15557654321"
    assert payload["agent_id"] == "agent_support_test"
    assert payload["caller_withheld"] is False


def test_the_agent_id_chooses_the_agent_type():
    answered({**CALL, "agent_id": "agent_sales_test"})
    assert VoiceSession.objects.get().agent_type == "sales"


def test_the_simulated_agent_s_own_id_opens_a_simulated_session():
    answered({**CALL, "agent_id": "sim_sales_agent"})
    session = VoiceSession.objects.get()
    assert (session.agent_type, session.simulation) == ("sales", True)


def test_the_simulated_agent_s_id_is_unknown_where_the_simulator_is_left_out(settings):
    settings.ELEVENLABS_SIMULATOR_BACKEND = ""
    response = ask({**CALL, "agent_id": "sim_support_agent"})
    assert response.status_code == 404 and response.json()["error"]["code"] == "unknown_agent"
    assert not VoiceSession.objects.exists()


def test_the_memory_variables_come_from_the_memory_of_the_customer(monkeypatch):
    from elevenlabs import inbound

    asked = {}

    def remembered(*, customer_id, exclude_session_id=None):
        asked.update(customer_id=customer_id, exclude_session_id=exclude_session_id)
        return {"previous_call_count": 2, "previous_call_summary": "Asked about a late parcel."}

    monkeypatch.setattr(inbound, "memory_variables", remembered)
    variables = answered()["dynamic_variables"]

    session = VoiceSession.objects.get()
    # Asked before the new session exists: none of the previous calls is this one.
    assert asked == {"customer_id": "+15551234567", "exclude_session_id": None}
    assert variables["previous_call_count"] == 2
    assert variables["previous_call_summary"] == "Asked about a late parcel."
    assert session.dynamic_variables["previous_call_count"] == 2


# --- Withheld numbers -------------------------------------------------------------------------------


@pytest.mark.parametrize("caller_id", ["", None, "anonymous", "Restricted", "+266696687", "12345", "sip:bob@host"])
def test_a_withheld_number_is_an_anonymous_customer_without_memory(caller_id, monkeypatch):
    from elevenlabs import inbound

    def must_not_be_asked(**kwargs):
        raise AssertionError("a withheld number has no memory to ask")

    monkeypatch.setattr(inbound, "memory_variables", must_not_be_asked)
    body = {**CALL, "caller_id": caller_id}
    variables = answered(body)["dynamic_variables"]

    session = VoiceSession.objects.get()
    assert session.customer_id == f"anonymous-{CALL['call_sid']}"
    assert session.phone_number == ""
    assert variables["customer_id"] == session.customer_id
    assert variables["previous_call_count"] == 0 and variables["previous_call_summary"] == ""
    assert variables["caller_withheld"] is True


def test_a_missing_caller_id_is_a_withheld_number():
    body = {key: value for key, value in CALL.items() if key != "caller_id"}
    answered(body)
    assert VoiceSession.objects.get().customer_id.startswith("anonymous-")


# --- The same call asked about twice ----------------------------------------------------------------


def test_asking_again_about_the_same_call_gives_the_same_session():
    first = answered()
    again = answered()

    assert VoiceSession.objects.count() == 1
    assert again == first
    assert SessionEvent.objects.filter(kind="inbound_call").count() == 1


# --- Authentication ---------------------------------------------------------------------------------


def test_without_a_token_it_is_401_and_says_how_to_authenticate():
    response = ask(CALL, token=None)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert not VoiceSession.objects.exists()


@pytest.mark.parametrize("header", [f"Bearer {TOKEN}x", "Bearer ", f"Bearer {TOKEN[:-1]}", "Bearer wrong"])
def test_a_wrong_token_is_401(header):
    response = Client().post(URL, data=json.dumps(CALL), content_type="application/json", HTTP_AUTHORIZATION=header)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "authentication_failed"
    assert not VoiceSession.objects.exists()


def test_another_scheme_is_no_credential():
    response = ask(CALL, token=None, HTTP_AUTHORIZATION=f"Token {TOKEN}")
    assert response.status_code == 401 and response.json()["error"]["code"] == "not_authenticated"


def test_the_scheme_is_case_insensitive():
    response = ask(CALL, token=None, HTTP_AUTHORIZATION=f"bearer {TOKEN}")
    assert response.status_code == 200


def test_a_logged_in_user_is_not_elevenlabs(client, alice):
    client.force_login(alice)
    response = client.post(URL, data=json.dumps(CALL), content_type="application/json")
    assert response.status_code == 401
    assert not VoiceSession.objects.exists()


def test_with_no_token_configured_it_is_503_naming_the_variable(settings):
    settings.ELEVENLABS_TOOLS_TOKEN = ""
    response = ask(CALL, token="")
    assert response.status_code == 503
    error = response.json()["error"]
    assert error["code"] == "tools_token_missing" and error["variable"] == "ELEVENLABS_TOOLS_TOKEN"
    assert "ELEVENLABS_TOOLS_TOKEN" in error["message"]
    assert not VoiceSession.objects.exists()


def test_the_token_never_appears_in_an_answer():
    for response in (ask(CALL, token="wrong"), ask({**CALL, "agent_id": "nope"})):
        assert TOKEN not in response.content.decode()


# --- Bad input --------------------------------------------------------------------------------------


def test_an_unknown_agent_is_404_and_makes_no_session():
    response = ask({**CALL, "agent_id": "agent_somebody_else"})
    assert response.status_code == 404
    error = response.json()["error"]
    assert error["code"] == "unknown_agent" and error["agent_id"] == "agent_somebody_else"
    assert "ELEVENLABS_SUPPORT_AGENT_ID" in error["message"]
    assert not VoiceSession.objects.exists()


@pytest.mark.parametrize(
    "change, field",
    [
        ({"agent_id": None}, "agent_id"),
        ({"agent_id": "agent with spaces"}, "agent_id"),
        ({"call_sid": ""}, "call_sid"),
        ({"call_sid": "CA\n1"}, "call_sid"),
        ({"call_sid": "C" * 65}, "call_sid"),
        ({"caller_id": 15551234567}, "caller_id"),
        ({"caller_id": "+1" + "5" * 70}, "caller_id"),
        ({"called_number": ["+1555"]}, "called_number"),
    ],
)
def test_bad_input_is_400_naming_the_field(change, field):
    response = ask({**CALL, **change})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid" and field in error["fields"]
    assert not VoiceSession.objects.exists()


def test_a_missing_call_sid_is_400():
    body = {key: value for key, value in CALL.items() if key != "call_sid"}
    response = ask(body)
    assert response.status_code == 400 and "call_sid" in response.json()["error"]["fields"]


def test_a_body_that_is_not_an_object_is_400():
    assert ask("[1, 2]").status_code == 400
    assert ask("{not json").json()["error"]["code"] == "invalid_json"


def test_a_body_over_its_small_cap_is_413(settings):
    settings.ELEVENLABS_TOOLS_MAX_BYTES = 1024
    response = ask({**CALL, "padding": "x" * 2000})
    assert response.status_code == 413
    assert response.json()["error"]["limit"] == 1024


def test_the_cap_is_the_route_s_own_in_the_asgi_guard():
    from django.conf import settings

    from voiceagent.bodylimit import BodyLimits

    limits = BodyLimits(settings.API_MAX_BODY_BYTES, settings.REQUEST_BODY_LIMITS)
    assert limits.for_path(URL) == settings.ELEVENLABS_TOOLS_MAX_BYTES < settings.API_MAX_BODY_BYTES
    assert limits.for_path("/elevenlabs/tools/customer_history") == settings.ELEVENLABS_TOOLS_MAX_BYTES
    assert limits.for_path("/elevenlabs/tools/anything") == settings.ELEVENLABS_TOOLS_MAX_BYTES


def test_get_is_405():
    response = Client().get(URL, HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 405


# --- The post-call webhook finds the session by the call's sid --------------------------------------


def transcription(conversation_id: str, call_sid: str) -> bytes:
    data = {
        "agent_id": "agent_support_test",
        "conversation_id": conversation_id,
        "status": "done",
        "transcript": [
            {"role": "agent", "message": "Hello, this is support.", "time_in_call_secs": 0},
            {"role": "user", "message": "Where is my parcel?", "time_in_call_secs": 2},
        ],
        "metadata": {
            "start_time_unix_secs": 1780000000,
            "call_duration_secs": 30,
            "phone_call": {"direction": "inbound", "type": "twilio", "call_sid": call_sid},
        },
        "analysis": {"call_successful": "success", "transcript_summary": "Parcel tracked.", "call_summary_title": "P"},
    }
    return json.dumps({"type": "post_call_transcription", "event_timestamp": 1780000050, "data": data}).encode()


def deliver(body: bytes, *, secret: str):
    signature = sign(body, secret=secret)
    return Client().post(
        "/elevenlabs/webhook", data=body, content_type="application/json", HTTP_ELEVENLABS_SIGNATURE=signature
    )


def test_the_post_call_webhook_finds_the_call_by_its_sid_and_binds_the_conversation(settings):
    answered()

    response = deliver(transcription("conv_inbound_1", CALL["call_sid"]), secret=settings.ELEVENLABS_WEBHOOK_SECRET)

    assert response.status_code == 200 and response.json() == {"status": "processed"}
    session = VoiceSession.objects.get()
    assert session.conversation_id == "conv_inbound_1"
    assert session.status == "ended" and session.end_reason == "webhook"
    assert len(session.transcript) == 2 and session.transcript_summary == "Parcel tracked."
    bound = session.events.get(kind="conversation_bound")
    assert bound.payload == {"conversation_id": "conv_inbound_1", "source": "post_call_webhook"}
    assert WebhookDelivery.objects.get().session_id == session.pk


def test_a_call_sid_does_not_take_a_session_bound_to_another_conversation(settings):
    answered()
    session = VoiceSession.objects.get()
    lifecycle.session_bind_conversation(session=session, conversation_id="conv_first", source="tool_call")

    response = deliver(transcription("conv_other", CALL["call_sid"]), secret=settings.ELEVENLABS_WEBHOOK_SECRET)

    assert response.json() == {"status": "unmatched"}
    session.refresh_from_db()
    assert session.conversation_id == "conv_first" and session.status == "connecting"


def test_an_unknown_call_sid_leaves_the_delivery_waiting(settings):
    answered()
    response = deliver(transcription("conv_x", "CAunknown"), secret=settings.ELEVENLABS_WEBHOOK_SECRET)
    assert response.json() == {"status": "unmatched"}
    assert VoiceSession.objects.get().conversation_id is None


def test_audio_that_waited_for_the_conversation_joins_the_session_matched_by_its_call(settings):
    import base64

    answered()
    audio = json.dumps(
        {
            "type": "post_call_audio",
            "event_timestamp": 1780000050,
            "data": {"conversation_id": "conv_inbound_2", "full_audio": base64.b64encode(b"ID3audio").decode()},
        }
    ).encode()
    secret = settings.ELEVENLABS_WEBHOOK_SECRET
    assert deliver(audio, secret=secret).json() == {"status": "unmatched"}

    assert deliver(transcription("conv_inbound_2", CALL["call_sid"]), secret=secret).json()["status"] == "processed"

    session = VoiceSession.objects.get()
    with session.audio.open("rb") as stored:
        assert stored.read() == b"ID3audio"


def test_the_simulator_s_signature_is_accepted_for_a_simulated_call_matched_by_its_sid():
    answered({**CALL, "agent_id": "sim_support_agent"})
    response = deliver(transcription("sim_conv_1", CALL["call_sid"]), secret=simulator_signing_secret())
    assert response.status_code == 200 and response.json() == {"status": "processed"}
    assert VoiceSession.objects.get().status == "ended"


def test_the_simulator_s_signature_is_refused_for_a_real_call_matched_by_its_sid():
    answered()
    response = deliver(transcription("conv_forged", CALL["call_sid"]), secret=simulator_signing_secret())
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_simulated_conversation"
    session = VoiceSession.objects.get()
    assert session.conversation_id is None and session.status == "connecting"


def test_only_strings_numbers_and_booleans_reach_elevenlabs(monkeypatch):
    from elevenlabs import inbound

    def odd_memory(**kwargs):
        return {"previous_call_count": 1, "previous_call_summary": None, "previous_calls": [{"title": "x"}]}

    monkeypatch.setattr(inbound, "memory_variables", odd_memory)
    variables = answered()["dynamic_variables"]

    assert variables["previous_call_count"] == 1
    assert variables["previous_call_summary"] == ""  # present, as the agent expects it
    assert "previous_calls" not in variables
