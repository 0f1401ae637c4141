"""Where clients reach this service, from settings; the request only as a development fallback.

A request's Host header is the caller's to choose (ALLOWED_HOSTS does not check the port), so
nothing we hand out or send to ourselves is built from it in production.
"""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest


def public_base_url(request: HttpRequest | None = None) -> str:
    """``PUBLIC_BASE_URL``; with DEBUG on and none set, ``request``'s origin; otherwise ""."""
    if settings.PUBLIC_BASE_URL:
        return settings.PUBLIC_BASE_URL
    if settings.DEBUG and request is not None:
        return request.build_absolute_uri("/").rstrip("/")
    return ""


def websocket_base(http_base: str) -> str:
    """The ws:// or wss:// origin that matches an http:// or https:// one."""
    scheme, _, rest = http_base.partition("://")
    return f"{'wss' if scheme == 'https' else 'ws'}://{rest}"
