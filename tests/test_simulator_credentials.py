"""The simulated agent's signed URLs, conversation details, speech helpers and post-call webhook sender."""

from __future__ import annotations

import base64
import json
import time
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import responses
from django.utils import timezone

from elevenlabs.simulator import agents, conversations, voice
from elevenlabs.simulator.agents import simulator_agent_id
from elevenlabs.simulator.conversations import simulator_get_conversation, simulator_send_post_call_webhook
from elevenlabs.simulator.models import SimulatedConversation
from elevenlabs.simulator.signed_urls import (
    SIMULATOR_PATH,
    SignedUrlRefused,
    simulator_claim_conversation,
    simulator_mint_signed_url,
    simulator_verify_signed_url,
)
from elevenlabs.simulator.voice import SpeechDetector
from elevenlabs.webhooks import SIGNATURE_HEADER, simulator_signing_secret, verify_signature
from sessions.services.lifecycle import session_create
from voiceagent.public_url import PublicBaseUrlMissing

WS = "ws://localhost:8000"
HTTP = "http://localhost:8000"
WEBHOOK_URL = f"{HTTP}/elevenlabs/webhook"


@pytest.fixture(autouse=True)
def public_base_url(settings):
    settings.PUBLIC_BASE_URL = HTTP


def mint(*, agent_type: str = "support", session=None, text_only: bool = True) -> dict:
    return simulator_mint_signed_url(
        session=session,
        agent_id=simulator_agent_id(agent_type),
        agent_type=agent_type,
        text_only=text_only,
    )


def query_of(signed_url: str) -> str:
    return urlsplit(signed_url).query


def test_agent_ids_name_the_agent_type():
    assert simulator_agent_id("support") == "sim_support_agent"
    assert simulator_agent_id("sales") == "sim_sales_agent"
    with pytest.raises(ValueError):
        simulator_agent_id("billing")


@pytest.mark.django_db
def test_minting_creates_an_initiated_conversation_linked_to_the_session(alice):
    session = session_create(customer_id="cust-1", user=alice, agent_type="sales", simulation=True)
    before = timezone.now()
    minted = mint(agent_type="sales", session=session, text_only=False)

    url = urlsplit(minted["signed_url"])
    assert f"{url.scheme}://{url.netloc}" == WS
    assert url.path == f"/{SIMULATOR_PATH}"
    params = parse_qs(url.query)
    assert params["agent_id"] == ["sim_sales_agent"]
    assert params["conversation_id"] == [minted["conversation_id"]]
    assert params["expires"] == [str(int(minted["expires_at"].timestamp()))]
    assert len(params["conversation_signature"][0]) == 64

    assert minted["conversation_id"].startswith("sim_conv_")
    conversation = SimulatedConversation.objects.get(pk=minted["conversation_id"])
    assert conversation.status == SimulatedConversation.Status.INITIATED
    assert conversation.session == session
    assert conversation.agent_type == "sales"
    assert conversation.text_only is False
    assert conversation.http_base == HTTP
    lifetime = conversation.expires_at - before
    assert timedelta(minutes=14, seconds=58) <= lifetime <= timedelta(minutes=15, seconds=1)


@pytest.mark.django_db
def test_minting_refuses_unknown_agents_and_a_missing_public_base_url(settings):
    with pytest.raises(ValueError):
        simulator_mint_signed_url(session=None, agent_id="x", agent_type="billing", text_only=True)
    settings.PUBLIC_BASE_URL = ""
    with pytest.raises(PublicBaseUrlMissing):
        simulator_mint_signed_url(session=None, agent_id="x", agent_type="support", text_only=True)
    assert not SimulatedConversation.objects.exists()


@pytest.mark.django_db
def test_a_signed_url_verifies_and_ignores_parameters_it_did_not_sign():
    minted = mint()
    query = query_of(minted["signed_url"])
    assert simulator_verify_signed_url(query) == ("sim_support_agent", minted["conversation_id"])
    # What the browser client and the Python SDK append.
    assert simulator_verify_signed_url(query + "&source=js_sdk&version=1.25.0")[1] == minted["conversation_id"]
    assert simulator_verify_signed_url(("source=python_sdk&" + query).encode())[1] == minted["conversation_id"]


@pytest.mark.django_db
@pytest.mark.parametrize(
    "tamper",
    [
        lambda q: q.replace("conversation_id=sim_conv_", "conversation_id=sim_conv_0"),
        lambda q: q.replace("agent_id=sim_support_agent", "agent_id=sim_sales_agent"),
        lambda q: q.replace("expires=", "expires=1"),
        lambda q: q.split("&conversation_signature=")[0],
        lambda q: q + "&conversation_signature=" + "0" * 64,
        lambda q: q + "&agent_id=sim_sales_agent",
        lambda q: q[: q.index("conversation_signature=") + 23] + "f" * 64,
    ],
    ids=["conversation", "agent", "expiry", "no-signature", "two-signatures", "two-agents", "wrong-signature"],
)
def test_a_tampered_signed_url_is_refused(tamper):
    query = query_of(mint()["signed_url"])
    with pytest.raises(SignedUrlRefused) as refused:
        simulator_verify_signed_url(tamper(query))
    assert refused.value.reason == "Invalid conversation signature"


@pytest.mark.django_db
def test_the_signature_is_keyed_by_the_secret_key(settings):
    query = query_of(mint()["signed_url"])
    settings.SECRET_KEY = "another-secret-key-entirely-0123456789-abcdefghijklmnop"
    with pytest.raises(SignedUrlRefused):
        simulator_verify_signed_url(query)


@pytest.mark.django_db
def test_an_expired_signed_url_is_refused():
    minted = mint()
    query = query_of(minted["signed_url"])
    expires = minted["expires_at"].timestamp()
    assert simulator_verify_signed_url(query, now=expires - 1)
    with pytest.raises(SignedUrlRefused) as refused:
        simulator_verify_signed_url(query, now=expires)
    assert refused.value.reason == "Signed URL has expired"


@pytest.mark.django_db
def test_a_conversation_is_claimed_once():
    minted = mint()
    conversation = simulator_claim_conversation(agent_id="sim_support_agent", conversation_id=minted["conversation_id"])
    assert conversation.status == SimulatedConversation.Status.IN_PROGRESS
    assert conversation.connected_at is not None
    with pytest.raises(SignedUrlRefused) as refused:
        simulator_claim_conversation(agent_id="sim_support_agent", conversation_id=minted["conversation_id"])
    assert refused.value.reason == "Signed URL has already been used"


@pytest.mark.django_db
def test_claiming_an_expired_or_unknown_conversation_is_refused():
    minted = mint()
    SimulatedConversation.objects.filter(pk=minted["conversation_id"]).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    with pytest.raises(SignedUrlRefused) as refused:
        simulator_claim_conversation(agent_id="sim_support_agent", conversation_id=minted["conversation_id"])
    assert refused.value.reason == "Signed URL has expired"
    assert SimulatedConversation.objects.get(pk=minted["conversation_id"]).status == "initiated"

    with pytest.raises(SignedUrlRefused) as refused:
        simulator_claim_conversation(agent_id="sim_support_agent", conversation_id="sim_conv_nope")
    assert refused.value.reason == "Unknown conversation"
    with pytest.raises(SignedUrlRefused) as refused:
        simulator_claim_conversation(agent_id="sim_sales_agent", conversation_id=minted["conversation_id"])
    assert refused.value.reason == "Unknown conversation"


@pytest.mark.django_db
def test_conversation_details_have_elevenlabs_shape_before_and_after_the_call():
    minted = mint(agent_type="sales")
    details = simulator_get_conversation(minted["conversation_id"])
    assert details["status"] == "initiated"
    assert details["transcript"] == []
    assert details["analysis"] is None
    assert details["metadata"]["call_duration_secs"] == 0

    simulator_claim_conversation(agent_id="sim_sales_agent", conversation_id=minted["conversation_id"])
    transcript = [
        conversations.transcript_item(role="agent", message="Hello!", time_in_call_secs=0, source_medium="text"),
        conversations.transcript_item(role="user", message="Hi", time_in_call_secs=3, source_medium="text"),
    ]
    client_data = {
        "conversation_config_override": {"agent": {"language": "de"}, "conversation": {"text_only": True}},
        "user_id": "cust-9",
        "dynamic_variables": {"name": "Ada"},
    }
    assert conversations.simulator_finish_conversation(
        conversation_id=minted["conversation_id"],
        transcript=transcript,
        termination_reason="Client disconnected: 1000",
        client_data=client_data,
        text_only=True,
    )
    # A second end changes nothing.
    assert not conversations.simulator_finish_conversation(
        conversation_id=minted["conversation_id"],
        transcript=[],
        termination_reason="again",
        client_data={},
        text_only=False,
    )

    details = simulator_get_conversation(minted["conversation_id"])
    assert details["conversation_id"] == minted["conversation_id"]
    assert details["agent_id"] == "sim_sales_agent"
    assert details["status"] == "done"
    assert details["user_id"] == "cust-9"
    assert [item["role"] for item in details["transcript"]] == ["agent", "user"]
    assert set(details["transcript"][0]) >= {
        "role",
        "message",
        "time_in_call_secs",
        "tool_calls",
        "tool_results",
        "interrupted",
        "conversation_turn_metrics",
    }
    metadata = details["metadata"]
    assert metadata["termination_reason"] == "Client disconnected: 1000"
    assert metadata["cost"] == 0
    assert metadata["main_language"] == "de"
    assert isinstance(metadata["start_time_unix_secs"], int)
    assert metadata["call_duration_secs"] >= 0
    analysis = details["analysis"]
    assert analysis["call_successful"] == "success"
    assert "Alex" in analysis["transcript_summary"]
    assert analysis["evaluation_criteria_results"]["customer_engaged"]["result"] == "success"
    assert analysis["data_collection_results"]["agent_type"]["value"] == "sales"
    assert details["conversation_initiation_client_data"]["dynamic_variables"] == {"name": "Ada"}
    assert details["has_audio"] is False
    assert details["has_user_audio"] is False
    assert details["has_response_audio"] is False
    json.dumps(details)  # the webhook body


@pytest.mark.django_db
def test_unknown_conversation_details_raise_does_not_exist():
    with pytest.raises(SimulatedConversation.DoesNotExist):
        simulator_get_conversation("sim_conv_missing")


def _ended_conversation() -> str:
    minted = mint()
    simulator_claim_conversation(agent_id="sim_support_agent", conversation_id=minted["conversation_id"])
    conversations.simulator_finish_conversation(
        conversation_id=minted["conversation_id"],
        transcript=[],
        termination_reason="Client disconnected: 1000",
        client_data={},
        text_only=True,
    )
    return minted["conversation_id"]


@pytest.mark.django_db
def test_the_webhook_is_signed_and_marked_sent_on_200():
    conversation_id = _ended_conversation()
    with responses.RequestsMock() as rsps:
        rsps.add(responses.POST, WEBHOOK_URL, json={"status": "ok"}, status=200)
        assert simulator_send_post_call_webhook(conversation_id=conversation_id) is True
        request = rsps.calls[0].request
    verify_signature(header=request.headers[SIGNATURE_HEADER], secret=simulator_signing_secret(), body=request.body)
    envelope = json.loads(request.body)
    assert envelope["type"] == "post_call_transcription"
    assert abs(envelope["event_timestamp"] - time.time()) < 60
    assert envelope["data"] == simulator_get_conversation(conversation_id)
    assert SimulatedConversation.objects.get(pk=conversation_id).webhook_sent_at is not None


@pytest.mark.django_db
@pytest.mark.parametrize(
    "answer",
    [
        {"status": 500, "body": "boom"},
        {"status": 401, "json": {"detail": "bad signature"}},
        {"status": 301, "headers": {"Location": "https://localhost:8000/elevenlabs/webhook"}},
        {"body": requests.ConnectionError("refused")},
    ],
    ids=["500", "401", "redirect", "connection-refused"],
)
def test_a_failed_webhook_is_logged_not_raised(answer, caplog):
    conversation_id = _ended_conversation()
    with responses.RequestsMock() as rsps:
        rsps.add(responses.POST, WEBHOOK_URL, **answer)
        assert simulator_send_post_call_webhook(conversation_id=conversation_id) is False
        assert len(rsps.calls) == 1
    assert SimulatedConversation.objects.get(pk=conversation_id).webhook_sent_at is None
    assert any("post-call webhook" in record.getMessage() for record in caplog.records)


@pytest.mark.django_db
def test_no_webhook_without_an_address():
    conversation_id = _ended_conversation()
    SimulatedConversation.objects.filter(pk=conversation_id).update(http_base="")
    with responses.RequestsMock():
        assert simulator_send_post_call_webhook(conversation_id=conversation_id) is False


def test_the_agent_speaks_at_150_words_a_minute():
    text = "Thanks for calling support, have a great day."
    pcm = voice.synthesize_speech(text, pitch_hz=165.0)
    assert voice.count_words(text) == 8
    assert len(pcm) / voice.BYTES_PER_SECOND == pytest.approx(8 * 0.4)
    assert voice.speech_duration_secs(text) == pytest.approx(3.2)
    assert 0 < voice.pcm_rms(pcm) < 3000  # audible but quiet
    assert voice.pcm_rms(bytes(1024)) == 0


def test_a_line_is_encoded_once_and_the_cache_stays_within_its_budget():
    line = agents.AGENTS["support"].farewell
    first = voice.spoken_audio(line, pitch_hz=165.0)
    assert voice.spoken_audio_if_cached(line, pitch_hz=165.0) is first
    assert voice.spoken_audio(line, pitch_hz=165.0) is first
    assert voice.spoken_audio_if_cached(line, pitch_hz=230.0) is None  # another voice, another entry
    pcm = voice.synthesize_speech(line, pitch_hz=165.0)
    assert "".join(first.chunks) != "" and b"".join(base64.b64decode(c) for c in first.chunks) == pcm
    assert first.seconds == pytest.approx(len(pcm) / voice.BYTES_PER_SECOND)

    cache = voice.SpokenAudioCache(max_chars=5 * first.size)  # room for four or five such lines
    cache.get(line, 165.0)
    for word in ("one", "two", "three", "four", "five"):
        cache.get(f"{line} {word}", 165.0)
    assert cache._chars <= cache.max_chars
    assert cache.cached(line, 165.0) is None  # the oldest went first
    assert cache.cached(f"{line} five", 165.0) is not None
    long_line = " ".join(["word"] * 400)  # as long as a client's first_message override may be
    assert cache.get(long_line, 165.0).chunks  # spoken, but not kept
    assert cache.cached(long_line, 165.0) is None


def _tone(samples: int, amplitude: int) -> bytes:
    return (amplitude.to_bytes(2, "little", signed=True) + (-amplitude).to_bytes(2, "little", signed=True)) * (
        samples // 2
    )


def test_speech_ends_after_eight_tenths_of_a_second_of_quiet():
    detector = SpeechDetector(threshold=500, min_speech_secs=0.1, end_silence_secs=0.8)
    loud, quiet = _tone(512, 4000), _tone(512, 20)  # 32 ms chunks, as the browser sends them
    assert [detector.feed(loud) for _ in range(3)] == [None, None, None]
    assert detector.feed(loud) == SpeechDetector.STARTED  # 4 × 32 ms ≥ 0.1 s
    assert detector.in_speech
    assert [detector.feed(quiet) for _ in range(24)] == [None] * 24  # 0.768 s
    assert detector.feed(quiet) == SpeechDetector.ENDED  # 0.8 s
    assert not detector.in_speech


def test_a_click_is_not_speech():
    detector = SpeechDetector(threshold=500, min_speech_secs=0.1, end_silence_secs=0.8)
    loud, quiet = _tone(512, 4000), _tone(512, 20)
    for _ in range(3):
        assert detector.feed(loud) is None
        assert detector.feed(quiet) is None
    assert not detector.in_speech


def test_scripts_differ_and_end_on_goodbye():
    support, sales = agents.AGENTS["support"], agents.AGENTS["sales"]
    assert support.first_message != sales.first_message
    assert support.pitch_hz != sales.pitch_hz
    assert support.reply_to("hello", turn=0) != sales.reply_to("hello", turn=0)
    assert support.reply_to("ok", turn=99) == (support.fallback, False)
    assert support.reply_to("Thanks, bye!", turn=1) == (support.farewell, True)
    assert sales.reply_to("that's all, goodbye", turn=0) == (sales.farewell, True)
    assert sales.reply_to("I'd like to buy it", turn=0)[1] is False


@pytest.mark.parametrize(
    ("agent_type", "question", "answer_mentions"),
    [
        ("support", "Where is my order?", "order number"),
        ("support", "I can't log in to my account", "password reset link"),
        ("support", "I was charged twice", "Refunds"),
        ("sales", "What are your prices?", "nineteen dollars"),
        ("sales", "Can I get a free trial?", "fourteen day free trial"),
        ("sales", "Is there a discount for paying yearly?", "saves two months"),
    ],
)
def test_agents_answer_the_questions_they_know_whenever_they_come(agent_type, question, answer_mentions):
    agent = agents.AGENTS[agent_type]
    for turn in (0, 2, 99):
        reply, ends_call = agent.reply_to(question, turn=turn)
        assert answer_mentions in reply and not ends_call
    # A question about the other team's business gets the scripted turn instead.
    other = agents.AGENTS["sales" if agent_type == "support" else "support"]
    assert answer_mentions not in other.reply_to(question, turn=0)[0]


def test_dynamic_variables_fill_placeholders():
    assert agents.fill_dynamic_variables("Hi {{ name }}, {{missing}}", {"name": "Ada"}) == "Hi Ada, {{missing}}"
