"""One error shape for every JSON error: ``{"error": {"code", "message", …}}``.

Whatever refuses a request raises an :class:`ApplicationError` (or a subclass that fixes its
status and code); one handler (voiceagent.api.exception_handler for DRF views, and
:func:`error_response` for plain views and middleware) turns it into that body.
"""

from __future__ import annotations

from typing import Any

from django.http import JsonResponse


class ApplicationError(Exception):
    """A request we refuse, with the HTTP status and a stable machine-readable code.

    ``extra`` adds keys beside code and message (``fields`` for validation errors, ``variable``
    for a missing setting, ``upstream_status`` where ElevenLabs failed, ...).
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


def error_body(code: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, **extra}}


def error_response(
    status: int, code: str, message: str, *, headers: dict[str, str] | None = None, **extra: Any
) -> JsonResponse:
    """The JSON answer for a plain Django view or a middleware, in the one shape."""
    return JsonResponse(error_body(code, message, **extra), status=status, headers=headers)
