"""Strict readers for settings that come from the environment.

django-environ is lenient: ``DEBUG=maybe`` silently reads as False and a
malformed DATABASE_URL fails deep inside Django with a traceback. These helpers
refuse bad values with one sentence that names the variable, raised as
:class:`ConfigurationError` so that ``manage.py`` and the ASGI entry point can
print it without a stack trace.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import environ
from django.core.exceptions import ImproperlyConfigured

TRUE_WORDS = {"1", "true", "yes", "on"}
FALSE_WORDS = {"0", "false", "no", "off", ""}
DATABASE_SCHEMES = {"sqlite", "postgres", "postgresql", "pgsql", "psql"}
# DRF's rate format: a count, a slash and a period that starts with s, m, h or d ("1200/min", "10/s").
THROTTLE_RATE = re.compile(r"[1-9][0-9]*/(s|sec|second|m|min|minute|h|hour|d|day)")


class ConfigurationError(ImproperlyConfigured):
    """A setting read from the environment has a value we cannot use."""


def env_bool(env: environ.Env, name: str, default: bool) -> bool:
    raw = env.str(name, default=None)
    if raw is None:
        return default
    word = raw.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise ConfigurationError(f"{name}={raw!r} is not a boolean; use one of true/false, yes/no, on/off, 1/0.")


def env_int(env: environ.Env, name: str, default: int, *, minimum: int = 0) -> int:
    return _env_number(env, name, default, minimum=minimum, convert=int, noun="a whole number")


def env_float(env: environ.Env, name: str, default: float, *, minimum: float = 0.0) -> float:
    return _env_number(env, name, default, minimum=minimum, convert=float, noun="a number")


def _env_number(env: environ.Env, name: str, default, *, minimum, convert, noun: str):
    raw = env.str(name, default=None)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = convert(raw.strip())
    except ValueError:
        raise ConfigurationError(f"{name}={raw!r} is not {noun}.") from None
    if value < minimum:
        raise ConfigurationError(f"{name}={value} is below the minimum of {minimum}.")
    return value


def env_choice(env: environ.Env, name: str, default: str, choices: set[str]) -> str:
    value = env.str(name, default=default).strip().lower()
    if value not in choices:
        allowed = ", ".join(sorted(choices))
        raise ConfigurationError(f"{name}={value!r} is not one of: {allowed}.")
    return value


def env_rate(env: environ.Env, name: str, default: str) -> str | None:
    """A DRF throttle rate such as ``1200/min``; empty turns the throttle off (None)."""
    value = env.str(name, default=default).strip().lower().replace(" ", "")
    if not value:
        return None
    if not THROTTLE_RATE.fullmatch(value):
        raise ConfigurationError(f"{name}={value!r} is not a rate such as 1200/min or 10/s (empty turns it off).")
    return value


def env_url(env: environ.Env, name: str, default: str, *, example: str = "", allow_empty: bool = False) -> str:
    """An http(s) URL without a trailing slash; "" only with ``allow_empty``."""
    value = env.str(name, default=default).strip().rstrip("/")
    if not value and allow_empty:
        return ""
    parts = urlsplit(value)
    if parts.scheme not in {"http", "https"} or not parts.netloc or parts.query or parts.fragment:
        raise ConfigurationError(f"{name}={value!r} is not an http(s) URL such as {example or default}.")
    return value


def env_database(env: environ.Env, name: str, default: str) -> dict:
    raw = env.str(name, default=default).strip()
    scheme = urlsplit(raw).scheme
    if scheme not in DATABASE_SCHEMES:
        raise ConfigurationError(
            f"{name}={_mask_password(raw)!r} is not a database URL; use "
            "sqlite:////absolute/path.sqlite3 or postgres://user:password@host:5432/name."
        )
    try:
        config = environ.Env.db_url_config(raw)
    except Exception:  # django-environ raises several types for bad URLs
        raise ConfigurationError(f"{name}={_mask_password(raw)!r} is not a valid database URL.") from None
    if config["ENGINE"] != "django.db.backends.sqlite3" and not config.get("NAME"):
        raise ConfigurationError(f"{name} names no database (the path after the host).")
    return config


def _mask_password(url: str) -> str:
    parts = urlsplit(url)
    if parts.password:
        return url.replace(f":{parts.password}@", ":***@", 1)
    return url
