"""DRF token authentication that does not cost a query on every request.

Each worker process remembers, for TOKEN_CACHE_SECONDS, which user a token key belongs to. A
deleted token, or a user made inactive, stops working in this process at once (the signals below)
and in every other worker within TOKEN_CACHE_SECONDS. 0 turns the memory off.
"""

from __future__ import annotations

import copy
import threading
import time

from django.conf import settings
from django.db.models.signals import post_delete, post_save
from rest_framework.authentication import TokenAuthentication

# Enough for every service that calls us; past it the memory starts again rather than grow.
MAX_REMEMBERED_TOKENS = 10_000


class _RememberedTokens:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[str, tuple[float, object, object]] = {}

    def get(self, key: str):
        entry = self._entries.get(key)
        if entry is None or entry[0] <= time.monotonic():
            return None
        return entry[1], entry[2]

    def put(self, key: str, user, token, seconds: float) -> None:
        with self._lock:
            if len(self._entries) >= MAX_REMEMBERED_TOKENS:
                self._entries.clear()
            self._entries[key] = (time.monotonic() + seconds, user, token)

    def forget(self, key: str | None = None) -> None:
        with self._lock:
            if key is None:
                self._entries.clear()
            else:
                self._entries.pop(key, None)


remembered_tokens = _RememberedTokens()


class CachedTokenAuthentication(TokenAuthentication):
    def authenticate_credentials(self, key: str):
        seconds = settings.TOKEN_CACHE_SECONDS
        if seconds <= 0:
            return super().authenticate_credentials(key)
        remembered = remembered_tokens.get(key)
        if remembered is None:
            user, token = super().authenticate_credentials(key)  # raises for an unknown key or inactive user
            remembered_tokens.put(key, user, token, seconds)
            return user, token
        user, token = remembered
        # A copy per request: a view that sets an attribute on request.user must not reach another request.
        return copy.copy(user), token


def _forget_deleted_token(sender, instance, **kwargs) -> None:
    remembered_tokens.forget(instance.key)


def _forget_on_user_change(sender, instance, **kwargs) -> None:
    # A user deactivated or deleted: drop everything rather than look for their keys.
    remembered_tokens.forget()


# String senders: this module loads before the app registry may be ready (DRF imports it from settings).
post_delete.connect(_forget_deleted_token, sender="authtoken.Token", dispatch_uid="forget_deleted_token")
post_save.connect(_forget_on_user_change, sender=settings.AUTH_USER_MODEL, dispatch_uid="forget_user_save")
post_delete.connect(_forget_on_user_change, sender=settings.AUTH_USER_MODEL, dispatch_uid="forget_user_delete")
