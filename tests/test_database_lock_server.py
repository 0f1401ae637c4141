"""The write lock held past DATABASE_LOCK_TIMEOUT_SECONDS, against uvicorn with two workers.

The test process holds the lock (tests/db_locks.py: SQLite's BEGIN IMMEDIATE, or PostgreSQL's
LOCK TABLE on the sessions), as a long migration or a stuck job would. The server was started
with DATABASE_LOCK_TIMEOUT_SECONDS=1, so its requests give up after a second: 503 JSON with
Retry-After, /healthz degraded. After the lock is released everything works again, and nothing
stored before was lost.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import requests
from django.conf import settings as django_settings
from django.core.cache import cache
from rest_framework.authtoken.models import Token

from devtools.servers import asgi_server
from elevenlabs.models import WebhookDelivery
from elevenlabs.webhooks import sign
from sessions.models import VoiceSession
from tests.db_locks import hold_write_lock
from tests.server import env_for_test_database
from tests.test_webhook_ingest import TRANSCRIPTION_DATA, active_session, transcription

pytestmark = [pytest.mark.server, pytest.mark.django_db(transaction=True)]

LOCK_TIMEOUT = 1.0
# The server's wait plus room for a loaded 2-core machine; far below the 20 s default.
ANSWERED_WITHIN = LOCK_TIMEOUT + 4.0


@pytest.fixture(scope="module")
def server(django_db_setup) -> Iterator[str]:
    env = env_for_test_database()
    env["DATABASE_LOCK_TIMEOUT_SECONDS"] = str(LOCK_TIMEOUT)
    with asgi_server(env=env, workers=2) as base_url:
        yield base_url


def deliver(base_url: str, body: bytes) -> requests.Response:
    signature = sign(body, secret=django_settings.ELEVENLABS_WEBHOOK_SECRET)
    return requests.post(
        f"{base_url}/elevenlabs/webhook",
        data=body,
        headers={"Content-Type": "application/json", "ElevenLabs-Signature": signature},
        timeout=30,
    )


def timed(call) -> tuple[requests.Response, float]:
    started = time.monotonic()
    response = call()
    return response, time.monotonic() - started


def assert_database_unavailable(response: requests.Response, elapsed: float) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["Content-Type"] == "application/json"
    assert response.json()["error"]["code"] == "database_unavailable"
    assert int(response.headers["Retry-After"]) > 0
    assert "Traceback" not in response.text
    assert elapsed < ANSWERED_WITHIN


def healthz_once_fresh(base_url: str, wanted: int) -> requests.Response:
    """/healthz as soon as it answers ``wanted``: each worker keeps its answer for a second."""
    deadline = time.monotonic() + 10
    while True:
        response = requests.get(f"{base_url}/healthz", timeout=10)
        if response.status_code == wanted or time.monotonic() > deadline:
            return response
        time.sleep(0.2)


def test_a_held_write_lock_answers_503_with_retry_after_and_loses_nothing(server, alice):
    api = requests.Session()
    api.headers["Authorization"] = f"Token {Token.objects.create(user=alice).key}"
    # Stored before the lock: a session that is live with a conversation, and one created through the API.
    live = active_session("conv_locked_1")
    before = api.post(f"{server}/voice/sessions", json={"customer_id": "cust-before"}, timeout=30)
    assert before.status_code == 201
    before_id = before.json()["session_id"]
    assert healthz_once_fresh(server, 200).json()["database"]["ok"] is True

    with hold_write_lock():
        created, created_elapsed = timed(
            lambda: api.post(f"{server}/voice/sessions", json={"customer_id": "cust-during"}, timeout=30)
        )
        ended, ended_elapsed = timed(lambda: api.put(f"{server}/voice/sessions/{before_id}/end", json={}, timeout=30))
        webhook, webhook_elapsed = timed(lambda: deliver(server, transcription("conv_locked_1")))
        health, health_elapsed = timed(lambda: healthz_once_fresh(server, 503))
        # Reads do not take the write lock: they keep working.
        read = api.get(f"{server}/voice/sessions/{before_id}", timeout=30)

    assert_database_unavailable(created, created_elapsed)
    assert created_elapsed >= LOCK_TIMEOUT * 0.9
    assert_database_unavailable(ended, ended_elapsed)
    assert_database_unavailable(webhook, webhook_elapsed)  # so ElevenLabs sends it again
    assert health.status_code == 503
    assert health.json()["status"] == "degraded"
    assert health.json()["database"]["degraded"] is True
    assert health.json()["database"]["error"] == "write lock not obtained within 1 s"
    assert read.status_code == 200 and read.json()["status"] == "created"

    # Released: everything works again, and what was stored before is all there.
    assert healthz_once_fresh(server, 200).json()["status"] == "ok"
    assert api.post(f"{server}/voice/sessions", json={"customer_id": "cust-after"}, timeout=30).status_code == 201
    assert api.put(f"{server}/voice/sessions/{before_id}/end", json={}, timeout=30).json()["status"] == "ended"
    redelivered = deliver(server, transcription("conv_locked_1"))
    assert redelivered.status_code == 200
    assert redelivered.json() == {"status": "processed"}
    assert sorted(VoiceSession.objects.values_list("customer_id", flat=True)) == [
        "cust-1",
        "cust-after",
        "cust-before",
    ]
    live.refresh_from_db()
    assert live.status == "ended"
    assert live.transcript[0]["message"] == TRANSCRIPTION_DATA["transcript"][0]["message"]
    assert list(WebhookDelivery.objects.values_list("outcome", flat=True)) == ["processed"]


def test_the_session_create_throttle_counts_across_workers_when_redis_is_shared(alice):
    """With REDIS_URL (CI's PostgreSQL run) both workers share one count; without it each worker counts alone."""
    token = Token.objects.create(user=alice).key
    env = env_for_test_database()
    env["SESSION_CREATE_THROTTLE"] = "3/min"
    cache.clear()  # the count of an earlier run (same user id) may still be in Redis
    with asgi_server(env=env, workers=2) as base_url:
        # A new connection each time, so that both workers get some of the requests.
        codes = [
            requests.post(
                f"{base_url}/voice/sessions",
                json={"customer_id": f"cust-{i}"},
                headers={"Authorization": f"Token {token}", "Connection": "close"},
                timeout=30,
            ).status_code
            for i in range(8)
        ]

    assert set(codes) == {201, 429}
    if django_settings.REDIS_URL:
        assert codes.count(201) == 3
    else:
        assert 3 <= codes.count(201) <= 6
    assert VoiceSession.objects.count() == codes.count(201)
