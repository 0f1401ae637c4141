"""The server process of devtools/servers.py, on this pytest process's test database.

The ``live_asgi_server`` fixture runs uvicorn (:func:`devtools.servers.asgi_server`)
against the pytest-django test database, so a test can reach the same rows through
HTTP that it writes through the ORM. The server is a separate process: its writes are
only visible to tests that commit, so tests using it need
``@pytest.mark.django_db(transaction=True)`` (and carry ``@pytest.mark.server``).
Import the fixture into the test module::

    from tests.server import live_asgi_server  # noqa: F401
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

import pytest
from django.db import connections

from devtools.servers import asgi_server


def env_for_test_database() -> dict[str, str]:
    """The environment for a server process that uses this pytest process's test database."""
    env = dict(os.environ)
    env["DJANGO_SETTINGS_MODULE"] = "tests.settings"
    env["DATABASE_URL"] = url_of_test_database()
    env.pop("PUBLIC_BASE_URL", None)  # the server's own address, set by asgi_server
    # conftest.py relaxes Django's async safety for Playwright in the pytest process; a server runs as in production.
    env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    return env


def url_of_test_database() -> str:
    """DATABASE_URL of the test database, valid once pytest-django has set it up.

    By then NAME is the test database: the SQLite file tests/settings.py names, or
    test_<name> on PostgreSQL, which keeps the rest of the configured URL.
    """
    database = connections["default"].settings_dict
    if database["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{Path(database['NAME']).resolve()}"
    configured = urlsplit(os.environ["DATABASE_URL"])
    return urlunsplit(configured._replace(path="/" + quote(str(database["NAME"]))))


@pytest.fixture(scope="session")
def live_asgi_server(django_db_setup) -> Iterator[str]:
    """Base URL of uvicorn with two workers serving the test database (see the module docstring)."""
    with asgi_server(env=env_for_test_database(), workers=2) as base_url:
        yield base_url


def wait_for_post_call(session_id, *, timeout: float = 20.0):
    """The session once the server has stored its post-call data (or as it is after ``timeout`` seconds).

    A conversation's end reaches the session a moment after the socket closes: the simulated agent
    stores it and posts its webhook to the server, which applies it.
    """
    from sessions.models import VoiceSession

    deadline = time.monotonic() + timeout
    session = VoiceSession.objects.get(pk=session_id)
    while time.monotonic() < deadline and session.post_call_received_at is None:
        time.sleep(0.1)
        session.refresh_from_db()
    return session
