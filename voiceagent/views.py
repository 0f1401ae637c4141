"""Project-level endpoints: health, Prometheus metrics, the client log API, the API docs page, Django's error views.

The error views (handler404/500/400/403 and CSRF_FAILURE_VIEW) answer JSON in the one error
shape on the API's paths (voiceagent.errors.is_api_path) and Django's HTML pages elsewhere.
"""

from __future__ import annotations

import functools
import hmac
import json
import logging
import threading
import time
import tomllib
from urllib.parse import urlsplit, urlunsplit

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.db import connection
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.utils.csp import CSP
from django.views import csrf, defaults
from django.views.decorators.cache import never_cache
from django.views.decorators.csp import csp_override
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_safe
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView
from prometheus_client import CollectorRegistry, Counter
from prometheus_client.exposition import choose_encoder
from rest_framework import serializers, status
from rest_framework.exceptions import NotAuthenticated
from rest_framework.permissions import IsAdminUser, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from elevenlabs.checks import configuration_status
from sessions.metrics import LiveSessionsCollector
from sessions.models import VoiceSession
from sessions.selectors import session_visible_to
from voiceagent.api import INTERNAL_ERROR_MESSAGE, JsonErrors
from voiceagent.bodylimit import RequestBodyTooLarge
from voiceagent.db.probe import write_lock_probe
from voiceagent.errors import ApplicationError, MethodNotAllowed, error_response, is_api_path
from voiceagent.logging import escape_control, flush_log_writes, session_context
from voiceagent.logtail import tail_lines
from voiceagent.metrics import exposition_registry
from voiceagent.throttling import SettingsRateThrottle

logger = logging.getLogger("voiceagent.health")
client_logger = logging.getLogger("voiceagent.client")

# --- Health ------------------------------------------------------------------------------------


@functools.cache
def project_version() -> str:
    try:
        with open(settings.BASE_DIR / "pyproject.toml", "rb") as handle:
            return str(tomllib.load(handle)["project"]["version"])
    except (OSError, KeyError, tomllib.TOMLDecodeError):
        return "unknown"


def _public_url(url: str) -> str:
    """``url`` without user:password, should anyone have put credentials in it."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    return urlunsplit(parts._replace(netloc=parts.hostname or ""))


def elevenlabs_status() -> dict:
    """Which ElevenLabs mode the settings give, naming (never showing) what is missing."""
    mode, missing = configuration_status()
    return {"mode": mode, "missing": missing, "base_url": _public_url(settings.ELEVENLABS_BASE_URL)}


def database_status() -> dict:
    """Reachable, and able to take the write lock within HEALTH_WRITE_PROBE_SECONDS (else degraded)."""
    result: dict = {"ok": True, "vendor": connection.vendor}
    try:
        connection.ensure_connection()
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:  # whatever breaks, health answers with its name, not a traceback
        logger.warning("health check: database unreachable: %s: %s", type(exc).__name__, exc)
        result.update(ok=False, error=type(exc).__name__)
        return result
    blocked = write_lock_probe(table=VoiceSession._meta.db_table, timeout=settings.HEALTH_WRITE_PROBE_SECONDS)
    if blocked:
        logger.warning("health check: database degraded: %s", blocked)
        result.update(ok=False, degraded=True, error=blocked)
    return result


class DatabaseStatusCache:
    """The last database status of this process, reused for ``ttl`` seconds.

    Load balancers may poll every worker many times a second; one probe a second per process
    answers them all. While a probe runs (up to the probe's timeout), other callers get the
    last answer instead of queueing behind it.
    """

    def __init__(self, ttl: float = 1.0):
        self.ttl = ttl
        self._lock = threading.Lock()
        self._last: tuple[float, dict] | None = None

    def get(self) -> dict:
        last = self._last
        if last is not None and time.monotonic() - last[0] < self.ttl:
            return last[1]
        if not self._lock.acquire(blocking=last is None):
            return last[1]
        try:
            last = self._last
            if last is not None and time.monotonic() - last[0] < self.ttl:
                return last[1]
            status = database_status()
            self._last = (time.monotonic(), status)
            return status
        finally:
            self._lock.release()

    def forget(self) -> None:
        self._last = None


database_status_cache = DatabaseStatusCache()


@never_cache
def healthz(request: HttpRequest) -> JsonResponse:
    """Liveness and configuration for load balancers and operators; needs no login.

    503 when the database is unreachable ("error") or cannot take the write lock quickly
    ("degraded"): sessions cannot start and webhooks cannot be stored, so a load balancer
    should send traffic elsewhere, if it has anywhere. That 503 carries the health report, not
    the error shape: it answers the question asked, and monitors read ``status`` from it.
    """
    if request.method not in ("GET", "HEAD"):
        return MethodNotAllowed(request.method, ["GET", "HEAD"]).as_response()
    database = database_status_cache.get()
    if database["ok"]:
        overall = "ok"
    else:
        overall = "degraded" if database.get("degraded") else "error"
    body = {
        "status": overall,
        "database": database,
        "elevenlabs": elevenlabs_status(),
        "version": project_version(),
    }
    return JsonResponse(body, status=200 if database["ok"] else 503)


# --- Prometheus metrics ----------------------------------------------------------------------------


@functools.cache
def metrics_registry() -> CollectorRegistry:
    """This process's scrape registry: every worker's counters, and the live sessions read at scrape time."""
    return exposition_registry(LiveSessionsCollector())


def _bearer_token(request: HttpRequest) -> str:
    scheme, _, credential = request.headers.get("Authorization", "").partition(" ")
    return credential.strip() if scheme.lower() == "bearer" else ""


@csrf_exempt  # changes nothing; without a token a POST must meet the same 404 as a GET
@never_cache
def metrics(request: HttpRequest) -> HttpResponse:
    """Prometheus' scrape: ``Authorization: Bearer <METRICS_TOKEN>``; with no token configured, no such route."""
    token = settings.METRICS_TOKEN
    if not token:
        raise Http404("Not found.")
    if request.method not in ("GET", "HEAD"):
        return MethodNotAllowed(request.method, ["GET", "HEAD"]).as_response()
    # Compared in constant time, as bytes: the comparison must not tell how much of a guess was right.
    if not hmac.compare_digest(_bearer_token(request).encode(), token.encode()):
        return ApplicationError(
            "Send the metrics token as `Authorization: Bearer <METRICS_TOKEN>`.", code="not_authenticated", status=401
        ).as_response(headers={"WWW-Authenticate": 'Bearer realm="metrics"'})
    encoder, content_type = choose_encoder(request.headers.get("Accept"))
    return HttpResponse(encoder(metrics_registry()), content_type=content_type)


# --- Client logs ---------------------------------------------------------------------------------

CLIENT_LOG_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}
TAIL_DEFAULT = 200
TAIL_MAX = 5000


CLIENT_LOG_ENTRIES = Counter(
    "voiceagent_client_log_entries",
    "Client log entries sent to POST /api/logs: accepted, or refused with the error code (reason).",
    ["outcome", "reason"],
)


class ClientLogThrottle(SettingsRateThrottle):
    scope = "client_logs"


class StrictCharField(serializers.CharField):
    """A CharField that refuses numbers and other non-strings instead of converting them."""

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class ClientLogInput(serializers.Serializer):
    level = serializers.ChoiceField(choices=sorted(CLIENT_LOG_LEVELS))
    message = StrictCharField(trim_whitespace=False)
    sessionId = serializers.UUIDField(required=False, allow_null=True)  # camelCase: the /api contract
    context = serializers.DictField(required=False, allow_null=True)


class ClientLogOutput(serializers.Serializer):
    logged = serializers.BooleanField(help_text="False when the level is below the server's LOG_LEVEL.")


class LogTailInput(serializers.Serializer):
    tail = serializers.IntegerField(min_value=1, max_value=TAIL_MAX, default=TAIL_DEFAULT)


class LogTailOutput(serializers.Serializer):
    lines = serializers.ListField(
        child=serializers.CharField(),
        help_text="The file's lines as written, oldest first: text lines, or JSON objects with LOG_FORMAT=json.",
    )
    file = serializers.CharField()
    format = serializers.ChoiceField(choices=["text", "json"], help_text="How lines are written now (LOG_FORMAT).")


def _body_too_large(request: Request) -> int | None:
    """The body's size if it exceeds CLIENT_LOG_MAX_BYTES, else None; big bodies are not read."""
    limit = settings.CLIENT_LOG_MAX_BYTES
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    if declared > limit:
        return declared
    # A missing or lying Content-Length: measure what was actually sent
    # (Django itself stops at DATA_UPLOAD_MAX_MEMORY_SIZE with a 413).
    size = len(request._request.body)
    return size if size > limit else None


class ClientLogApi(APIView):
    """POST: a browser's log entry, appended to the log file. GET (staff): the file's last lines."""

    def get_permissions(self):
        if self.request.method == "GET":
            return [IsAdminUser()]
        return [IsAuthenticated()]

    def get_throttles(self):
        if self.request.method == "POST":
            return [ClientLogThrottle()]
        return []

    def handle_exception(self, exc):
        response = super().handle_exception(exc)
        if self.request.method == "POST":
            CLIENT_LOG_ENTRIES.labels("refused", response.data["error"]["code"]).inc()
        return response

    @extend_schema(
        request=ClientLogInput,
        responses={
            201: ClientLogOutput,
            413: inline_serializer(
                "ClientLogTooLarge",
                {
                    "error": inline_serializer(
                        "ClientLogTooLargeError",
                        {
                            "code": serializers.CharField(),
                            "message": serializers.CharField(),
                            "limit": serializers.IntegerField(),
                        },
                    )
                },
            ),
        },
    )
    def post(self, request: Request) -> Response:
        size = _body_too_large(request)
        if size is not None:
            limit = settings.CLIENT_LOG_MAX_BYTES
            raise RequestBodyTooLarge(limit, f"Log entry is {size} bytes; the limit is {limit} bytes.")
        data = ClientLogInput(data=request.data)
        data.is_valid(raise_exception=True)
        fields = data.validated_data
        session_id = fields.get("sessionId")
        if session_id is not None:
            session_visible_to(request.user, session_id)

        level = CLIENT_LOG_LEVELS[fields["level"]]
        context = fields.get("context")
        # Escaped here as well as by the formatter, so the entry stays on one
        # line under any handler a deployment adds.
        text = escape_control(fields["message"])
        if context:
            text += " context=" + escape_control(json.dumps(context, ensure_ascii=False, default=str))
        with session_context(session_id):
            client_logger.log(level, "client user=%s: %s", escape_control(request.user.get_username()), text)
        CLIENT_LOG_ENTRIES.labels("accepted", "").inc()
        return Response({"logged": client_logger.isEnabledFor(level)}, status=status.HTTP_201_CREATED)

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "tail",
                OpenApiTypes.INT,
                description=f"How many lines, 1..{TAIL_MAX} (default {TAIL_DEFAULT}).",
            )
        ],
        responses=LogTailOutput,
    )
    def get(self, request: Request) -> Response:
        query = LogTailInput(data=request.query_params)
        query.is_valid(raise_exception=True)
        flush_log_writes()  # what this worker just logged (a client entry, say) is in the tail
        lines = tail_lines(settings.LOG_FILE, query.validated_data["tail"])
        return Response({"lines": lines, "file": settings.LOG_FILE.name, "format": settings.LOG_FORMAT})


# --- API docs ------------------------------------------------------------------------------------

# Swagger UI has an inline <style> and data: icons; everything else stays as
# strict as the site-wide policy. (A nonce would make browsers ignore
# 'unsafe-inline', so style-src carries no nonce here.)
API_DOCS_CSP = {
    **settings.SECURE_CSP,
    "style-src": [CSP.SELF, CSP.UNSAFE_INLINE],
    "img-src": [CSP.SELF, "data:"],
}


class ApiSchemaView(JsonErrors, SpectacularAPIView):
    """The OpenAPI schema; like the rest of the API it needs a login or a token (SERVE_PERMISSIONS)."""


class ApiDocsView(JsonErrors, SpectacularSwaggerSplitView):
    """Swagger UI for a logged-in user (or a token); a browser with neither is sent to the login page."""

    def handle_exception(self, exc):
        if isinstance(exc, NotAuthenticated):
            return redirect_to_login(self.request.get_full_path())
        return super().handle_exception(exc)


api_docs = csp_override(API_DOCS_CSP)(ApiDocsView.as_view(url_name="schema"))


@require_safe
def favicon(request: HttpRequest) -> HttpResponse:
    """Browsers ask for /favicon.ico on every page (the admin's too); answer without a 404 in their console."""
    response = HttpResponse(status=204)
    response["Cache-Control"] = "public, max-age=86400"
    return response


# --- Django's error views --------------------------------------------------------------------------
# DRF views answer their own errors (voiceagent.api.exception_handler); these cover what happens
# outside them: an unknown URL, a crash in a plain view, a CSRF failure, a suspicious request.


def page_not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    if is_api_path(request.path):
        return error_response(404, "not_found", "Not found.")
    return defaults.page_not_found(request, exception)


def server_error(request: HttpRequest) -> HttpResponse:
    # Django has logged the exception (django.request) before it calls this.
    if is_api_path(request.path):
        return error_response(500, "internal_error", INTERNAL_ERROR_MESSAGE)
    return defaults.server_error(request)


def bad_request(request: HttpRequest, exception: Exception) -> HttpResponse:
    # A SuspiciousOperation; its message may quote the request's headers, so it is not repeated.
    if is_api_path(request.path):
        return error_response(400, "bad_request", "Bad request.")
    return defaults.bad_request(request, exception)


def permission_denied(request: HttpRequest, exception: Exception) -> HttpResponse:
    if is_api_path(request.path):
        return error_response(403, "permission_denied", "You do not have permission to perform this action.")
    return defaults.permission_denied(request, exception)


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    if is_api_path(request.path):
        return error_response(403, "csrf_failed", f"CSRF verification failed: {reason}")
    return csrf.csrf_failure(request, reason)
