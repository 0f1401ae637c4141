from __future__ import annotations

import os

import pytest
from django.core.cache import cache
from rest_framework.test import APIClient

# Playwright's sync API runs an event loop in the test thread; the live server's ORM calls are sync.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


@pytest.fixture
def alice(django_user_model):
    return django_user_model.objects.create_user("alice", password="alice-pass-123")


@pytest.fixture
def bob(django_user_model):
    return django_user_model.objects.create_user("bob", password="bob-pass-123")


@pytest.fixture
def charlie_staff(django_user_model):
    return django_user_model.objects.create_user("charlie", password="charlie-pass-123", is_staff=True)


@pytest.fixture
def operator(client, django_user_model):
    """The test client logged in as Olivia, a superuser: the admin as operators use it."""
    user = django_user_model.objects.create_superuser("olivia", "olivia@example.com", "olivia-pass-123")
    client.force_login(user)
    return client


@pytest.fixture
def api():
    return APIClient()


@pytest.fixture
def alice_api(alice):
    client = APIClient()
    client.force_authenticate(alice)
    return client


@pytest.fixture
def bob_api(bob):
    client = APIClient()
    client.force_authenticate(bob)
    return client


@pytest.fixture
def staff_api(charlie_staff):
    client = APIClient()
    client.force_authenticate(charlie_staff)
    return client


@pytest.fixture
def fresh_throttles():
    """An empty cache before and after: throttle history lives there, and user ids repeat between tests."""
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def simulation_mode(settings):
    """No API key: the simulated agent stands in for ElevenLabs."""
    settings.ELEVENLABS_API_KEY = ""
    return settings


@pytest.fixture
def upstream(monkeypatch):
    """ElevenLabs' HTTP API mocked with `responses`, and a client that records its waits instead of sleeping.

    Yields the RequestsMock; `upstream.sleep.waits` lists the waits the client asked for.
    """
    import responses

    from elevenlabs import client as client_module
    from tests.elevenlabs_fakes import make_client

    client, sleep = make_client()
    monkeypatch.setattr(client_module, "get_client", lambda: client)
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        rsps.sleep = sleep
        yield rsps


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup, django_db_blocker):
    """pytest-django's test database, and before it is dropped, no stray connection left on it.

    Tests that run the simulator's consumer in event loops of their own end with a
    database_sync_to_async call cut off by a timeout now and then; its worker thread keeps a
    connection that PostgreSQL then counts as "another user" and refuses to drop the database.
    """
    yield
    from django.db import connection

    with django_db_blocker.unblock():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
