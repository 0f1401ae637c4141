"""The API's one exception handler: every failure of a DRF view is JSON in the one error shape.

``{"error": {"code", "message", …}}`` (voiceagent.errors): an :class:`ApplicationError` renders
itself; DRF's own exceptions keep their status and headers (WWW-Authenticate, Retry-After) and
get a body in the shape, validation errors with ``fields``; an unavailable database is 503;
anything else is logged and answered 500 ``internal_error``, never a traceback.
"""

from __future__ import annotations

import logging
import math
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied, RequestDataTooBig
from django.http import Http404
from rest_framework import exceptions, renderers
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.views import exception_handler as drf_exception_handler

from voiceagent.bodylimit import RequestBodyTooLarge
from voiceagent.errors import ApplicationError, error_body
from voiceagent.faults import DatabaseUnavailable, database_unavailable, log_database_unavailable

logger = logging.getLogger("voiceagent.api")

# How many field problems the message of a validation error spells out; ``fields`` has them all.
SUMMARY_FIELDS = 5
INTERNAL_ERROR_MESSAGE = "Internal error; it has been logged."


def exception_handler(exc, context):
    if database_unavailable(exc):
        log_database_unavailable(context["request"], exc)
        exc = DatabaseUnavailable()
    elif isinstance(exc, RequestDataTooBig):  # Django's DATA_UPLOAD_MAX_MEMORY_SIZE, read through request.body
        exc = RequestBodyTooLarge(settings.DATA_UPLOAD_MAX_MEMORY_SIZE)
    elif isinstance(exc, Http404):
        exc = exceptions.NotFound(*exc.args)
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied(*exc.args)
    if isinstance(exc, ApplicationError):
        return Response(exc.body(), status=exc.status, headers=exc.headers())
    if not isinstance(exc, exceptions.APIException):
        logger.exception("unhandled error in %s", context.get("view").__class__.__name__)
        return Response(error_body("internal_error", INTERNAL_ERROR_MESSAGE), status=500)
    # DRF's handler decides the status and headers (WWW-Authenticate, Retry-After) and rolls
    # back; only the body is ours.
    response = drf_exception_handler(exc, context)
    response.data = api_exception_body(exc)
    return response


def api_exception_body(exc: exceptions.APIException) -> dict[str, Any]:
    if isinstance(exc, exceptions.ValidationError):
        return validation_error_body(exc.detail)
    if isinstance(exc.detail, (list, dict)):  # another exception raised with structured detail
        return error_body(exc.default_code, "; ".join(" ".join(m) for m in flatten_errors(exc.detail).values()))
    extra: dict[str, Any] = {}
    if isinstance(exc, exceptions.Throttled) and exc.wait is not None:
        extra["retry_after"] = math.ceil(exc.wait)
    # The detail's code: not_authenticated, throttled, ... or a parser's own (json_too_deep, ...).
    return error_body(str(exc.detail.code or exc.default_code), str(exc.detail), **extra)


def validation_error_body(detail: Any) -> dict[str, Any]:
    """400 ``invalid``: each field with its messages, nested names dotted, and a readable summary.

    Errors that belong to no field (a ``non_field_errors`` list, or a bare ValidationError)
    make up the message; a nested serializer's own non-field errors belong to its field name.
    """
    fields = flatten_errors(detail)
    general = fields.pop("", [])
    named = [f"{name}: {' '.join(messages)}" for name, messages in fields.items()]
    message = " ".join(general + named[:SUMMARY_FIELDS]) or "Invalid input."
    if len(named) > SUMMARY_FIELDS:
        message += f" (and {len(named) - SUMMARY_FIELDS} more fields)"
    return error_body("invalid", message, fields=fields) if fields else error_body("invalid", message)


def flatten_errors(detail: Any, path: str = "") -> dict[str, list[str]]:
    """DRF's nested error detail as ``{"name": [...], "items.0.name": [...]}``; "" holds non-field errors."""
    fields: dict[str, list[str]] = {}
    if isinstance(detail, dict):
        for key, value in detail.items():
            name = path if str(key) == api_settings.NON_FIELD_ERRORS_KEY else _join(path, key)
            for child, messages in flatten_errors(value, name).items():
                fields.setdefault(child, []).extend(messages)
    elif isinstance(detail, list):
        for index, item in enumerate(detail):
            # A list of messages belongs to its field; a list of objects (many=True) is numbered.
            child_path = path if not isinstance(item, (dict, list)) else _join(path, index)
            for child, messages in flatten_errors(item, child_path).items():
                fields.setdefault(child, []).extend(messages)
    else:
        fields[path] = [str(detail)]
    return fields


def _join(path: str, key: Any) -> str:
    return f"{path}.{key}" if path else str(key)


class JsonErrors:
    """For an API view whose answers are not JSON (the YAML schema, the Swagger page): its errors are.

    Without this, a refusal is rendered by the view's own renderer: YAML, or a bare
    "401 Unauthorized" from the HTML template renderer.
    """

    def handle_exception(self, exc):
        self.request.accepted_renderer = renderers.JSONRenderer()
        self.request.accepted_media_type = renderers.JSONRenderer.media_type
        return super().handle_exception(exc)
