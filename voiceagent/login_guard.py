"""Password guessing: the client address django-axes counts failures by, and the lockout answer.

Failures are counted per username *and* client address (settings: LOGIN_FAILURE_LIMIT,
LOGIN_LOCKOUT_MINUTES), so a guesser locks out only their own pair: the same user from
another address, and other users from the guesser's address, still log in.
"""

from __future__ import annotations

import ipaddress

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse

from voiceagent.errors import error_response
from voiceagent.faults import wants_html


def client_address(request: HttpRequest) -> str | None:
    """REMOTE_ADDR, or behind our TLS proxy (BEHIND_TLS_PROXY) the X-Forwarded-For hop it appended.

    Only the last hop is the proxy's own word; the ones before it came from the client and can
    be anything, so they are never used.
    """
    if settings.BEHIND_TLS_PROXY:
        hops = [hop.strip() for hop in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")]
        if hops and _is_address(hops[-1]):
            return hops[-1]
    return request.META.get("REMOTE_ADDR")


def _is_address(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def lockout_message() -> str:
    return (
        "Too many failed logins for this account from your address. "
        f"Try again in {settings.LOGIN_LOCKOUT_MINUTES:g} minutes, or ask an administrator to clear the lockout."
    )


def lockout_response(request: HttpRequest, *args, **kwargs) -> HttpResponse:
    """429, as a page for browsers and as JSON for scripts.

    django-axes calls this with (request, original_response, credentials), or with
    (request, credentials) from its async middleware; neither is needed here.
    """
    retry_after = int(settings.AXES_COOLOFF_TIME.total_seconds())
    message = lockout_message()
    if wants_html(request):
        # The page in the look of the door that was knocked on: the admin's, or our own login page's.
        admin_door = request.path.startswith(reverse("admin:index"))
        template = "voiceagent/locked_out_admin.html" if admin_door else settings.LOGIN_LOCKOUT_TEMPLATE
        response = render(request, template, {"message": message}, status=429)
    else:
        response = error_response(429, "login_locked_out", message, retry_after=retry_after)
    response["Retry-After"] = str(retry_after)
    return response
