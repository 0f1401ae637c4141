"""Per-user rate limits whose rates come from settings (REST_FRAMEWORK's DEFAULT_THROTTLE_RATES).

The counts live in the default cache: per worker process with the local-memory cache, shared by
every worker and machine when REDIS_URL is set.
"""

from __future__ import annotations

from rest_framework.settings import api_settings
from rest_framework.throttling import UserRateThrottle


class SettingsRateThrottle(UserRateThrottle):
    """A UserRateThrottle for ``scope``; an empty or missing rate turns it off."""

    def get_rate(self) -> str | None:
        # DRF reads the rates once at import; reading them per request lets
        # settings overrides (tests, reloads) take effect.
        return api_settings.DEFAULT_THROTTLE_RATES.get(self.scope) or None
