"""API-wide error shape: every failure is JSON with a 4xx/5xx status, never a stack trace."""

from __future__ import annotations

import logging

from django.conf import settings
from django.core.exceptions import PermissionDenied, RequestDataTooBig
from django.http import Http404
from django.utils.csp import CSP, build_policy
from rest_framework import renderers, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from elevenlabs.credentials import AgentNotConfigured
from sessions.services import (
    ConversationAlreadyClaimed,
    ConversationMismatch,
    InvalidTransition,
    SessionError,
    StartFailed,
)
from voiceagent.faults import (
    RETRY_AFTER_SECONDS,
    database_unavailable,
    database_unavailable_body,
    log_database_unavailable,
)
from voiceagent.public_url import PublicBaseUrlMissing

logger = logging.getLogger("voiceagent.api")


def exception_handler(exc, context):
    if isinstance(exc, StartFailed):
        return start_failed_response(exc)
    if isinstance(exc, PublicBaseUrlMissing):
        return Response(
            {"error": {"code": exc.code, "message": str(exc), "variable": exc.variable}},
            status=status.HTTP_503_SERVICE_UNAVAILABLE,
        )
    if isinstance(exc, AgentNotConfigured):
        return Response(
            {"error": {"code": exc.code, "message": str(exc), "variable": exc.variable}},
            status=status.HTTP_400_BAD_REQUEST,
        )
    if isinstance(exc, InvalidTransition):
        return Response(
            {"detail": str(exc), "code": exc.code, "status": exc.current_status},
            status=status.HTTP_409_CONFLICT,
        )
    if isinstance(exc, ConversationAlreadyClaimed):
        return Response(
            {"detail": str(exc), "code": exc.code, "conversation_id": exc.conversation_id},
            status=status.HTTP_409_CONFLICT,
        )
    if isinstance(exc, ConversationMismatch):
        return Response(
            {"detail": str(exc), "code": exc.code, "conversation_id": exc.conversation_id},
            status=status.HTTP_409_CONFLICT,
        )
    if isinstance(exc, SessionError):
        return Response({"detail": str(exc), "code": exc.code}, status=status.HTTP_400_BAD_REQUEST)
    if database_unavailable(exc):
        log_database_unavailable(context["request"], exc)
        return Response(
            database_unavailable_body(),
            status=status.HTTP_503_SERVICE_UNAVAILABLE,
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        )
    if isinstance(exc, RequestDataTooBig):
        return Response({"detail": "Request body too large."}, status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE)
    response = drf_exception_handler(exc, context)
    if response is None and not isinstance(exc, (Http404, PermissionDenied)):
        # Anything unexpected: log it (redacted, with the traceback) and answer a clean 500.
        logger.exception("unhandled error in %s", context.get("view").__class__.__name__)
        return Response(
            {"detail": "Internal error; it has been logged.", "code": "internal_error"},
            status=status.HTTP_500_INTERNAL_SERVER_ERROR,
        )
    return response


def start_failed_response(exc: StartFailed) -> Response:
    """ElevenLabs' own status and message, and the session we kept (now failed)."""
    from elevenlabs.client import ElevenLabsError
    from sessions.serializers import SessionOutput

    error = exc.error
    if isinstance(error, ElevenLabsError):
        body, http_status = error.as_dict(), error.http_status
    else:
        body = {
            "code": "internal_error",
            "message": exc.session.failure_message,
            "upstream_status": None,
            "upstream_code": None,
        }
        http_status = status.HTTP_502_BAD_GATEWAY
    return Response({"error": body, "backend_session": SessionOutput(exc.session).data}, status=http_status)


class BrowsableAPIRenderer(renderers.BrowsableAPIRenderer):
    """DRF's HTML pages carry inline styles and event handlers: they get a policy of their own.

    Everything else keeps the strict policy; these pages are for logged-in developers and show
    only what the JSON shows. The renderer is where HTML is chosen for a request, so it sets the
    header itself: Django's CSP middleware leaves a Content-Security-Policy that a response
    already carries.
    """

    # A nonce would switch 'unsafe-inline' off, so this policy has none.
    policy = {
        **settings.SECURE_CSP,
        "script-src": [CSP.SELF, CSP.UNSAFE_INLINE],
        "style-src": [CSP.SELF, CSP.UNSAFE_INLINE],
    }

    def render(self, data, accepted_media_type=None, renderer_context=None):
        response = (renderer_context or {}).get("response")
        if response is not None:
            response.headers[CSP.HEADER_ENFORCE] = build_policy(self.policy)
        return super().render(data, accepted_media_type, renderer_context)


__all__ = ["BrowsableAPIRenderer", "exception_handler"]


class JsonErrors:
    """For an API view whose answers are not JSON (the YAML schema, the Swagger page): its errors are.

    Without this, a refusal is rendered by the view's own renderer: YAML, or a bare
    "401 Unauthorized" from the HTML template renderer.
    """

    def handle_exception(self, exc):
        self.request.accepted_renderer = renderers.JSONRenderer()
        self.request.accepted_media_type = renderers.JSONRenderer.media_type
        return super().handle_exception(exc)
