"""POST /elevenlabs/webhook: ElevenLabs' post-call webhook.

It authenticates by its signature alone: no login, no CSRF token, no DRF
authentication or throttling (ElevenLabs cannot send any of those). The view
checks the secret, spools and verifies the body, and hands it to
:mod:`elevenlabs.ingest`; every answer is JSON, refusals in the one error shape.
Each delivery is counted once (``voiceagent_webhook_deliveries_total``) with its ledger
outcome or its refusal's error code.
"""

from __future__ import annotations

import logging
import tempfile

from django.conf import settings
from django.http import HttpRequest, JsonResponse, UnreadablePostError
from django.views.decorators.csrf import csrf_exempt

from elevenlabs.ingest import (
    KNOWN_TYPES,
    DeliveryProcessingFailed,
    MalformedDelivery,
    NotASimulatedConversation,
    webhook_ingest,
)
from elevenlabs.metrics import UNKNOWN_EVENT, count_webhook_delivery, webhook_event_label
from elevenlabs.models import WebhookOutcome
from elevenlabs.webhooks import (
    ELEVENLABS,
    SIGNATURE_HEADER,
    BodyTooLarge,
    SignatureError,
    check_signature_header,
    spool_signed_body,
    webhook_signers,
)
from voiceagent.bodylimit import Refusal, RequestBodyTooLarge, header_value
from voiceagent.errors import ApplicationError, MethodNotAllowed

logger = logging.getLogger("voiceagent.elevenlabs.webhook")

# Bodies up to this size stay in memory while spooled; larger ones (audio) go to a temp file.
SPOOL_MEMORY_BYTES = 1024 * 1024


def _signature_refused(reason: str, *, signers: dict[str, str], client: str) -> ApplicationError:
    """The refusal of a delivery whose signature is not accepted."""
    if ELEVENLABS not in signers:
        # Without the secret no ElevenLabs delivery can be checked: 503 so that it is retried once set.
        logger.error("webhook refused: ELEVENLABS_WEBHOOK_SECRET is not configured")
        return ApplicationError(
            "Webhook secret is not configured; no ElevenLabs delivery is accepted.",
            code="webhook_secret_missing",
            status=503,
            variable="ELEVENLABS_WEBHOOK_SECRET",
        )
    logger.warning("webhook refused from %s: %s", client, reason)
    return ApplicationError(f"Invalid signature: {reason}.", code="invalid_signature", status=401)


def webhook_refusal_before_body(scope: dict) -> Refusal | None:
    """The webhook's answer from its headers alone, when they already decide it; None to read the body.

    The ASGI entry point asks this before the body is read, so an unsigned or stale
    delivery costs nothing however large it is. The view checks everything again.
    """
    if scope.get("method") != "POST":
        return None  # the view answers 405
    try:
        check_signature_header(header_value(scope, SIGNATURE_HEADER))
    except SignatureError as exc:
        client = (scope.get("client") or ("-",))[0]
        refusal = _signature_refused(exc.reason, signers=webhook_signers(), client=client)
        count_webhook_delivery(UNKNOWN_EVENT, refusal.code)
        return Refusal(refusal.status, refusal.body())
    return None


@csrf_exempt
def webhook(request: HttpRequest) -> JsonResponse:
    if request.method != "POST":
        return MethodNotAllowed(request.method, ["POST"]).as_response()
    response, event_type, outcome = _receive(request)
    count_webhook_delivery(event_type, outcome)
    return response


def _receive(request: HttpRequest) -> tuple[JsonResponse, str, str]:
    """The answer to one delivery, its event type (as a metric label) and what became of it."""
    signers = webhook_signers()
    client = request.META.get("REMOTE_ADDR", "-")
    max_bytes = settings.ELEVENLABS_WEBHOOK_MAX_BYTES
    with tempfile.SpooledTemporaryFile(max_size=SPOOL_MEMORY_BYTES) as spool:
        try:
            signed = spool_signed_body(
                stream=request,
                header=request.headers.get(SIGNATURE_HEADER),
                signers=signers,
                spool=spool,
                max_bytes=max_bytes,
            )
        except SignatureError as exc:
            refusal = _signature_refused(exc.reason, signers=signers, client=client)
            return refusal.as_response(), UNKNOWN_EVENT, refusal.code
        except BodyTooLarge as exc:
            logger.warning("webhook refused from %s: body over %d bytes", client, exc.limit)
            too_large = RequestBodyTooLarge(exc.limit, f"Body larger than {exc.limit} bytes.")
            return too_large.as_response(), UNKNOWN_EVENT, too_large.code
        except (UnreadablePostError, OSError):
            logger.warning("webhook from %s: the body could not be read", client)
            unreadable = ApplicationError("The request body could not be read.", code="unreadable_body")
            return unreadable.as_response(), UNKNOWN_EVENT, unreadable.code
        try:
            delivery = webhook_ingest(body=spool, signed=signed)
        except NotASimulatedConversation as exc:
            logger.warning("webhook from %s refused: %s", client, exc)
            refused = ApplicationError(str(exc), code="not_simulated_conversation", status=401)
            return refused.as_response(), UNKNOWN_EVENT, refused.code
        except MalformedDelivery as exc:
            logger.warning("webhook from %s refused after a valid signature: %s", client, exc)
            malformed = ApplicationError(str(exc), code="malformed_delivery")
            return malformed.as_response(), _event_label(exc.event_type), WebhookOutcome.MALFORMED
        except DeliveryProcessingFailed as exc:
            failed = ApplicationError(
                "The delivery could not be processed; it has been logged.", code="internal_error", status=500
            )
            return failed.as_response(), _event_label(exc.delivery.event_type), failed.code
    return JsonResponse({"status": delivery.outcome}), _event_label(delivery.event_type), delivery.outcome


def _event_label(event_type: str) -> str:
    return webhook_event_label(event_type, KNOWN_TYPES)
