"""One error shape for every JSON error: ``{"error": {"code", "message", …}}``.

Whatever refuses a request raises an :class:`ApplicationError` (or a subclass that fixes its
status and code); one handler (voiceagent.api.exception_handler for DRF views, and
:meth:`ApplicationError.as_response` / :func:`error_response` for plain views and middleware)
turns it into that body. Django's own error pages (404, 500, CSRF, ...) answer in the shape too
on the API's paths (:func:`is_api_path`); the admin and the playground keep their HTML pages.
"""

from __future__ import annotations

from typing import Any

from django.http import JsonResponse

# Paths whose errors are JSON whatever went wrong (unknown URL, CSRF failure, crash); the rest of
# the site (admin, playground, login pages) answers with HTML pages.
API_PATH_PREFIXES = ("/api/", "/voice/", "/elevenlabs/")
API_PATHS = frozenset({"/healthz", "/metrics"})


class ApplicationError(Exception):
    """A request we refuse, with the HTTP status and a stable machine-readable code.

    ``extra`` adds keys beside code and message (``fields`` for validation errors, ``variable``
    for a missing setting, ``upstream_status`` where ElevenLabs failed, ...). A subclass that
    needs response headers (Retry-After, Allow) overrides :meth:`headers`.
    """

    status: int = 400
    code: str = "invalid_request"

    def __init__(self, message: str, *, code: str | None = None, status: int | None = None, **extra: Any):
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status
        self.extra = extra

    def body(self) -> dict[str, Any]:
        return error_body(self.code, self.message, **self.extra)

    def headers(self) -> dict[str, str]:
        return {}

    def as_response(self, *, headers: dict[str, str] | None = None) -> JsonResponse:
        """The answer of a plain Django view or a middleware (``headers`` added to the error's own)."""
        return JsonResponse(self.body(), status=self.status, headers={**self.headers(), **(headers or {})})


class MethodNotAllowed(ApplicationError):
    """405 with the Allow header, worded like DRF's own, for plain views."""

    status = 405
    code = "method_not_allowed"

    def __init__(self, method: str, allowed: list[str]):
        super().__init__(f'Method "{method}" not allowed.')
        self.allowed = allowed

    def headers(self) -> dict[str, str]:
        return {"Allow": ", ".join(self.allowed)}


def error_body(code: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, **extra}}


def error_response(
    status: int, code: str, message: str, *, headers: dict[str, str] | None = None, **extra: Any
) -> JsonResponse:
    """The JSON answer for a plain Django view or a middleware, in the one shape."""
    return JsonResponse(error_body(code, message, **extra), status=status, headers=headers)


def is_api_path(path: str) -> bool:
    """True where errors are answered as JSON: the API, the session API, the webhook, health and metrics."""
    return path.startswith(API_PATH_PREFIXES) or path in API_PATHS
