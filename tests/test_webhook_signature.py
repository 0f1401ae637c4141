"""ElevenLabs-Signature: signing, verification, and what the webhook endpoint does with a bad one."""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import logging
import time

import pytest

from elevenlabs.models import WebhookDelivery
from elevenlabs.webhooks import (
    ELEVENLABS,
    SIMULATOR,
    BodyTooLarge,
    SignatureError,
    parse_signature_header,
    sign,
    signing_secret,
    simulator_signing_secret,
    spool_signed_body,
    verify_signature,
    webhook_signers,
)
from sessions.models import SessionEvent, VoiceSession
from sessions.services.lifecycle import session_create, session_mark_connecting

SECRET = "wsec_unit_secret_abcdef"
NOW = 1_780_000_000
BODY = b'{"type":"post_call_transcription","data":{"conversation_id":"conv_sig"}}'
URL = "/elevenlabs/webhook"


def expected_hex(secret: str, timestamp: int | str, body: bytes) -> str:
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def test_sign_produces_the_documented_header():
    assert sign(BODY, secret=SECRET, timestamp=NOW) == f"t={NOW},v0={expected_hex(SECRET, NOW, BODY)}"


def test_sign_uses_the_current_time_by_default():
    before = int(time.time())
    header = sign(BODY, secret=SECRET)
    timestamp = int(parse_signature_header(header)[0])
    assert before <= timestamp <= int(time.time())


def test_sign_refuses_an_empty_secret():
    with pytest.raises(ValueError):
        sign(BODY, secret="")


def test_a_valid_signature_is_accepted_whole_or_in_chunks():
    header = sign(BODY, secret=SECRET, timestamp=NOW)
    assert verify_signature(header=header, secret=SECRET, body=BODY, now=NOW) == NOW
    chunks = [BODY[i : i + 7] for i in range(0, len(BODY), 7)]
    assert verify_signature(header=header, secret=SECRET, chunks=iter(chunks), now=NOW + 5) == NOW


def test_the_wrong_secret_is_refused():
    header = sign(BODY, secret="another-secret", timestamp=NOW)
    with pytest.raises(SignatureError) as caught:
        verify_signature(header=header, secret=SECRET, body=BODY, now=NOW)
    assert caught.value.reason == "signature mismatch"


def test_a_tampered_body_is_refused():
    header = sign(BODY, secret=SECRET, timestamp=NOW)
    with pytest.raises(SignatureError, match="mismatch"):
        verify_signature(header=header, secret=SECRET, body=BODY.replace(b"conv_sig", b"conv_sih"), now=NOW)


def test_a_changed_timestamp_is_refused():
    hex_ = expected_hex(SECRET, NOW, BODY)
    with pytest.raises(SignatureError, match="mismatch"):
        verify_signature(header=f"t={NOW + 1},v0={hex_}", secret=SECRET, body=BODY, now=NOW)


def test_signatures_up_to_thirty_minutes_old_are_accepted_older_ones_refused():
    header = sign(BODY, secret=SECRET, timestamp=NOW)
    assert verify_signature(header=header, secret=SECRET, body=BODY, now=NOW + 30 * 60) == NOW
    with pytest.raises(SignatureError) as caught:
        verify_signature(header=header, secret=SECRET, body=BODY, now=NOW + 30 * 60 + 1)
    assert caught.value.reason == "signature timestamp too old"


def test_signatures_more_than_five_minutes_ahead_are_refused():
    header = sign(BODY, secret=SECRET, timestamp=NOW)
    assert verify_signature(header=header, secret=SECRET, body=BODY, now=NOW - 5 * 60) == NOW
    with pytest.raises(SignatureError) as caught:
        verify_signature(header=header, secret=SECRET, body=BODY, now=NOW - 5 * 60 - 1)
    assert caught.value.reason == "signature timestamp in the future"


GOOD_HEX = "a" * 64


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "   ",
        "garbage",
        f"v0={GOOD_HEX}",  # no timestamp
        f"t={NOW}",  # no signature
        f"t=abc,v0={GOOD_HEX}",
        f"t=-5,v0={GOOD_HEX}",
        f"t=1.5,v0={GOOD_HEX}",
        f"t={NOW},t={NOW},v0={GOOD_HEX}",
        f"t={NOW},v0=",
        f"t={NOW},v0=xyz",
        f"t={NOW},v0={'g' * 64}",
        f"t={NOW},v0={GOOD_HEX}0",  # 65 hex digits: not a SHA-256
        f"t={NOW};v0={GOOD_HEX}",
        f"t={NOW},v0={GOOD_HEX},,",
        f"t={NOW}," + ",".join(f"v0={GOOD_HEX}" for _ in range(9)),
        f"t={NOW},v0={GOOD_HEX}" + "x" * 2000,
    ],
)
def test_malformed_headers_are_refused_before_the_body_is_read(header):
    def body_must_not_be_read():
        raise AssertionError("the body was read for a malformed header")
        yield b""

    with pytest.raises(SignatureError) as caught:
        verify_signature(header=header, secret=SECRET, chunks=body_must_not_be_read(), now=NOW)
    assert caught.value.reason in {"malformed signature header", "missing signature header"}


def test_a_stale_header_is_refused_before_the_body_is_read():
    def body_must_not_be_read():
        raise AssertionError("the body was read for a stale header")
        yield b""

    header = sign(BODY, secret=SECRET, timestamp=NOW)
    with pytest.raises(SignatureError, match="too old"):
        verify_signature(header=header, secret=SECRET, chunks=body_must_not_be_read(), now=NOW + 3600)


def test_any_of_several_v0_values_may_match():
    good = expected_hex(SECRET, NOW, BODY)
    other = expected_hex("old-secret", NOW, BODY)
    for header in (f"t={NOW},v0={other},v0={good}", f"t={NOW},v0={good},v0={other}", f"v0={good},t={NOW}"):
        assert verify_signature(header=header, secret=SECRET, body=BODY, now=NOW) == NOW
    # Upper-case hex and spaces around the parts are the same signature.
    assert verify_signature(header=f" t={NOW} , v0={good.upper()} ", secret=SECRET, body=BODY, now=NOW) == NOW
    # Unknown schemes are ignored, not treated as signatures.
    assert verify_signature(header=f"t={NOW},v1={other},v0={good}", secret=SECRET, body=BODY, now=NOW) == NOW
    with pytest.raises(SignatureError, match="mismatch"):
        verify_signature(header=f"t={NOW},v0={other},v0={'0' * 64}", secret=SECRET, body=BODY, now=NOW)


def test_an_empty_secret_never_verifies():
    header = sign(BODY, secret="x", timestamp=NOW)
    forged = f"t={NOW},v0={expected_hex('', NOW, BODY)}"
    for candidate in (header, forged):
        with pytest.raises(SignatureError, match="no signing secret"):
            verify_signature(header=candidate, secret="", body=BODY, now=NOW)


def test_spooling_copies_the_body_while_verifying_it():
    body = b"x" * 200_000
    header = sign(body, secret=SECRET, timestamp=NOW)
    spool = io.BytesIO()
    signed = spool_signed_body(
        stream=io.BytesIO(body), header=header, signers={ELEVENLABS: SECRET}, spool=spool, max_bytes=10**6, now=NOW
    )
    assert (signed.timestamp, signed.size, signed.sha256) == (NOW, len(body), hashlib.sha256(body).hexdigest())
    assert spool.tell() == 0 and spool.read() == body


def test_spooling_stops_at_the_size_limit():
    body = b"x" * 200_000
    header = sign(body, secret=SECRET, timestamp=NOW)
    with pytest.raises(BodyTooLarge):
        spool_signed_body(
            stream=io.BytesIO(body),
            header=header,
            signers={ELEVENLABS: SECRET},
            spool=io.BytesIO(),
            max_bytes=100_000,
            now=NOW,
        )


def test_the_configured_secret_is_the_signing_secret(settings):
    settings.ELEVENLABS_WEBHOOK_SECRET = "wsec_configured"
    assert signing_secret() == "wsec_configured"
    assert webhook_signers() == {ELEVENLABS: "wsec_configured", SIMULATOR: simulator_signing_secret()}


def test_the_simulator_has_a_key_of_its_own_derived_from_the_secret_key(settings):
    settings.ELEVENLABS_WEBHOOK_SECRET = "wsec_configured"
    derived = simulator_signing_secret()
    assert len(derived) == 64 and settings.SECRET_KEY not in derived
    assert derived != signing_secret()
    assert simulator_signing_secret() == derived  # stable: the simulator and the endpoint agree
    settings.SECRET_KEY = settings.SECRET_KEY + "-other"
    assert simulator_signing_secret() != derived


def test_spooling_says_which_signer_signed(settings):
    signers = {ELEVENLABS: SECRET, SIMULATOR: "sim-key"}
    for signer, key in signers.items():
        header = sign(BODY, secret=key, timestamp=NOW)
        signed = spool_signed_body(
            stream=io.BytesIO(BODY), header=header, signers=signers, spool=io.BytesIO(), max_bytes=10**6, now=NOW
        )
        assert signed.signed_by == signer
        assert signed.by_simulator is (signer == SIMULATOR)


def test_no_secret_configured_means_only_the_simulator_signs(settings):
    settings.ELEVENLABS_WEBHOOK_SECRET = ""
    assert signing_secret() == ""
    assert webhook_signers() == {SIMULATOR: simulator_signing_secret()}


# --- the endpoint -------------------------------------------------------------------------------


def post(client, body: bytes, header: str | None):
    extra = {"HTTP_ELEVENLABS_SIGNATURE": header} if header is not None else {}
    return client.post(URL, data=body, content_type="application/json", **extra)


def nothing_stored() -> bool:
    return not WebhookDelivery.objects.exists() and not SessionEvent.objects.exists()


@pytest.mark.django_db
def test_endpoint_accepts_a_valid_signature(client, settings):
    response = post(client, BODY, sign(BODY, secret=settings.ELEVENLABS_WEBHOOK_SECRET))
    assert response.status_code == 200
    assert response.json() == {"status": "unmatched"}


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("make_header", "reason"),
    [
        (lambda secret: sign(BODY, secret="wrong-secret"), "signature mismatch"),
        (lambda secret: sign(BODY + b" ", secret=secret), "signature mismatch"),
        (lambda secret: sign(BODY, secret=secret, timestamp=int(time.time()) - 31 * 60), "too old"),
        (lambda secret: sign(BODY, secret=secret, timestamp=int(time.time()) + 6 * 60), "in the future"),
        (lambda secret: "t=1,v0=nothex", "malformed"),
        (lambda secret: None, "missing"),
    ],
)
def test_endpoint_refuses_bad_signatures_with_401_and_stores_nothing(client, settings, caplog, make_header, reason):
    session = VoiceSession.objects.create(customer_id="c", status="active", conversation_id="conv_sig")
    header = make_header(settings.ELEVENLABS_WEBHOOK_SECRET)
    with caplog.at_level(logging.WARNING, logger="voiceagent.elevenlabs.webhook"):
        response = post(client, BODY, header)
    assert response.status_code == 401
    assert reason in response.json()["error"]["message"]
    assert nothing_stored()
    session.refresh_from_db()
    assert session.status == "active" and session.transcript == []
    # One log line says why; it carries neither the secret nor the signature.
    assert any(reason in r.getMessage() for r in caplog.records)
    text = " ".join(r.getMessage() for r in caplog.records)
    assert settings.ELEVENLABS_WEBHOOK_SECRET not in text
    if header and "v0=" in header:
        assert header.split("v0=")[1] not in text


@pytest.mark.django_db
def test_endpoint_without_a_secret_answers_503_and_accepts_nothing(client, settings):
    settings.ELEVENLABS_WEBHOOK_SECRET = ""
    for header in (
        sign(BODY, secret="anything"),
        f"t={int(time.time())},v0={expected_hex('', int(time.time()), BODY)}",
    ):
        response = post(client, BODY, header)
        assert response.status_code == 503
        assert "not configured" in response.json()["error"]["message"]
    assert nothing_stored()


@pytest.mark.django_db
def test_endpoint_accepts_the_simulator_key_only_for_a_simulated_sessions_conversation(client, settings, alice):
    settings.ELEVENLABS_WEBHOOK_SECRET = ""
    simulated = session_create(customer_id="c", user=alice, simulation=True)
    session_mark_connecting(
        session=simulated, agent_id="a", connection_type="websocket", simulation=True, conversation_id="conv_123"
    )
    body = json.dumps({"type": "post_call_transcription", "data": {"conversation_id": "conv_123"}}).encode()

    assert post(client, body, sign(body, secret=simulator_signing_secret())).status_code == 200
    assert post(client, body, sign(body, secret=settings.SECRET_KEY)).status_code == 503


@pytest.mark.django_db
def test_the_simulator_key_is_refused_for_a_real_sessions_conversation(client, settings, alice):
    real = session_create(customer_id="c", user=alice, simulation=False)
    session_mark_connecting(
        session=real, agent_id="a", connection_type="websocket", simulation=False, conversation_id="conv_real"
    )
    for conversation_id in ("conv_real", "conv_nobody"):
        body = json.dumps({"type": "post_call_transcription", "data": {"conversation_id": conversation_id}}).encode()

        response = post(client, body, sign(body, secret=simulator_signing_secret()))

        assert response.status_code == 401
        assert "simulated" in response.json()["error"]["message"]
    assert not WebhookDelivery.objects.exists()
    real.refresh_from_db()
    assert real.post_call_received_at is None


@pytest.mark.django_db
def test_endpoint_needs_no_login_and_no_csrf_token(settings):
    from django.test import Client

    strict = Client(enforce_csrf_checks=True)
    response = post(strict, BODY, sign(BODY, secret=settings.ELEVENLABS_WEBHOOK_SECRET))
    assert response.status_code == 200


@pytest.mark.django_db
def test_endpoint_answers_other_methods_with_405_json(client):
    response = client.get(URL)
    assert response.status_code == 405
    assert response["Allow"] == "POST"
    assert "error" in response.json()


@pytest.mark.django_db
def test_endpoint_refuses_an_oversized_body_with_413(client, settings):
    settings.ELEVENLABS_WEBHOOK_MAX_BYTES = 50
    body = json.dumps({"type": "x", "data": {"pad": "y" * 100}}).encode()
    response = post(client, body, sign(body, secret=settings.ELEVENLABS_WEBHOOK_SECRET))
    assert response.status_code == 413
    assert nothing_stored()
