"""POST /elevenlabs/webhook: ElevenLabs' post-call webhook.

It authenticates by its signature alone: no login, no CSRF token, no DRF
authentication or throttling (ElevenLabs cannot send any of those). The view
checks the secret, spools and verifies the body, and hands it to
:mod:`elevenlabs.ingest`; every answer is JSON.
"""

from __future__ import annotations

import logging
import tempfile

from django.conf import settings
from django.http import HttpRequest, JsonResponse, UnreadablePostError
from django.views.decorators.csrf import csrf_exempt

from elevenlabs.ingest import DeliveryProcessingFailed, MalformedDelivery, NotASimulatedConversation, webhook_ingest
from elevenlabs.webhooks import (
    ELEVENLABS,
    SIGNATURE_HEADER,
    BodyTooLarge,
    SignatureError,
    check_signature_header,
    spool_signed_body,
    webhook_signers,
)
from voiceagent.bodylimit import Refusal, header_value

logger = logging.getLogger("voiceagent.elevenlabs.webhook")

# Bodies up to this size stay in memory while spooled; larger ones (audio) go to a temp file.
SPOOL_MEMORY_BYTES = 1024 * 1024


def _error_body(message: str) -> dict[str, str]:
    return {"error": message}


def _error(status: int, message: str) -> JsonResponse:
    return JsonResponse(_error_body(message), status=status)


def _signature_refused(reason: str, *, signers: dict[str, str], client: str) -> tuple[int, str]:
    """The status and message for a delivery whose signature is not accepted."""
    if ELEVENLABS not in signers:
        # Without the secret no ElevenLabs delivery can be checked: 503 so that it is retried once set.
        logger.error("webhook refused: ELEVENLABS_WEBHOOK_SECRET is not configured")
        return 503, "Webhook secret is not configured; no ElevenLabs delivery is accepted."
    logger.warning("webhook refused from %s: %s", client, reason)
    return 401, f"Invalid signature: {reason}."


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
        status, message = _signature_refused(exc.reason, signers=webhook_signers(), client=client)
        return Refusal(status, _error_body(message))
    return None


@csrf_exempt
def webhook(request: HttpRequest) -> JsonResponse:
    if request.method != "POST":
        response = _error(405, "Use POST.")
        response["Allow"] = "POST"
        return response
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
            return _error(*_signature_refused(exc.reason, signers=signers, client=client))
        except BodyTooLarge as exc:
            logger.warning("webhook refused from %s: body over %d bytes", client, exc.limit)
            return _error(413, f"Body larger than {exc.limit} bytes.")
        except (UnreadablePostError, OSError):
            logger.warning("webhook from %s: the body could not be read", client)
            return _error(400, "The request body could not be read.")
        try:
            delivery = webhook_ingest(body=spool, signed=signed)
        except NotASimulatedConversation as exc:
            logger.warning("webhook from %s refused: %s", client, exc)
            return _error(401, str(exc))
        except MalformedDelivery as exc:
            logger.warning("webhook from %s refused after a valid signature: %s", client, exc)
            return _error(400, str(exc))
        except DeliveryProcessingFailed:
            return _error(500, "The delivery could not be processed; it has been logged.")
    return JsonResponse({"status": delivery.outcome})
