"""What a verified post-call webhook does: the ledger, the session, the audio file, duplicates."""

from __future__ import annotations

import base64
import json
import os
import re
import threading
from pathlib import Path

import pytest
from django.db import connection
from django.test import Client

from elevenlabs import ingest
from elevenlabs.ingest import webhook_attach_pending
from elevenlabs.models import WebhookDelivery
from elevenlabs.webhooks import sign
from sessions.models import SessionEvent, VoiceSession
from sessions.services import lifecycle

URL = "/elevenlabs/webhook"

TRANSCRIPTION_DATA = {
    "agent_id": "agent_support_test",
    "conversation_id": "conv_1",
    "status": "done",
    "transcript": [
        {"role": "agent", "message": "Hello, how can I help?", "time_in_call_secs": 0},
        {"role": "user", "message": "My router is blinking.", "time_in_call_secs": 3.5},
    ],
    "metadata": {"start_time_unix_secs": 1780000000, "call_duration_secs": 42, "termination_reason": "end_call tool"},
    "analysis": {"call_successful": "success", "transcript_summary": "Router reset explained."},
}


def envelope(event_type: str, data: dict) -> bytes:
    return json.dumps({"type": event_type, "event_timestamp": 1780000050, "data": data}).encode()


def transcription(conversation_id: str = "conv_1") -> bytes:
    return envelope("post_call_transcription", {**TRANSCRIPTION_DATA, "conversation_id": conversation_id})


def audio_delivery(audio: bytes, conversation_id: str = "conv_1") -> bytes:
    return envelope(
        "post_call_audio",
        {
            "agent_id": "agent_support_test",
            "conversation_id": conversation_id,
            "full_audio": base64.b64encode(audio).decode(),
        },
    )


def only_noted_as_malformed() -> bool:
    """A refused signed delivery leaves one ledger row saying why, without its content, and nothing else."""
    rows = list(WebhookDelivery.objects.values_list("outcome", "payload", "session"))
    return rows == [("malformed", {}, None)] and WebhookDelivery.objects.get().error != ""


def post(client, body: bytes, secret: str):
    return client.post(
        URL, data=body, content_type="application/json", HTTP_ELEVENLABS_SIGNATURE=sign(body, secret=secret)
    )


@pytest.fixture
def deliver(client, settings):
    return lambda body: post(client, body, settings.ELEVENLABS_WEBHOOK_SECRET)


def active_session(conversation_id: str = "conv_1") -> VoiceSession:
    session = lifecycle.session_create(customer_id="cust-1")
    lifecycle.session_mark_connecting(
        session=session, agent_id="agent_support_test", connection_type="websocket", simulation=False
    )
    return lifecycle.session_activate(session=session, conversation_id=conversation_id)


def mp3_bytes(size: int) -> bytes:
    # Not a real MP3; what matters is that every byte survives, including ones base64 pads.
    return b"ID3" + os.urandom(size - 3)


def stored_file(name: str) -> Path:
    from django.conf import settings

    return Path(settings.MEDIA_ROOT) / name


# --- post_call_transcription -------------------------------------------------------------


@pytest.mark.django_db
def test_transcription_stores_the_post_call_data_and_ends_the_session(deliver):
    session = active_session()
    response = deliver(transcription())
    assert response.status_code == 200
    assert response.json() == {"status": "processed"}

    session.refresh_from_db()
    assert session.status == "ended" and session.end_reason == "webhook"
    assert session.transcript == TRANSCRIPTION_DATA["transcript"]
    assert session.analysis == TRANSCRIPTION_DATA["analysis"]
    assert session.call_metadata == TRANSCRIPTION_DATA["metadata"]
    assert session.call_successful == "success"
    assert session.transcript_summary == "Router reset explained."
    assert session.call_duration_secs == 42
    assert session.termination_reason == "end_call tool"

    delivery = WebhookDelivery.objects.get()
    assert (delivery.event_type, delivery.conversation_id, delivery.outcome) == (
        "post_call_transcription",
        "conv_1",
        "processed",
    )
    assert delivery.session == session and delivery.processed_at is not None and delivery.error == ""
    assert delivery.agent_id == "agent_support_test" and delivery.event_timestamp == 1780000050
    assert delivery.body_bytes == len(transcription()) and len(delivery.body_sha256) == 64
    # The transcript lives on the session; the ledger keeps a summary, not a second copy.
    assert "transcript" not in delivery.payload
    assert delivery.payload["turns"] == len(TRANSCRIPTION_DATA["transcript"])
    assert delivery.payload["stored_on_session"] is True
    kinds = list(session.events.values_list("kind", flat=True))
    assert kinds[-2:] == ["post_call", "ended"]


@pytest.mark.django_db
def test_transcription_for_an_ended_session_fills_the_data_without_a_second_end(deliver):
    session = active_session()
    lifecycle.session_end(session=session, reason="user")
    assert deliver(transcription()).json() == {"status": "processed"}
    session.refresh_from_db()
    assert session.status == "ended" and session.end_reason == "user"
    assert session.call_successful == "success"
    assert session.events.filter(kind="ended").count() == 1


# --- post_call_audio -----------------------------------------------------------------------


@pytest.mark.django_db
def test_audio_is_stored_whole_in_the_sessions_audio_file(deliver):
    session = active_session()
    audio = mp3_bytes(300_001)
    response = deliver(audio_delivery(audio))
    assert response.json() == {"status": "processed"}

    session.refresh_from_db()
    assert session.audio.name.startswith("call-audio/") and session.audio.name.endswith("conv_1.mp3")
    with session.audio.open("rb") as stored:
        assert stored.read() == audio
    # The audio lives in the file only; the ledger keeps its size and where it went.
    delivery = WebhookDelivery.objects.get()
    assert "full_audio" not in delivery.payload
    assert delivery.payload["audio_bytes"] == len(audio)
    assert delivery.payload["audio_path"] == session.audio.name
    assert session.events.filter(kind="post_call_audio").count() == 1
    # Audio alone does not end the session: the transcription webhook or the client does.
    assert session.status == "active"


@pytest.mark.django_db
@pytest.mark.parametrize("full_audio", ["not base64!", "QUJDRA", "QUJD\nRA==", "", 12, "QUJDRA==QUJD", "QUJDé"])
def test_audio_that_is_not_base64_is_refused_with_400_and_only_noted_as_malformed(deliver, full_audio):
    session = active_session()
    events = session.events.count()
    body = envelope("post_call_audio", {"conversation_id": "conv_1", "full_audio": full_audio})
    response = deliver(body)
    assert response.status_code == 400
    assert "full_audio" in response.json()["error"]["message"]
    assert only_noted_as_malformed()
    session.refresh_from_db()
    assert not session.audio and session.events.count() == events


# --- call_initiation_failure -------------------------------------------------------------


@pytest.mark.django_db
def test_call_initiation_failure_marks_the_session_failed_with_the_reason(deliver):
    session = active_session("conv_out")
    body = envelope(
        "call_initiation_failure",
        {
            "agent_id": "agent_sales_test",
            "conversation_id": "conv_out",
            "failure_reason": "busy",
            "metadata": {"type": "twilio", "body": {}},
        },
    )
    assert deliver(body).json() == {"status": "processed"}
    session.refresh_from_db()
    assert session.status == "failed"
    assert session.failure_code == "call_initiation_failure"
    assert "busy" in session.failure_message
    assert WebhookDelivery.objects.get().outcome == "processed"


@pytest.mark.django_db
def test_call_initiation_failure_after_the_session_ended_is_noted_without_changing_it(deliver):
    session = active_session("conv_out")
    lifecycle.session_end(session=session, reason="user")
    body = envelope("call_initiation_failure", {"conversation_id": "conv_out", "failure_reason": "no-answer"})
    assert deliver(body).json() == {"status": "processed"}
    session.refresh_from_db()
    assert session.status == "ended" and session.failure_code == ""
    assert session.events.filter(kind="call_initiation_failure").exists()
    assert "already ended" in WebhookDelivery.objects.get().error


# --- unknown and malformed --------------------------------------------------------------


@pytest.mark.django_db
def test_unknown_event_types_are_answered_200_and_recorded_as_ignored(deliver):
    session = active_session()
    response = deliver(envelope("post_call_something_new", {"conversation_id": "conv_1", "x": 1}))
    assert response.status_code == 200 and response.json() == {"status": "ignored"}
    delivery = WebhookDelivery.objects.get()
    assert (delivery.event_type, delivery.outcome, delivery.session) == ("post_call_something_new", "ignored", session)
    assert delivery.payload == {"conversation_id": "conv_1", "x": 1}
    session.refresh_from_db()
    assert session.status == "active"


@pytest.mark.django_db
@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b'{"type": "post_call_transcription", "data": {"conversation_id": "conv_1"}} trailing',
        b"",
        b"[1, 2]",
        b'{"type": "post_call_transcription", "data": "text"}',
        b'{"type": "post_call_transcription", "data": {"transcript": []}}',
        b'{"type": "post_call_transcription", "data": {"conversation_id": 5}}',
        b'{"type": "post_call_audio", "data": {"conversation_id": "../../etc/x", "full_audio": "QUJD"}}',
        b'{"type": "post_call_transcription", "data": {"conversation_id": "conv 1"}}',
        b'{"type": "post_call_transcription", "data": {"conversation_id": "c", "transcript": "hi"}}',
        b'{"type": "post_call_transcription", "event_timestamp": "soon", "data": {"conversation_id": "c"}}',
        b'{"type": "post_call_transcription", "data": {"conversation_id": "c\xff"}}',
    ],
)
def test_malformed_bodies_with_a_valid_signature_get_400_and_are_only_noted_as_malformed(deliver, body):
    session = active_session()
    events = session.events.count()
    response = deliver(body)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "malformed_delivery"
    assert only_noted_as_malformed()
    session.refresh_from_db()
    assert session.status == "active" and session.events.count() == events


# --- unmatched, then attached -------------------------------------------------------------


@pytest.mark.django_db
def test_a_transcription_nobody_claimed_is_kept_and_attached_when_a_session_claims_it(deliver):
    assert deliver(transcription("conv_late")).json() == {"status": "unmatched"}
    delivery = WebhookDelivery.objects.get()
    assert delivery.outcome == "unmatched" and delivery.session is None
    assert delivery.payload["transcript"] == TRANSCRIPTION_DATA["transcript"]

    session = active_session("conv_late")
    assert webhook_attach_pending(session=session) == 1
    session.refresh_from_db()
    delivery.refresh_from_db()
    assert session.status == "ended" and session.transcript == TRANSCRIPTION_DATA["transcript"]
    assert (delivery.outcome, delivery.session) == ("processed", session)
    assert "transcript" not in delivery.payload  # now on the session only
    # Attaching again finds nothing; a redelivery is now a duplicate.
    assert webhook_attach_pending(session=session) == 0
    assert deliver(transcription("conv_late")).json() == {"status": "duplicate"}
    assert session.events.filter(kind="post_call").count() == 1


@pytest.mark.django_db
def test_audio_nobody_claimed_waits_in_pending_audio_and_moves_to_the_session(deliver):
    audio = mp3_bytes(70_000)
    assert deliver(audio_delivery(audio, "conv_late")).json() == {"status": "unmatched"}
    pending = WebhookDelivery.objects.get().payload["audio_path"]
    assert pending.startswith("pending-audio/")
    assert stored_file(pending).read_bytes() == audio

    session = active_session("conv_late")
    assert webhook_attach_pending(session=session) == 1
    session.refresh_from_db()
    with session.audio.open("rb") as stored:
        assert stored.read() == audio
    assert not stored_file(pending).exists()
    assert WebhookDelivery.objects.get().payload["audio_path"] == session.audio.name


@pytest.mark.django_db
def test_a_failure_nobody_claimed_fails_the_session_that_claims_it(deliver):
    body = envelope("call_initiation_failure", {"conversation_id": "conv_late", "failure_reason": "no-answer"})
    assert deliver(body).json() == {"status": "unmatched"}
    session = active_session("conv_late")
    assert webhook_attach_pending(session=session) == 1
    session.refresh_from_db()
    assert session.status == "failed" and "no-answer" in session.failure_message


@pytest.mark.django_db
def test_attach_applies_only_the_sessions_own_conversation(deliver):
    deliver(transcription("conv_other"))
    session = active_session("conv_mine")
    assert webhook_attach_pending(session=session) == 0
    assert WebhookDelivery.objects.get().outcome == "unmatched"
    assert webhook_attach_pending(session=lifecycle.session_create(customer_id="no-conversation")) == 0


# --- duplicates -----------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_same_delivery_twice_is_processed_once(deliver, monkeypatch):
    session = active_session()
    calls = []
    original = ingest.session_store_post_call
    monkeypatch.setattr(ingest, "session_store_post_call", lambda **kw: calls.append(kw) or original(**kw))

    assert deliver(transcription()).json() == {"status": "processed"}
    assert deliver(transcription()).json() == {"status": "duplicate"}
    assert len(calls) == 1
    outcomes = sorted(WebhookDelivery.objects.values_list("outcome", flat=True))
    assert outcomes == ["duplicate", "processed"]
    assert session.events.filter(kind="post_call").count() == 1


@pytest.mark.django_db
def test_the_same_audio_twice_writes_one_file(deliver, settings):
    session = active_session("conv_dup_audio")
    audio = mp3_bytes(10_000)
    assert deliver(audio_delivery(audio, "conv_dup_audio")).json() == {"status": "processed"}
    assert deliver(audio_delivery(audio, "conv_dup_audio")).json() == {"status": "duplicate"}
    files = [p for p in Path(settings.MEDIA_ROOT).rglob("*.mp3") if "conv_dup_audio" in p.name]
    session.refresh_from_db()
    assert files == [stored_file(session.audio.name)]


@pytest.mark.django_db
def test_transcription_and_audio_for_one_conversation_are_both_processed(deliver):
    active_session()
    assert deliver(transcription()).json() == {"status": "processed"}
    assert deliver(audio_delivery(mp3_bytes(1000))).json() == {"status": "processed"}


@pytest.mark.django_db(transaction=True)
def test_concurrent_copies_of_a_delivery_are_processed_exactly_once(settings):
    session = active_session()
    body = transcription()
    secret = settings.ELEVENLABS_WEBHOOK_SECRET
    start = threading.Barrier(8)
    results: list[tuple[int, dict]] = []

    def send():
        try:
            start.wait()
            response = post(Client(), body, secret)
            results.append((response.status_code, response.json()))
        finally:
            connection.close()

    threads = [threading.Thread(target=send) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert [code for code, _ in results] == [200] * 8
    assert sorted(answer["status"] for _, answer in results) == ["duplicate"] * 7 + ["processed"]
    outcomes = list(WebhookDelivery.objects.values_list("outcome", flat=True))
    assert sorted(outcomes) == ["duplicate"] * 7 + ["processed"]
    assert SessionEvent.objects.filter(session=session, kind="post_call").count() == 1
    assert SessionEvent.objects.filter(session=session, kind="ended").count() == 1


# --- failures while applying --------------------------------------------------------------------


@pytest.mark.django_db
def test_a_failure_while_applying_rolls_back_answers_500_and_a_retry_succeeds(deliver, monkeypatch):
    session = active_session()

    def broken(**kwargs):
        raise RuntimeError("database went away")

    monkeypatch.setattr(ingest, "session_store_post_call", broken)
    response = deliver(transcription())
    assert response.status_code == 500
    assert "logged" in response.json()["error"]["message"] and "database went away" not in response.content.decode()
    failed = WebhookDelivery.objects.get()
    assert failed.outcome == "ignored" and "RuntimeError" in failed.error
    session.refresh_from_db()
    assert session.status == "active"

    monkeypatch.undo()
    assert deliver(transcription()).json() == {"status": "processed"}
    session.refresh_from_db()
    assert session.status == "ended"


@pytest.mark.django_db
@pytest.mark.parametrize("size", [1, 2, 3, 4, 5, 6, 7, 100])
def test_audio_is_decoded_across_slice_boundaries(deliver, monkeypatch, size):
    monkeypatch.setattr(ingest, "DECODE_SLICE_CHARS", 8)
    session = active_session(f"conv_slices_{size}")
    audio = os.urandom(size)
    assert deliver(audio_delivery(audio, f"conv_slices_{size}")).json() == {"status": "processed"}
    session.refresh_from_db()
    with session.audio.open("rb") as stored:
        assert stored.read() == audio


@pytest.mark.django_db
def test_padding_at_a_slice_boundary_inside_the_audio_is_refused(deliver, monkeypatch):
    monkeypatch.setattr(ingest, "DECODE_SLICE_CHARS", 8)
    active_session()
    body = envelope("post_call_audio", {"conversation_id": "conv_1", "full_audio": "QUJDRA==QUJD"})
    assert deliver(body).status_code == 400
    assert only_noted_as_malformed()


def test_a_large_body_is_parsed_in_a_few_large_reads():
    # yajl re-lexes a string from its start after every read that ends inside it: many small reads
    # of a long base64 string take quadratic time (seconds for 27 MB), a few large ones do not.
    import io

    audio = base64.b64encode(os.urandom(3 * 1024 * 1024)).decode()
    body = json.dumps({"type": "post_call_audio", "data": {"conversation_id": "c", "full_audio": audio}}).encode()

    class CountingReader(io.BytesIO):
        reads = 0

        def read(self, size=-1):
            CountingReader.reads += 1
            return super().read(size)

        def readinto(self, buffer):  # what ijson's C backend uses
            CountingReader.reads += 1
            return super().readinto(buffer)

    envelope_ = ingest.parse_delivery(CountingReader(body), body_bytes=len(body))
    envelope_.audio.close()
    assert envelope_.audio_bytes == 3 * 1024 * 1024
    # Two passes (the shape scan, then ijson), each in about eight reads.
    assert CountingReader.reads <= 24


# --- admin ----------------------------------------------------------------------------------------


@pytest.fixture
def admin_client_(django_user_model):
    admin = django_user_model.objects.create_superuser("root", password="root-pass-123")
    client = Client()
    client.force_login(admin)
    return client


@pytest.mark.django_db
def test_admin_lists_filters_and_searches_the_ledger_read_only(deliver, admin_client_, settings):
    session = active_session()
    deliver(transcription())
    deliver(transcription())
    deliver(transcription("conv_nobody"))
    base = "/admin/elevenlabs/webhookdelivery/"

    page = admin_client_.get(base).content.decode()
    assert "conv_1" in page and "conv_nobody" in page
    assert f"/admin/voice_sessions/voicesession/{session.pk}/change/" in page
    assert "3 webhook deliveries" in page
    filtered = admin_client_.get(base, {"outcome": "unmatched", "event_type": "post_call_transcription"})
    assert "conv_nobody" in filtered.content.decode() and re.search(
        r"\b1 webhook delivery\b", filtered.content.decode()
    )
    duplicates = admin_client_.get(base, {"outcome": "duplicate"}).content.decode()
    assert re.search(r"\b1 webhook delivery\b", duplicates) and "conv_nobody" not in duplicates
    searched = admin_client_.get(base, {"q": "conv_nobody"}).content.decode()
    assert re.search(r"\b1 webhook delivery\b", searched)

    assert admin_client_.get(base + "add/").status_code == 403
    delivery = WebhookDelivery.objects.filter(outcome="processed").get()
    detail = admin_client_.get(f"{base}{delivery.pk}/change/")
    assert detail.status_code == 200
    text = detail.content.decode()
    assert "stored_on_session" in text and 'name="_save"' not in text
    assert settings.ELEVENLABS_WEBHOOK_SECRET not in text
    waiting = WebhookDelivery.objects.get(outcome="unmatched")
    assert "Router reset explained." in admin_client_.get(f"{base}{waiting.pk}/change/").content.decode()
    assert admin_client_.post(f"{base}{delivery.pk}/delete/", {"post": "yes"}).status_code == 403
    assert WebhookDelivery.objects.count() == 3


@pytest.mark.django_db
def test_admin_shows_simulated_conversations_read_only(admin_client_):
    from datetime import timedelta

    from django.utils import timezone

    from elevenlabs.simulator.models import SimulatedConversation

    conversation = SimulatedConversation.objects.create(
        conversation_id="sim_conv_1",
        agent_id="agent_support_test",
        agent_type="support",
        expires_at=timezone.now() + timedelta(minutes=15),
        transcript=[{"role": "agent", "message": "Hi there"}],
    )
    base = "/admin/simulator/simulatedconversation/"
    assert "sim_conv_1" in admin_client_.get(base).content.decode()
    detail = admin_client_.get(f"{base}{conversation.pk}/change/")
    assert detail.status_code == 200 and "Hi there" in detail.content.decode()
    assert admin_client_.get(base + "add/").status_code == 403
