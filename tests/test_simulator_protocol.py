"""The simulated agent over its WebSocket, message by message, as the browser client sees it.

Time is a hand-moved clock: nothing here sleeps. Each test runs its conversation in
``asyncio.run`` against the consumer through Channels' WebsocketCommunicator.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
import responses
from asgiref.sync import sync_to_async
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.urls import path
from django.utils import timezone

from elevenlabs.simulator import agents, conversations, voice
from elevenlabs.simulator.agents import simulator_agent_id
from elevenlabs.simulator.consumers import MAX_FRAME_CHARS, MAX_FRAME_DEPTH, SimulatedAgentConsumer, SimulatorTimings
from elevenlabs.simulator.models import SimulatedConversation
from elevenlabs.simulator.signed_urls import SIMULATOR_PATH, simulator_mint_signed_url
from elevenlabs.webhooks import SIGNATURE_HEADER, simulator_signing_secret, verify_signature
from tests.server import live_asgi_server  # noqa: F401

pytestmark = pytest.mark.django_db(transaction=True)

WS = "ws://testserver"
HTTP = "http://testserver"
WEBHOOK_URL = f"{HTTP}/elevenlabs/webhook"
BROWSER = [(b"host", b"testserver"), (b"origin", b"http://testserver")]
JS_SDK = "&source=js_sdk&version=1.25.0"
CHUNKS_PER_WORD = 0.4 * voice.BYTES_PER_SECOND / voice.AUDIO_CHUNK_BYTES  # 1.6
SUPPORT = agents.AGENTS["support"]
SALES = agents.AGENTS["sales"]


class ManualClock:
    """Time that moves only when a test says so."""

    def __init__(self) -> None:
        self.t = 1000.0
        self._sleepers: list[tuple[float, asyncio.Future]] = []

    def now(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        future = asyncio.get_running_loop().create_future()
        self._sleepers.append((self.t + seconds, future))
        await future

    async def advance(self, seconds: float) -> None:
        await self.settle()  # tasks started just now must reach their sleep before time moves
        self.t += seconds
        waiting = []
        for deadline, future in self._sleepers:
            if future.done():
                continue
            if deadline <= self.t:
                future.set_result(None)
            else:
                waiting.append((deadline, future))
        self._sleepers = waiting
        await self.settle()

    @staticmethod
    async def settle() -> None:
        for _ in range(5):  # let ready tasks run up to their next await
            await asyncio.sleep(0)


def application(clock: ManualClock, **timings):
    consumer = SimulatedAgentConsumer.as_asgi(clock=clock, timings=SimulatorTimings(**timings))
    return URLRouter([path(SIMULATOR_PATH, consumer)])


def mint(agent_type: str = "support", *, text_only: bool = True) -> dict:
    return simulator_mint_signed_url(
        session=None,
        agent_id=simulator_agent_id(agent_type),
        agent_type=agent_type,
        text_only=text_only,
    )


def path_of(signed_url: str, extra: str = JS_SDK) -> str:
    parts = urlsplit(signed_url)
    return f"{parts.path}?{parts.query}{extra}"


def communicator(app, signed_url: str, *, headers=None, subprotocols=("convai",), extra: str = JS_SDK):
    return WebsocketCommunicator(
        app,
        path_of(signed_url, extra),
        headers=list(BROWSER if headers is None else headers),
        subprotocols=list(subprotocols),
    )


def client_data(*, text_only: bool, **more) -> dict:
    """What @elevenlabs/client 1.25 sends on open."""
    return {
        "type": "conversation_initiation_client_data",
        "conversation_config_override": {
            "agent": {"prompt": None, "first_message": None, "language": None, **more.pop("agent", {})},
            "tts": {"voice_id": None},
            "conversation": {"text_only": text_only},
        },
        "source_info": {"source": "js_sdk", "version": "1.25.0"},
        **more,
    }


async def open_conversation(comm, *, text_only: bool, **more) -> dict:
    connected, subprotocol = await comm.connect()
    assert connected and subprotocol == "convai"
    metadata = await comm.receive_json_from()
    assert metadata["type"] == "conversation_initiation_metadata"
    await comm.send_json_to(client_data(text_only=text_only, **more))
    return metadata


async def receive_turn(comm, words: int | None = None) -> tuple[dict, list[dict]]:
    """An agent_response and, in voice mode, the audio events that speak it."""
    response = await comm.receive_json_from()
    assert response["type"] == "agent_response", response
    audio = []
    if words is not None:
        for _ in range(int(-(-words * CHUNKS_PER_WORD // 1))):
            audio.append(await comm.receive_json_from())
    return response, audio


async def expect_close(comm) -> dict:
    message = await comm.receive_output(timeout=2)
    assert message["type"] == "websocket.close", message
    return message


async def barrier(comm) -> None:
    """Wait until the consumer has handled everything sent so far.

    Messages such as user_activity or pong get no answer; a malformed one does
    (an error event), and the consumer handles messages in order.
    """
    await comm.send_to(text_data="[]")
    assert (await comm.receive_json_from())["type"] == "error"


def run(coro):
    return asyncio.run(coro)


def run_with_our_webhook(coro) -> None:
    """Run a scenario whose conversation ends, with our webhook endpoint answering 200; it must be called."""
    with responses.RequestsMock() as rsps:
        rsps.add(responses.POST, WEBHOOK_URL, status=200)
        run(coro)


def conversation(conversation_id: str) -> SimulatedConversation:
    return SimulatedConversation.objects.get(pk=conversation_id)


def pcm_chunk(amplitude: int) -> str:
    """32 ms of microphone audio (1024 bytes, as the browser sends it), base64."""
    pair = amplitude.to_bytes(2, "little", signed=True) + (-amplitude).to_bytes(2, "little", signed=True)
    return base64.b64encode(pair * 256).decode()


# --- connecting ------------------------------------------------------------------------------------


def test_convai_subprotocol_is_chosen_only_when_offered():
    async def scenario():
        clock = ManualClock()
        browser = communicator(application(clock), mint()["signed_url"])
        assert await browser.connect() == (True, "convai")
        await browser.disconnect()

        python_sdk = communicator(application(clock), mint()["signed_url"], subprotocols=(), headers=[])
        assert await python_sdk.connect() == (True, None)
        assert (await python_sdk.receive_json_from())["type"] == "conversation_initiation_metadata"
        await python_sdk.disconnect()

    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        rsps.add(responses.POST, WEBHOOK_URL, status=200)
        run(scenario())


def test_metadata_comes_first_then_the_support_greeting():
    minted = mint()

    async def scenario():
        comm = communicator(application(ManualClock()), minted["signed_url"])
        metadata = await open_conversation(comm, text_only=True)
        assert metadata["conversation_initiation_metadata_event"] == {
            "conversation_id": minted["conversation_id"],
            "agent_output_audio_format": "pcm_16000",
            "user_input_audio_format": "pcm_16000",
        }
        greeting, _ = await receive_turn(comm)
        assert greeting["agent_response_event"]["agent_response"] == SUPPORT.first_message
        assert isinstance(greeting["agent_response_event"]["event_id"], int)
        status = await asyncio.to_thread(lambda: conversation(minted["conversation_id"]).status)
        assert status == "in-progress"
        await comm.disconnect()

    run_with_our_webhook(scenario())


def test_the_client_data_may_come_before_the_metadata_is_read():
    async def scenario():
        comm = communicator(application(ManualClock()), mint("sales")["signed_url"])
        assert await comm.connect() == (True, "convai")
        await comm.send_json_to(client_data(text_only=True))  # the browser sends on open, without waiting
        assert (await comm.receive_json_from())["type"] == "conversation_initiation_metadata"
        greeting, _ = await receive_turn(comm)
        assert greeting["agent_response_event"]["agent_response"] == SALES.first_message
        await comm.disconnect()

    run_with_our_webhook(scenario())


def test_without_client_data_the_agent_greets_after_a_second():
    async def scenario():
        clock = ManualClock()
        comm = communicator(application(clock, initiation_wait=1.0), mint(text_only=True)["signed_url"])
        assert (await comm.connect())[0]
        assert (await comm.receive_json_from())["type"] == "conversation_initiation_metadata"
        await clock.advance(1.0)
        greeting, _ = await receive_turn(comm)
        assert greeting["agent_response_event"]["agent_response"] == SUPPORT.first_message
        # The minted text_only holds: the next message is the echo, not audio.
        await comm.send_json_to({"type": "user_message", "text": "hello"})
        assert (await comm.receive_json_from())["type"] == "user_transcript"
        await comm.disconnect()

    run_with_our_webhook(scenario())


def test_first_message_override_and_dynamic_variables():
    minted = mint()

    async def scenario():
        comm = communicator(application(ManualClock()), minted["signed_url"])
        await open_conversation(
            comm,
            text_only=True,
            agent={"first_message": "Hello {{customer_name}}, how can I help?"},
            dynamic_variables={"customer_name": "Ada"},
            user_id="cust-42",
        )
        greeting, _ = await receive_turn(comm)
        assert greeting["agent_response_event"]["agent_response"] == "Hello Ada, how can I help?"
        await comm.disconnect()

    run_with_our_webhook(scenario())
    details = conversations.simulator_get_conversation(minted["conversation_id"])
    assert details["user_id"] == "cust-42"
    assert details["conversation_initiation_client_data"]["dynamic_variables"] == {"customer_name": "Ada"}


def test_an_empty_first_message_means_the_agent_waits_for_the_user():
    async def scenario():
        comm = communicator(application(ManualClock()), mint()["signed_url"])
        await open_conversation(comm, text_only=True, agent={"first_message": ""})
        await comm.send_json_to({"type": "user_message", "text": "Hi there"})
        assert (await comm.receive_json_from())["type"] == "user_transcript"
        reply, _ = await receive_turn(comm)
        assert reply["agent_response_event"]["agent_response"] == SUPPORT.replies[0]
        await comm.disconnect()

    run_with_our_webhook(scenario())


# --- refusals ----------------------------------------------------------------------------------------


def test_a_bad_signature_is_refused_with_1008_through_the_project_router():
    from voiceagent.asgi import application as project_application

    minted = mint()
    forged = minted["signed_url"].replace("conversation_signature=", "conversation_signature=0")

    async def scenario():
        comm = communicator(project_application, forged)
        assert await comm.connect() == (True, "convai")  # accepted, so the client sees the reason
        closed = await expect_close(comm)
        assert closed["code"] == 1008
        assert closed["reason"] == "Invalid conversation signature"
        await comm.disconnect()

    with responses.RequestsMock():  # nothing may be sent
        run(scenario())
    assert conversation(minted["conversation_id"]).status == "initiated"


def like_daphne(app):
    """Daphne (autobahn) raises on a server close code other than 1000 or 3000-4999, and drops the reason."""

    async def wrapped(scope, receive, send):
        async def strict_send(message):
            if message["type"] == "websocket.close":
                code = message.get("code", 1000)
                if code != 1000 and not 3000 <= code <= 4999:
                    raise Exception(f"invalid close code {code} (must be 1000 or from [3000, 4999])")
                message = {key: value for key, value in message.items() if key != "reason"}
            await send(message)

        return await app(scope, receive, strict_send)

    return wrapped


def test_under_daphne_a_refusal_still_says_why():
    minted = mint()
    forged = minted["signed_url"].replace("conversation_signature=", "conversation_signature=0")

    async def scenario():
        comm = communicator(like_daphne(application(ManualClock())), forged)
        assert (await comm.connect())[0]
        error = await comm.receive_json_from()
        assert error["type"] == "error"
        assert error["error_event"]["code"] == 1008
        assert error["error_event"]["message"] == "Invalid conversation signature"
        closed = await expect_close(comm)
        assert closed["code"] == 4008
        await comm.disconnect()

    run(scenario())


def test_a_signed_url_works_once():
    minted = mint()

    async def scenario():
        clock = ManualClock()
        first = communicator(application(clock), minted["signed_url"])
        await open_conversation(first, text_only=True)
        second = communicator(application(clock), minted["signed_url"])
        assert (await second.connect())[0]
        closed = await expect_close(second)
        assert (closed["code"], closed["reason"]) == (1008, "Signed URL has already been used")
        await second.disconnect()
        await receive_turn(first)  # the first conversation goes on
        await first.disconnect()

    with responses.RequestsMock() as rsps:
        rsps.add(responses.POST, WEBHOOK_URL, status=200)
        run(scenario())
        assert len(rsps.calls) == 1


def test_an_expired_signed_url_is_refused(monkeypatch):
    real_now = timezone.now()
    with monkeypatch.context() as patch:
        patch.setattr(timezone, "now", lambda: real_now - timedelta(minutes=15, seconds=1))
        minted = mint()

    async def scenario():
        comm = communicator(application(ManualClock()), minted["signed_url"])
        assert (await comm.connect())[0]
        closed = await expect_close(comm)
        assert (closed["code"], closed["reason"]) == (1008, "Signed URL has expired")
        await comm.disconnect()

    run(scenario())
    assert conversation(minted["conversation_id"]).status == "initiated"


def test_a_foreign_origin_is_refused_and_the_url_stays_unused():
    minted = mint()

    async def scenario():
        evil = communicator(
            application(ManualClock()),
            minted["signed_url"],
            headers=[(b"host", b"testserver"), (b"origin", b"https://evil.example")],
        )
        assert (await evil.connect())[0]
        closed = await expect_close(evil)
        assert (closed["code"], closed["reason"]) == (1008, "Origin not allowed")
        await evil.disconnect()

        # A page served from an ALLOWED_HOSTS host on another port is fine.
        dev_page = communicator(
            application(ManualClock()),
            minted["signed_url"],
            headers=[(b"host", b"testserver"), (b"origin", b"http://localhost:5173")],
        )
        await open_conversation(dev_page, text_only=True)
        await dev_page.disconnect()

    run_with_our_webhook(scenario())


def test_parameters_the_client_appends_are_ignored_but_required_ones_are_not():
    minted = mint()

    async def scenario():
        without_signature = minted["signed_url"].split("&conversation_signature=")[0]
        comm = communicator(application(ManualClock()), without_signature, extra="&source=js_sdk&version=9")
        assert (await comm.connect())[0]
        assert (await expect_close(comm))["code"] == 1008
        await comm.disconnect()

        comm = communicator(application(ManualClock()), minted["signed_url"], extra="&source=js_sdk&version=9&x=1")
        await open_conversation(comm, text_only=True)
        await comm.disconnect()

    run_with_our_webhook(scenario())


def test_invalid_client_data_closes_with_1008():
    minted = mint()

    async def scenario():
        comm = communicator(application(ManualClock()), minted["signed_url"])
        assert (await comm.connect())[0]
        await comm.receive_json_from()
        await comm.send_json_to(
            {"type": "conversation_initiation_client_data", "conversation_config_override": {"conversation": "yes"}}
        )
        closed = await expect_close(comm)
        assert closed["code"] == 1008
        assert "conversation_initiation_client_data" in closed["reason"]
        await comm.disconnect()

    run_with_our_webhook(scenario())
    assert conversation(minted["conversation_id"]).status == "done"


def test_malformed_messages_get_an_error_event_and_the_conversation_goes_on():
    async def scenario():
        comm = communicator(application(ManualClock()), mint()["signed_url"])
        await open_conversation(comm, text_only=True)
        await receive_turn(comm)
        for bad in ("not json", "[1, 2]", json.dumps({"type": "user_message", "text": "  "})):
            await comm.send_to(text_data=bad)
            error = await comm.receive_json_from()
            assert error["type"] == "error"
            assert error["error_event"]["code"] == 1008
            assert error["error_event"]["message"]
        await comm.send_json_to({"user_audio_chunk": "%%%not base64%%%"})
        assert (await comm.receive_json_from())["type"] == "error"
        await comm.send_to(bytes_data=b"\x00\x01")
        assert (await comm.receive_json_from())["type"] == "error"
        # Accepted silently: nothing comes back, so the next message is the answer to the user.
        for quiet in (
            {"type": "contextual_update", "text": "user opened the billing page"},
            {"type": "user_activity"},
            {"type": "feedback", "score": "like", "event_id": 1},
            {"type": "pong", "event_id": 99},
            {"type": "pong", "event_id": [1]},
            {"type": "something_new"},
        ):
            await comm.send_json_to(quiet)
        await comm.send_json_to({"type": "user_message", "text": "Still there?"})
        assert (await comm.receive_json_from())["type"] == "user_transcript"
        await comm.disconnect()

    run_with_our_webhook(scenario())


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def test_a_deeply_nested_frame_gets_an_error_event_and_the_conversation_goes_on():
    async def scenario():
        comm = communicator(application(ManualClock()), mint()["signed_url"])
        await open_conversation(comm, text_only=True)
        await receive_turn(comm)
        too_deep = MAX_FRAME_DEPTH + 1
        for bad in (
            nested(100_000),  # a RecursionError in json.loads without the check
            json.dumps({"type": "contextual_update", "text": "x", "extra": json.loads(nested(too_deep))}),
        ):
            await comm.send_to(text_data=bad)
            error = await comm.receive_json_from()
            assert error["type"] == "error"
            assert error["error_event"]["code"] == 1008
            assert f"deeper than {MAX_FRAME_DEPTH} levels" in error["error_event"]["message"]
        # At the limit, or brackets inside a string: an ordinary message.
        await comm.send_json_to(
            {"type": "contextual_update", "text": "x", "extra": json.loads(nested(MAX_FRAME_DEPTH - 1))}
        )
        await comm.send_json_to({"type": "user_message", "text": "[[[{{{" * 20 + " my order"})
        assert (await comm.receive_json_from())["type"] == "user_transcript"
        response, _ = await receive_turn(comm)
        assert response["agent_response_event"]["agent_response"] == SUPPORT.topics[0][1]
        await comm.disconnect()

    run_with_our_webhook(scenario())


@pytest.mark.parametrize("frame", ["text", "binary"])
def test_an_oversize_frame_closes_with_1009_and_the_conversation_is_kept(frame):
    minted = mint()

    async def scenario():
        comm = communicator(application(ManualClock()), minted["signed_url"])
        await open_conversation(comm, text_only=True)
        await receive_turn(comm)
        await comm.send_json_to({"type": "user_message", "text": "Hello"})
        await comm.receive_json_from()
        await receive_turn(comm)
        chunk = "A" * (MAX_FRAME_CHARS + 1)
        if frame == "text":
            await comm.send_json_to({"user_audio_chunk": chunk})
        else:
            await comm.send_to(bytes_data=chunk.encode())
        closed = await expect_close(comm)
        assert closed["code"] == 1009
        assert closed["reason"] == f"Message too big (over {MAX_FRAME_CHARS} characters)"
        await comm.wait()

    run_with_our_webhook(scenario())
    stored = conversation(minted["conversation_id"])
    assert stored.status == "done"
    assert stored.termination_reason == f"Client sent a message over {MAX_FRAME_CHARS} characters"
    assert [item["message"] for item in stored.transcript][1] == "Hello"


def test_the_conversation_flows_while_the_sync_thread_is_busy():
    """Django's one thread for sync code (sync views such as /healthz, the ORM) can be slow; the socket must not wait.

    Channels used to hop onto that thread before every client message; with 31
    microphone chunks a second per conversation, the queue there stalled the worker.
    """

    async def scenario():
        comm = communicator(application(ManualClock()), mint(text_only=False)["signed_url"])
        await open_conversation(comm, text_only=False, agent={"first_message": ""})
        busy = asyncio.ensure_future(sync_to_async(time.sleep)(5))  # thread_sensitive: that one thread
        await asyncio.sleep(0.1)
        started = time.monotonic()
        for _ in range(31):  # a second of microphone audio
            await comm.send_json_to({"user_audio_chunk": pcm_chunk(0)})
        await comm.send_json_to({"type": "user_message", "text": "Hello"})
        assert (await comm.receive_json_from(timeout=4))["type"] == "user_transcript"
        assert (await comm.receive_json_from(timeout=4))["type"] == "agent_response"
        assert not busy.done()
        assert time.monotonic() - started < 4
        await busy
        await comm.disconnect()

    run_with_our_webhook(scenario())


# --- talking -----------------------------------------------------------------------------------------


def test_text_mode_user_messages_are_echoed_and_answered_without_audio():
    async def scenario():
        comm = communicator(application(ManualClock()), mint()["signed_url"])
        await open_conversation(comm, text_only=True)
        await receive_turn(comm)
        for turn, text in enumerate(["My internet is down", "ada@example.com", "OK"]):
            await comm.send_json_to({"type": "user_message", "text": text})
            echo = await comm.receive_json_from()
            assert echo["type"] == "user_transcript"
            assert echo["user_transcription_event"]["user_transcript"] == text
            reply = await comm.receive_json_from()  # straight after the echo: no audio in between
            assert reply["type"] == "agent_response"
            assert reply["agent_response_event"]["agent_response"] == SUPPORT.replies[turn]
        await comm.disconnect()

    run_with_our_webhook(scenario())


def test_voice_mode_audio_lasts_as_long_as_the_words_take_to_say():
    async def scenario():
        comm = communicator(application(ManualClock()), mint("sales", text_only=True)["signed_url"])
        await open_conversation(comm, text_only=False)  # the client's override wins over the minted mode
        words = voice.count_words(SALES.first_message)
        greeting, audio = await receive_turn(comm, words)
        event_id = greeting["agent_response_event"]["event_id"]
        assert {event["type"] for event in audio} == {"audio"}
        assert {event["audio_event"]["event_id"] for event in audio} == {event_id}
        pcm = b"".join(base64.b64decode(event["audio_event"]["audio_base_64"]) for event in audio)
        seconds = len(pcm) / 32000  # PCM16 mono at 16 kHz
        assert seconds == pytest.approx(words * 60 / 150)
        # That was all of it: the next thing sent is the echo of the user's message.
        await comm.send_json_to({"type": "user_message", "text": "For my team"})
        assert (await comm.receive_json_from())["type"] == "user_transcript"
        reply, reply_audio = await receive_turn(comm, voice.count_words(SALES.replies[0]))
        assert reply["agent_response_event"]["event_id"] > event_id
        reply_id = reply["agent_response_event"]["event_id"]
        assert all(event["audio_event"]["event_id"] == reply_id for event in reply_audio)
        await comm.disconnect()

    run_with_our_webhook(scenario())


def test_sales_and_support_follow_different_scripts():
    async def talk(agent_type: str) -> list[str]:
        comm = communicator(application(ManualClock()), mint(agent_type)["signed_url"])
        await open_conversation(comm, text_only=True)
        said = [(await receive_turn(comm))[0]["agent_response_event"]["agent_response"]]
        for text in ("Hi", "Five of us"):
            await comm.send_json_to({"type": "user_message", "text": text})
            await comm.receive_json_from()
            said.append((await receive_turn(comm))[0]["agent_response_event"]["agent_response"])
        await comm.disconnect()
        return said

    with responses.RequestsMock() as rsps:
        rsps.add(responses.POST, WEBHOOK_URL, status=200)
        support = run(talk("support"))
        sales = run(talk("sales"))
    assert support == [SUPPORT.first_message, *SUPPORT.replies[:2]]
    assert sales == [SALES.first_message, *SALES.replies[:2]]
    assert set(support).isdisjoint(sales)


def test_ping_every_ten_seconds_measures_the_round_trip():
    async def scenario():
        clock = ManualClock()
        comm = communicator(application(clock, ping_interval=10.0), mint()["signed_url"])
        await open_conversation(comm, text_only=True)
        await receive_turn(comm)
        await clock.advance(9.9)
        await comm.send_json_to({"type": "user_message", "text": "hi"})
        assert (await comm.receive_json_from())["type"] == "user_transcript"  # no ping yet
        await receive_turn(comm)
        await clock.advance(0.25)
        ping = await comm.receive_json_from()
        assert ping == {"type": "ping", "ping_event": {"event_id": 1, "ping_ms": None}}
        clock.t += 0.042
        await comm.send_json_to({"type": "pong", "event_id": 1})
        await barrier(comm)
        await clock.advance(10.0)
        ping = await comm.receive_json_from()
        assert ping["ping_event"] == {"event_id": 2, "ping_ms": 42}
        await comm.disconnect()

    run_with_our_webhook(scenario())


def test_speech_then_silence_gets_a_spoken_reply():
    minted = mint()

    async def scenario():
        clock = ManualClock()
        comm = communicator(application(clock, ping_interval=100.0), minted["signed_url"])
        await open_conversation(comm, text_only=False)
        words = voice.count_words(SUPPORT.first_message)
        await receive_turn(comm, words)
        await clock.advance(words * 0.4)  # the greeting has been played
        for _ in range(10):  # 0.32 s of speech
            await comm.send_json_to({"user_audio_chunk": pcm_chunk(3000)})
        for _ in range(25):  # 0.8 s of quiet, as the microphone keeps sending
            await comm.send_json_to({"user_audio_chunk": pcm_chunk(10)})
        echo = await comm.receive_json_from()
        assert echo["type"] == "user_transcript"
        assert echo["user_transcription_event"]["user_transcript"] == "(spoken message)"
        reply, audio = await receive_turn(comm, voice.count_words(SUPPORT.replies[0]))
        assert reply["agent_response_event"]["agent_response"] == SUPPORT.replies[0]
        assert audio and all(event["type"] == "audio" for event in audio)
        await comm.disconnect()

    run_with_our_webhook(scenario())
    transcript = conversation(minted["conversation_id"]).transcript
    assert [(item["role"], item["interrupted"]) for item in transcript] == [
        ("agent", False),
        ("user", False),
        ("agent", False),
    ]
    assert transcript[1]["source_medium"] == "audio"


def test_speaking_over_the_agent_interrupts_it():
    minted = mint()

    async def scenario():
        clock = ManualClock()
        comm = communicator(application(clock), minted["signed_url"])
        await open_conversation(comm, text_only=False)
        greeting, _ = await receive_turn(comm, voice.count_words(SUPPORT.first_message))
        await clock.advance(1.0)  # the greeting is still playing
        for _ in range(4):
            await comm.send_json_to({"user_audio_chunk": pcm_chunk(3000)})
        interruption = await comm.receive_json_from()
        assert interruption["type"] == "interruption"
        interrupted_at = interruption["interruption_event"]["event_id"]
        assert interrupted_at > greeting["agent_response_event"]["event_id"]
        for _ in range(25):
            await comm.send_json_to({"user_audio_chunk": pcm_chunk(0)})
        assert (await comm.receive_json_from())["type"] == "user_transcript"
        reply, audio = await receive_turn(comm, voice.count_words(SUPPORT.replies[0]))
        # The client drops audio older than the interruption; the reply's must be newer.
        assert all(event["audio_event"]["event_id"] >= interrupted_at for event in audio)
        await comm.disconnect()

    run_with_our_webhook(scenario())
    transcript = conversation(minted["conversation_id"]).transcript
    assert transcript[0]["interrupted"] is True
    assert transcript[2]["interrupted"] is False


# --- ending ------------------------------------------------------------------------------------------


def test_client_close_ends_the_conversation_and_sends_a_signed_webhook():
    minted = mint("sales")

    async def scenario():
        comm = communicator(application(ManualClock()), minted["signed_url"])
        await open_conversation(comm, text_only=True, user_id="cust-7")
        await receive_turn(comm)
        await comm.send_json_to({"type": "user_message", "text": "For my team"})
        await comm.receive_json_from()
        await receive_turn(comm)
        await comm.disconnect(code=1000)  # endSession(): 1000 "User ended conversation"

    with responses.RequestsMock() as rsps:
        rsps.add(responses.POST, WEBHOOK_URL, status=200)
        run(scenario())
        assert len(rsps.calls) == 1
        request = rsps.calls[0].request

    verify_signature(header=request.headers[SIGNATURE_HEADER], secret=simulator_signing_secret(), body=request.body)
    envelope = json.loads(request.body)
    assert envelope["type"] == "post_call_transcription"
    data = envelope["data"]
    assert data["conversation_id"] == minted["conversation_id"]
    assert data["agent_id"] == "sim_sales_agent"
    assert data["status"] == "done"
    assert data["user_id"] == "cust-7"
    assert [(item["role"], item["message"]) for item in data["transcript"]] == [
        ("agent", SALES.first_message),
        ("user", "For my team"),
        ("agent", SALES.replies[0]),
    ]
    assert data["metadata"]["termination_reason"] == "Client disconnected: 1000"
    assert data["analysis"]["call_successful"] == "success"

    stored = conversation(minted["conversation_id"])
    assert stored.status == "done"
    assert stored.ended_at is not None
    assert stored.webhook_sent_at is not None
    assert stored.transcript == data["transcript"]


def test_goodbye_makes_the_agent_hang_up_after_its_farewell():
    minted = mint()

    async def scenario():
        clock = ManualClock()
        comm = communicator(application(clock, ping_interval=100.0), minted["signed_url"])
        await open_conversation(comm, text_only=False)
        await receive_turn(comm, voice.count_words(SUPPORT.first_message))
        await clock.advance(30)
        await comm.send_json_to({"type": "user_message", "text": "That's all, bye!"})
        await comm.receive_json_from()
        farewell_words = voice.count_words(SUPPORT.farewell)
        farewell, _ = await receive_turn(comm, farewell_words)
        assert farewell["agent_response_event"]["agent_response"] == SUPPORT.farewell
        await clock.advance(farewell_words * 0.4)  # hangs up once the goodbye has been played
        tool = await comm.receive_json_from()
        assert tool["type"] == "agent_tool_response"
        assert tool["agent_tool_response"]["tool_name"] == "end_call"
        assert tool["agent_tool_response"]["is_error"] is False
        closed = await expect_close(comm)
        assert closed["code"] == 1000
        await comm.disconnect(code=1000)

    with responses.RequestsMock() as rsps:
        rsps.add(responses.POST, WEBHOOK_URL, status=200)
        run(scenario())
        assert len(rsps.calls) == 1
    stored = conversation(minted["conversation_id"])
    assert stored.status == "done"
    assert stored.termination_reason == "end_call tool was called."
    assert stored.transcript[-1]["tool_calls"][0]["tool_name"] == "end_call"


def test_goodbye_in_text_mode_hangs_up_at_once():
    async def scenario():
        comm = communicator(application(ManualClock()), mint("sales")["signed_url"])
        await open_conversation(comm, text_only=True)
        await receive_turn(comm)
        await comm.send_json_to({"type": "user_message", "text": "goodbye"})
        await comm.receive_json_from()
        farewell, _ = await receive_turn(comm)
        assert farewell["agent_response_event"]["agent_response"] == SALES.farewell
        assert (await comm.receive_json_from())["type"] == "agent_tool_response"
        assert (await expect_close(comm))["code"] == 1000
        await comm.disconnect(code=1000)

    run_with_our_webhook(scenario())


def test_inactivity_ends_the_conversation():
    minted = mint()

    async def scenario():
        clock = ManualClock()
        comm = communicator(application(clock, inactivity_timeout=5.0, ping_interval=100.0), minted["signed_url"])
        await open_conversation(comm, text_only=True)
        await receive_turn(comm)
        await clock.advance(4.0)
        await comm.send_json_to({"type": "user_activity"})  # resets the timer
        await barrier(comm)
        await clock.advance(4.0)
        await comm.send_json_to({"type": "user_message", "text": "still here"})
        assert (await comm.receive_json_from())["type"] == "user_transcript"
        await receive_turn(comm)
        await clock.advance(5.0)
        closed = await expect_close(comm)
        assert closed["code"] == 1000
        assert closed["reason"] == "No user input for 5 seconds"
        await comm.disconnect(code=1000)

    with responses.RequestsMock() as rsps:
        rsps.add(responses.POST, WEBHOOK_URL, status=200)
        run(scenario())
        assert len(rsps.calls) == 1
    stored = conversation(minted["conversation_id"])
    assert stored.status == "done"
    assert stored.termination_reason == "No user input for 5 seconds"


def test_the_maximum_duration_ends_the_conversation():
    async def scenario():
        clock = ManualClock()
        comm = communicator(application(clock, max_duration=20.0, ping_interval=100.0), mint()["signed_url"])
        await open_conversation(comm, text_only=True)
        await receive_turn(comm)
        for _ in range(3):  # active all along, so inactivity is not what ends it
            await clock.advance(5.0)
            await comm.send_json_to({"type": "user_activity"})
            await barrier(comm)
        await clock.advance(5.0)
        closed = await expect_close(comm)
        assert (closed["code"], closed["reason"]) == (1000, "Maximum call duration reached")
        await comm.disconnect(code=1000)

    run_with_our_webhook(scenario())


def test_a_failing_webhook_does_not_break_the_ending(caplog):
    minted = mint()

    async def scenario():
        comm = communicator(application(ManualClock()), minted["signed_url"])
        await open_conversation(comm, text_only=True)
        await receive_turn(comm)
        await comm.disconnect(code=1001)

    with responses.RequestsMock() as rsps:
        rsps.add(responses.POST, WEBHOOK_URL, status=503)
        run(scenario())
    stored = conversation(minted["conversation_id"])
    assert stored.status == "done"
    assert stored.termination_reason == "Client disconnected: 1001"
    assert stored.webhook_sent_at is None
    assert any("answered 503" in record.getMessage() for record in caplog.records)


# --- a real server process and a real WebSocket client ---------------------------------------------------


@pytest.mark.server
def test_a_real_client_talks_to_the_served_simulator_and_the_webhook_reaches_the_session(
    live_asgi_server,  # noqa: F811
    alice,
    settings,
):
    from websockets.exceptions import ConnectionClosed
    from websockets.sync.client import connect

    from sessions.services.lifecycle import session_activate, session_create, session_mark_connecting

    settings.PUBLIC_BASE_URL = live_asgi_server  # minted here, in the test process, for that server
    session = session_create(customer_id="cust-real", user=alice, agent_type="support", simulation=True)
    minted = simulator_mint_signed_url(
        session=session,
        agent_id=simulator_agent_id("support"),
        agent_type="support",
        text_only=True,
    )
    session_mark_connecting(session=session, agent_id="sim_support_agent", connection_type="websocket", simulation=True)
    url = minted["signed_url"] + JS_SDK
    browser = {"subprotocols": ["convai"], "origin": live_asgi_server, "open_timeout": 10}

    with connect(url, **browser) as socket:
        assert socket.subprotocol == "convai"
        metadata = json.loads(socket.recv(timeout=10))
        assert metadata["type"] == "conversation_initiation_metadata"
        session_activate(session=session, conversation_id=minted["conversation_id"])  # as the page reports it
        socket.send(json.dumps(client_data(text_only=True)))
        assert json.loads(socket.recv(timeout=10))["agent_response_event"]["agent_response"] == SUPPORT.first_message
        socket.send(json.dumps({"type": "user_message", "text": "My internet stopped working"}))
        assert json.loads(socket.recv(timeout=10))["type"] == "user_transcript"
        assert json.loads(socket.recv(timeout=10))["agent_response_event"]["agent_response"] == SUPPORT.replies[0]
        socket.close(code=1000, reason="User ended conversation")

    # Used once: a second connection is accepted and closed with 1008 and the reason.
    with connect(url, **browser) as socket:
        with pytest.raises(ConnectionClosed) as closed:
            socket.recv(timeout=10)
    assert closed.value.rcvd.code == 1008
    assert closed.value.rcvd.reason == "Signed URL has already been used"

    # The server process stores the conversation and POSTs the webhook to itself; wait for both (bounded).
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        stored = conversation(minted["conversation_id"])
        session.refresh_from_db()
        if stored.webhook_sent_at and session.post_call_received_at:
            break
        time.sleep(0.1)
    assert stored.status == "done"
    assert stored.webhook_sent_at is not None
    assert session.post_call_received_at is not None
    assert [item["message"] for item in session.transcript] == [
        SUPPORT.first_message,
        "My internet stopped working",
        SUPPORT.replies[0],
    ]
    assert session.status == "ended"
