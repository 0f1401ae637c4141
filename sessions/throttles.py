"""How many sessions one user may create (SESSION_CREATE_THROTTLE), whichever endpoint creates them."""

from __future__ import annotations

from rest_framework.request import Request
from rest_framework.views import APIView

from voiceagent.throttling import SettingsRateThrottle


class SessionCreateThrottle(SettingsRateThrottle):
    scope = "session_create"


def throttle_session_create(view: APIView, request: Request) -> None:
    """Raise DRF's Throttled (429 with Retry-After) when ``request.user`` has created too many sessions.

    Called by the views that create a session, and only on that path: listing sessions or
    connecting one that exists costs nothing from the budget.
    """
    throttle = SessionCreateThrottle()
    if not throttle.allow_request(request, view):
        view.throttled(request, throttle.wait())
