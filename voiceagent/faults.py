"""A database that stays locked or unreachable is answered 503 with Retry-After, never a 500.

Requests wait for a lock or a connection at most DATABASE_LOCK_TIMEOUT_SECONDS (SQLite's busy
wait, PostgreSQL's lock_timeout, the pool's and libpq's connect timeouts); past that the driver
raises OperationalError (or InterfaceError for a connection that went away). DRF views turn it
into 503 JSON in voiceagent.api.exception_handler; every other view (the webhook, the playground,
the admin, health) through :class:`DatabaseUnavailableMiddleware`. Whatever the request was
writing is rolled back, so a caller that retries loses nothing, and ElevenLabs retries webhooks
answered 5xx.
"""

from __future__ import annotations

import logging

from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse
from django.template.loader import render_to_string

from voiceagent.errors import ApplicationError

logger = logging.getLogger("voiceagent.faults")

DATABASE_UNAVAILABLE_ERRORS = (OperationalError, InterfaceError)
# Long enough for a lock holder to finish, short enough that a retrying client is not idle for long.
RETRY_AFTER_SECONDS = 5
DATABASE_UNAVAILABLE_MESSAGE = "The database is busy or unreachable; nothing was changed. Retry in a few seconds."


def database_unavailable(exc: BaseException) -> bool:
    """True for the errors a locked, overloaded or unreachable database raises."""
    return isinstance(exc, DATABASE_UNAVAILABLE_ERRORS)


class DatabaseUnavailable(ApplicationError):
    """503 with Retry-After: the request failed on the database, not on anything it sent."""

    status = 503
    code = "database_unavailable"

    def __init__(self) -> None:
        super().__init__(DATABASE_UNAVAILABLE_MESSAGE)

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(RETRY_AFTER_SECONDS)}


def wants_html(request: HttpRequest) -> bool:
    """A browser navigating (it asks for text/html), not a script or an htmx/fetch call."""
    if request.headers.get("X-Requested-With") == "XMLHttpRequest" or request.headers.get("HX-Request"):
        return False
    return "text/html" in request.headers.get("Accept", "")


def database_unavailable_response(request: HttpRequest) -> HttpResponse:
    if wants_html(request):
        # Rendered without the request: its context processors would read the user from the database.
        page = render_to_string("voiceagent/database_unavailable.html", {"message": DATABASE_UNAVAILABLE_MESSAGE})
        return HttpResponse(page, status=503, headers=DatabaseUnavailable().headers())
    return DatabaseUnavailable().as_response()


def log_database_unavailable(request: HttpRequest, exc: BaseException) -> None:
    # A warning without the traceback: the cause is outside the code, and the message says which.
    logger.warning("database unavailable for %s %s: %s: %s", request.method, request.path, type(exc).__name__, exc)


class DatabaseUnavailableMiddleware:
    """Answers 503 (JSON, or a short page for browsers) when a view fails on an unavailable database."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not database_unavailable(exception):
            return None
        log_database_unavailable(request, exception)
        return database_unavailable_response(request)
