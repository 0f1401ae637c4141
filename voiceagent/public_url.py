"""Where clients reach this service: PUBLIC_BASE_URL, with the request as a development fallback.

A request's Host header is the caller's to choose (ALLOWED_HOSTS does not check the port), so
nothing we hand out or send to ourselves is built from it in production. With DEBUG on and no
PUBLIC_BASE_URL, :class:`RequestOriginMiddleware` (installed only then) lets the request being
served stand in, so `make run` works from whatever address the developer opened.
"""

from __future__ import annotations

from contextvars import ContextVar

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.conf import settings
from django.http import HttpRequest

from voiceagent.errors import ApplicationError

_current_request: ContextVar[HttpRequest | None] = ContextVar("voiceagent_current_request", default=None)


class PublicBaseUrlMissing(ApplicationError):
    """Something needs to tell clients where we are (the simulated agent's URLs), and nothing says."""

    status = 503
    code = "public_base_url_missing"
    variable = "PUBLIC_BASE_URL"

    def __init__(self) -> None:
        super().__init__(
            "The simulated agent needs PUBLIC_BASE_URL (where clients reach this service, "
            "e.g. https://voice.example.com); it is not set.",
            variable=self.variable,
        )


def public_base_url() -> str:
    """``PUBLIC_BASE_URL``; with DEBUG on and none set, the origin of the request being served; else ""."""
    if settings.PUBLIC_BASE_URL:
        return settings.PUBLIC_BASE_URL
    request = _current_request.get()
    if settings.DEBUG and request is not None:
        return request.build_absolute_uri("/").rstrip("/")
    return ""


def require_public_base_url() -> str:
    """:func:`public_base_url`, or :class:`PublicBaseUrlMissing` when there is none."""
    base = public_base_url()
    if not base:
        raise PublicBaseUrlMissing()
    return base


def websocket_base(http_base: str) -> str:
    """The ws:// or wss:// origin that matches an http:// or https:// one."""
    scheme, _, rest = http_base.partition("://")
    return f"{'wss' if scheme == 'https' else 'ws'}://{rest}"


class RequestOriginMiddleware:
    """DEBUG only: makes the request being served the fallback for :func:`public_base_url`."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response):
        self.get_response = get_response
        if iscoroutinefunction(get_response):
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest):
        if iscoroutinefunction(self):
            return self._acall(request)
        token = _current_request.set(request)
        try:
            return self.get_response(request)
        finally:
            _current_request.reset(token)

    async def _acall(self, request: HttpRequest):
        token = _current_request.set(request)
        try:
            return await self.get_response(request)
        finally:
            _current_request.reset(token)
