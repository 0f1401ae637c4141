"""API tokens are remembered for TOKEN_CACHE_SECONDS per worker: no query per call, revocation within the window."""

from __future__ import annotations

import time

import pytest
import requests
from django.db import connection
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from devtools.servers import asgi_server
from tests.server import env_for_test_database
from voiceagent import authentication
from voiceagent.authentication import remembered_tokens


@pytest.fixture(autouse=True)
def empty_memory():
    remembered_tokens.forget()
    yield
    remembered_tokens.forget()


@pytest.fixture
def alice_token(alice) -> str:
    return Token.objects.create(user=alice).key


def client_with(key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client


def delete_behind_our_back(key: str) -> None:
    """Delete the token as another worker process would: no signal reaches this one."""
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {Token._meta.db_table} WHERE {Token._meta.pk.column} = %s", [key])


@pytest.fixture
def clock(monkeypatch):
    now = [time.monotonic()]
    monkeypatch.setattr(authentication.time, "monotonic", lambda: now[0])
    return now


@pytest.mark.django_db
def test_a_remembered_token_costs_no_query(alice_token, django_assert_num_queries):
    client = client_with(alice_token)
    assert client.get("/voice/sessions").status_code == 200
    with django_assert_num_queries(1):  # the (empty) page's count; no token, no user
        assert client.get("/voice/sessions").status_code == 200


@pytest.mark.django_db
def test_a_token_revoked_elsewhere_stops_working_after_the_window(alice_token, settings, clock):
    settings.TOKEN_CACHE_SECONDS = 5
    client = client_with(alice_token)
    assert client.get("/voice/sessions").status_code == 200
    delete_behind_our_back(alice_token)

    clock[0] += 4.9
    assert client.get("/voice/sessions").status_code == 200  # still inside the window this worker trusts
    clock[0] += 0.2
    refused = client.get("/voice/sessions")
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "authentication_failed"


@pytest.mark.django_db
def test_a_token_deleted_here_stops_at_once(alice_token):
    client = client_with(alice_token)
    assert client.get("/voice/sessions").status_code == 200
    Token.objects.get(key=alice_token).delete()
    assert client.get("/voice/sessions").status_code == 401


@pytest.mark.django_db
def test_a_deactivated_user_stops_at_once(alice, alice_token):
    client = client_with(alice_token)
    assert client.get("/voice/sessions").status_code == 200
    alice.is_active = False
    alice.save()
    assert client.get("/voice/sessions").status_code == 401


@pytest.mark.django_db
def test_zero_asks_the_database_every_time(alice_token, settings):
    settings.TOKEN_CACHE_SECONDS = 0
    client = client_with(alice_token)
    assert client.get("/voice/sessions").status_code == 200
    delete_behind_our_back(alice_token)
    assert client.get("/voice/sessions").status_code == 401


@pytest.mark.django_db
def test_an_unknown_key_is_never_remembered(alice_token):
    assert client_with("0" * 40).get("/voice/sessions").status_code == 401
    Token.objects.filter(key=alice_token).update(key="0" * 40)  # a queryset update: no signal
    assert client_with("0" * 40).get("/voice/sessions").status_code == 200


@pytest.mark.server
@pytest.mark.django_db(transaction=True)
def test_revoked_in_the_admin_refused_by_every_worker_within_the_window(alice_token):
    """Two production workers, TOKEN_CACHE_SECONDS=1: a deleted token is refused everywhere within about a second."""
    env = {**env_for_test_database(), "TOKEN_CACHE_SECONDS": "1"}
    headers = {"Authorization": f"Token {alice_token}"}
    with asgi_server(env=env, workers=2) as base_url, requests.Session() as http:
        for _ in range(20):  # both workers remember it
            assert http.get(f"{base_url}/voice/sessions", headers=headers, timeout=10).status_code == 200
        Token.objects.get(key=alice_token).delete()
        deleted_at = time.monotonic()
        while time.monotonic() - deleted_at < 10:
            answers = {
                http.get(f"{base_url}/voice/sessions", headers=headers, timeout=10).status_code for _ in range(10)
            }
            if answers == {401}:
                break
            time.sleep(0.1)
        took = time.monotonic() - deleted_at
    assert answers == {401}
    assert took < 3, f"still accepted {took:.1f} s after the deletion"
