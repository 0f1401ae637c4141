"""TRANSCRIPT_REDACTION: personal data masked in transcripts and summaries before they are stored.

First the masking itself, on text written to trip it up (numbers that are not cards or phones, dates,
times, amounts, addresses inside punctuation); then every way a transcript reaches the database: the
webhook, the reconciler, a delivery parked until its session claims it, and the browser's live messages.
"""

from __future__ import annotations

import json
import time

import pytest
from django.test import Client

from elevenlabs.ingest import webhook_attach_pending
from elevenlabs.models import WebhookDelivery
from elevenlabs.webhooks import sign
from sessions.models import EventKind, SessionEvent, VoiceSession
from sessions.redaction import luhn_valid, mod97_valid, redact_conversation, redact_text
from sessions.services import lifecycle
from tests.elevenlabs_fakes import add_conversation, conversation

EMAIL = "[redacted email]"
PHONE = "[redacted phone]"
CARD = "[redacted card]"
IBAN = "[redacted iban]"


# --- Masking --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Write to <a@b.co>, please.", f"Write to <{EMAIL}>, please."),
        ("It's me (x.y+z@mail.example.org).", f"It's me ({EMAIL})."),
        ("Mail john.doe@example.com.", f"Mail {EMAIL}."),
        ('"first_last@sub.example.co.uk";', f'"{EMAIL}";'),
        ("Two: a@b.co,c@d.io", f"Two: {EMAIL},{EMAIL}"),
    ],
)
def test_email_addresses_are_masked_inside_punctuation(text, expected):
    assert redact_text(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Call +44 20 7946 0958 today.", f"Call {PHONE} today."),
        ("Call (555) 123-4567, thanks.", f"Call {PHONE}, thanks."),
        ("Berlin office: +49-30-123456.", f"Berlin office: {PHONE}."),
        ("US: +1 (555) 123-4567", f"US: {PHONE}"),
        ("In E.164: +15551234567", f"In E.164: {PHONE}"),
        ("Dots: 555.123.4567 or slashes 030/123456", f"Dots: {PHONE} or slashes {PHONE}"),
        ("London 020 7946 0958, Berlin 030 123456", f"London {PHONE}, Berlin {PHONE}"),
        ("Paris 01 23 45 67 89", f"Paris {PHONE}"),
        ("Both 555-123-4567 555-987-6543", f"Both {PHONE} {PHONE}"),
        # The number is masked; the count beside it is not part of it.
        ("I called 555-123-4567 2 times", f"I called {PHONE} 2 times"),
        ("On 15.03.2024 555-123-4567 answered", f"On 15.03.2024 {PHONE} answered"),
    ],
)
def test_phone_numbers_in_international_and_national_formats_are_masked(text, expected):
    assert redact_text(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Visa 4111 1111 1111 1111 please", f"Visa {CARD} please"),
        ("no spaces 4111111111111111.", f"no spaces {CARD}."),
        ("hyphens 5555-5555-5555-4444", f"hyphens {CARD}"),
        ("Amex 3782 822463 10005 ok", f"Amex {CARD} ok"),
    ],
)
def test_card_numbers_that_pass_luhn_are_masked(text, expected):
    assert redact_text(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("IBAN DE89 3704 0044 0532 0130 00 is mine", f"IBAN {IBAN} is mine"),
        ("GB82WEST12345698765432.", f"{IBAN}."),
        ("lower case: gb82 west 1234 5698 7654 32", f"lower case: {IBAN}"),
        ("NL91ABNA0417164300, FR1420041010050500013M02606", f"{IBAN}, {IBAN}"),
    ],
)
def test_ibans_with_a_valid_checksum_are_masked_with_or_without_spaces(text, expected):
    assert redact_text(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "Order 48213377 arrived; order number 1234567812345678 did not.",
        "A Luhn-failing sixteen: 4111 1111 1111 1112, and 4111111111111112.",
        "Tracking 9400 1000 0000 0000 0000 00 and ref 1234 5678 9012",
        "ORD-2024-0001234 shipped; invoice INV/2024/000123",
        "On 2024-03-15 10:30, 15.03.2024 at 12:45:00, or 03/15/2024 at 9:05 pm",
        "We met 2024-03-15 10:30:00 and 2024-03-16 11:00",
        "Total 123.456.789 euros, 1,234,567.89 dollars, 3.14159 and version 1.2.3",
        "Order 48213377 10 items, 30 2024-03-15",
        "An IBAN that fails its checksum: DE00 3704 0044 0532 0130 00 (DE00 is not a check).",
        "Country it does not know: ZZ89 3704 0044 0532 0130 00",
        "Not an address: user@localhost, @handle, a@b",
        "Room 12, floor 3, 2 bags",
    ],
)
def test_numbers_that_are_not_personal_survive(text):
    assert redact_text(text) == text


def test_masking_twice_gives_what_masking_once_gave():
    text = "Mail a@b.co, call +44 20 7946 0958, pay 4111 1111 1111 1111 from DE89 3704 0044 0532 0130 00."
    once = redact_text(text)
    assert once == f"Mail {EMAIL}, call {PHONE}, pay {CARD} from {IBAN}."
    assert redact_text(once) == once


def test_the_checks_are_the_standard_ones():
    assert luhn_valid("79927398713") and not luhn_valid("79927398710")
    assert mod97_valid("GB82WEST12345698765432") and not mod97_valid("GB83WEST12345698765432")


def test_a_conversation_keeps_everything_but_the_masked_text():
    details = conversation(
        transcript=[
            {"role": "user", "message": "I'm at a@b.co or +44 20 7946 0958", "original_message": "a@b.co", "x": 1},
            {"role": "agent", "message": None, "tool_calls": [{"params": "+44 20 7946 0958"}]},
            "not a turn",
        ],
        analysis={
            "call_successful": "success",
            "transcript_summary": "Customer a@b.co paid with 4111 1111 1111 1111 on 2024-03-15.",
            "call_summary_title": "Refund to DE89 3704 0044 0532 0130 00",
            "data_collection_results": {"email": {"value": "a@b.co"}},
        },
    )
    redacted = redact_conversation(details)
    turns = redacted.conversation["transcript"]
    assert turns[0] == {"role": "user", "message": f"I'm at {EMAIL} or {PHONE}", "original_message": EMAIL, "x": 1}
    assert turns[1] == details["transcript"][1]  # tool calls are not transcript text
    assert turns[2] == "not a turn"
    analysis = redacted.conversation["analysis"]
    assert analysis["transcript_summary"] == f"Customer {EMAIL} paid with {CARD} on 2024-03-15."
    assert analysis["call_summary_title"] == f"Refund to {IBAN}"
    assert analysis["data_collection_results"] == {"email": {"value": "a@b.co"}}  # gathered on purpose
    assert redacted.counts == {"email": 3, "iban": 1, "card": 1, "phone": 1}
    assert details["transcript"][0]["message"] == "I'm at a@b.co or +44 20 7946 0958"  # the input is not changed


def test_a_long_transcript_is_masked_in_reasonable_time():
    turn = "my order 48213377 from 2024-03-15 10:30 has not arrived, call me on +44 20 7946 0958 or mail a@b.co "
    details = conversation(transcript=[{"role": "user", "message": turn * 5} for _ in range(300)])  # ~150 KB
    started = time.perf_counter()
    redacted = redact_conversation(details)
    assert time.perf_counter() - started < 5  # linear patterns: well under a second unloaded
    assert redacted.counts["phone"] == redacted.counts["email"] == 1500


def test_a_hostile_digit_run_does_not_backtrack():
    started = time.perf_counter()
    redact_text("1 " * 20000 + "x" + "1-" * 20000 + "12345678901234567890" * 1000 + "@" * 10000)
    redact_text("a@" + "b-c." * 5000 + "-x " + "DE89 " * 5000 + "(555)" * 5000)
    assert time.perf_counter() - started < 5


# --- Where transcripts are stored ------------------------------------------------------------------

SECRET_TRANSCRIPT = [
    {"role": "agent", "message": "How can I reach you?", "time_in_call_secs": 0},
    {"role": "user", "message": "Mail me at jane@example.org or call (555) 123-4567.", "time_in_call_secs": 4},
    {"role": "user", "message": "Order 48213377, card 4111 1111 1111 1111.", "time_in_call_secs": 9},
]
SECRET_ANALYSIS = {
    "call_successful": "success",
    "transcript_summary": "Jane (jane@example.org) asked about order 48213377.",
    "call_summary_title": "Order 48213377 for jane@example.org",
}


def details(conversation_id: str) -> dict:
    return conversation(conversation_id, transcript=SECRET_TRANSCRIPT, analysis=SECRET_ANALYSIS)


def active_session(conversation_id: str) -> VoiceSession:
    session = lifecycle.session_create(customer_id="cust-1")
    lifecycle.session_mark_connecting(
        session=session, agent_id="agent_support_test", connection_type="websocket", simulation=False
    )
    return lifecycle.session_activate(session=session, conversation_id=conversation_id)


def deliver(settings, conversation_id: str):
    body = json.dumps({"type": "post_call_transcription", "event_timestamp": 1, "data": details(conversation_id)})
    return Client().post(
        "/elevenlabs/webhook",
        data=body.encode(),
        content_type="application/json",
        HTTP_ELEVENLABS_SIGNATURE=sign(body.encode(), secret=settings.ELEVENLABS_WEBHOOK_SECRET),
    )


def assert_masked(session: VoiceSession) -> None:
    stored = json.dumps([session.transcript, session.analysis, session.transcript_summary, session.summary_title])
    assert "jane@example.org" not in stored and "123-4567" not in stored and "4111" not in stored
    assert session.transcript[1]["message"] == f"Mail me at {EMAIL} or call {PHONE}."
    assert session.transcript[2]["message"] == f"Order 48213377, card {CARD}."
    assert session.transcript_summary == f"Jane ({EMAIL}) asked about order 48213377."
    assert session.summary_title == f"Order 48213377 for {EMAIL}"
    assert session.analysis["transcript_summary"] == session.transcript_summary
    row = session.events.get(kind=EventKind.REDACTED)
    assert {key: row.payload[key] for key in ("email", "phone", "card", "iban")} == {
        "email": 3,
        "phone": 1,
        "card": 1,
        "iban": 0,
    }


@pytest.fixture
def redaction(settings):
    settings.TRANSCRIPT_REDACTION = True
    return settings


@pytest.mark.django_db
def test_the_webhook_stores_the_masked_transcript_and_counts_on_the_timeline(redaction):
    session = active_session("conv_red_1")
    assert deliver(redaction, "conv_red_1").status_code == 200
    session.refresh_from_db()
    assert_masked(session)
    row = session.events.get(kind=EventKind.REDACTED)
    assert row.payload["source"] == "webhook"
    assert "jane" not in json.dumps(row.payload)


@pytest.mark.django_db
def test_the_reconciler_stores_the_masked_transcript(redaction, upstream):
    session = active_session("conv_red_2")
    lifecycle.session_end(session=session)
    add_conversation(upstream, details("conv_red_2"))
    from elevenlabs.reconcile import session_reconcile

    session_reconcile(session=VoiceSession.objects.get(pk=session.pk))
    session.refresh_from_db()
    assert_masked(session)
    assert session.events.get(kind=EventKind.REDACTED).payload["source"] == "reconciler"


@pytest.mark.django_db
def test_a_delivery_waiting_for_its_session_is_kept_masked_and_counted_when_applied(redaction):
    assert deliver(redaction, "conv_red_3").status_code == 200
    parked = WebhookDelivery.objects.get(conversation_id="conv_red_3")
    assert parked.outcome == "unmatched"
    assert "jane@example.org" not in json.dumps(parked.payload)
    session = active_session("conv_red_3")
    webhook_attach_pending(session=session)
    session.refresh_from_db()
    assert_masked(session)  # counted from what the stored text holds, though it was masked earlier


@pytest.mark.django_db
def test_the_live_messages_the_browser_reports_are_masked_too(redaction, alice_api, alice):
    session = lifecycle.session_create(user=alice, customer_id="cust-1")
    response = alice_api.post(
        f"/voice/sessions/{session.pk}/events",
        {"type": "message", "role": "user", "message": "I'm jane@example.org, born 1990-04-01"},
        format="json",
    )
    assert response.status_code == 200
    row = SessionEvent.objects.get(session=session, kind=EventKind.CLIENT_MESSAGE)
    assert row.payload == {"role": "user", "message": f"I'm {EMAIL}, born 1990-04-01"}


@pytest.mark.django_db
def test_without_the_setting_nothing_is_masked_or_counted(settings):
    settings.TRANSCRIPT_REDACTION = False
    session = active_session("conv_red_4")
    assert deliver(settings, "conv_red_4").status_code == 200
    session.refresh_from_db()
    assert session.transcript[1]["message"] == SECRET_TRANSCRIPT[1]["message"]
    assert not session.events.filter(kind=EventKind.REDACTED).exists()
