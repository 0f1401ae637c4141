"""A database that stays write-locked past DATABASE_LOCK_TIMEOUT_SECONDS: 503 with Retry-After, never a 500.

The lock is real: another connection holds it (tests/db_locks.py), and this process's connection
waits one second for it, as a server started with DATABASE_LOCK_TIMEOUT_SECONDS=1 would.
tests/test_database_lock_server.py does the same against uvicorn.
"""

from __future__ import annotations

import threading
import time

import pytest
from django.db import OperationalError, connection, connections
from django.test.utils import CaptureQueriesContext

from elevenlabs.models import WebhookDelivery
from sessions.models import VoiceSession
from sessions.services import lifecycle
from tests.db_locks import hold_write_lock
from tests.test_webhook_ingest import TRANSCRIPTION_DATA, active_session, deliver, transcription  # noqa: F401
from voiceagent.views import database_status_cache

pytestmark = pytest.mark.django_db(transaction=True)

LOCK_WAIT = 1.0
# Generous for a loaded 2-core machine; a request that waited the old 20 s would be far past it.
ANSWERED_WITHIN = LOCK_WAIT + 3.0


@pytest.fixture(autouse=True)
def short_lock_wait():
    """This process's connections wait LOCK_WAIT seconds for a lock, as DATABASE_LOCK_TIMEOUT_SECONDS=1 sets."""
    options = connection.settings_dict["OPTIONS"]
    saved = dict(options)
    if connection.vendor == "sqlite":
        options["timeout"] = LOCK_WAIT
    else:
        options["options"] = f"-c lock_timeout={int(LOCK_WAIT * 1000)}"
    connection.close()
    database_status_cache.forget()
    yield
    options.clear()
    options.update(saved)
    connection.close()
    database_status_cache.forget()


def timed(call):
    started = time.monotonic()
    response = call()
    return response, time.monotonic() - started


def assert_database_unavailable(response, elapsed: float) -> None:
    assert response.status_code == 503, response.content
    assert response.json()["error"]["code"] == "database_unavailable"
    assert int(response["Retry-After"]) > 0
    assert "Traceback" not in response.content.decode()
    assert elapsed < ANSWERED_WITHIN


def test_creating_a_session_while_the_database_is_locked_answers_503_and_creates_nothing(alice_api):
    with hold_write_lock():
        response, elapsed = timed(lambda: alice_api.post("/voice/sessions", {"customer_id": "c-1"}, format="json"))

    assert_database_unavailable(response, elapsed)
    assert elapsed >= LOCK_WAIT * 0.9  # it did wait for the lock before giving up
    assert VoiceSession.objects.count() == 0
    assert alice_api.post("/voice/sessions", {"customer_id": "c-1"}, format="json").status_code == 201


def test_ending_a_session_while_locked_answers_503_and_the_retry_ends_it(alice, alice_api):
    session = lifecycle.session_create(customer_id="c-1", user=alice)

    with hold_write_lock():
        response, elapsed = timed(lambda: alice_api.put(f"/voice/sessions/{session.pk}/end", {}, format="json"))
        # Reading still works while writes wait.
        assert alice_api.get(f"/voice/sessions/{session.pk}").json()["status"] == "created"

    assert_database_unavailable(response, elapsed)
    session.refresh_from_db()
    assert session.status == "created"
    assert alice_api.put(f"/voice/sessions/{session.pk}/end", {}, format="json").json()["status"] == "ended"


def test_a_webhook_while_locked_answers_503_stores_nothing_and_its_retry_is_applied(deliver):  # noqa: F811
    session = active_session("conv_locked")

    with hold_write_lock():
        response, elapsed = timed(lambda: deliver(transcription("conv_locked")))

    assert_database_unavailable(response, elapsed)  # ElevenLabs retries a 5xx
    assert WebhookDelivery.objects.count() == 0
    retry = deliver(transcription("conv_locked"))
    assert retry.status_code == 200
    assert retry.json() == {"status": "processed"}
    session.refresh_from_db()
    assert session.status == "ended"
    assert session.transcript[0]["message"] == TRANSCRIPTION_DATA["transcript"][0]["message"]


def test_a_browser_gets_a_short_page_and_a_script_gets_json(client, alice, monkeypatch):
    from playground import selectors

    def unavailable(*args, **kwargs):
        raise OperationalError("database is locked")

    monkeypatch.setattr(selectors, "recent_sessions_of", unavailable)
    client.force_login(alice)

    page = client.get("/playground/", HTTP_ACCEPT="text/html,application/xhtml+xml")
    script = client.get("/playground/", HTTP_ACCEPT="*/*")

    assert page.status_code == 503
    assert page["Content-Type"].startswith("text/html")
    assert int(page["Retry-After"]) > 0
    assert "busy" in page.content.decode()
    assert "Traceback" not in page.content.decode()
    assert script.status_code == 503
    assert script.json()["error"]["code"] == "database_unavailable"


def test_health_reports_the_database_degraded_quickly_while_the_write_lock_is_held(client, settings):
    settings.HEALTH_WRITE_PROBE_SECONDS = 0.2

    with hold_write_lock():
        response, elapsed = timed(lambda: client.get("/healthz"))

    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "degraded"
    assert body["database"] == {
        "ok": False,
        "vendor": connection.vendor,
        "degraded": True,
        "error": "write lock not obtained within 0.2 s",
    }
    assert elapsed < 0.2 + 1.5  # the probe's own short wait, not DATABASE_LOCK_TIMEOUT_SECONDS
    database_status_cache.forget()
    healthy = client.get("/healthz")
    assert healthy.status_code == 200
    assert healthy.json()["database"] == {"ok": True, "vendor": connection.vendor}


def test_health_probes_the_database_at_most_once_a_second_per_process(client):
    with CaptureQueriesContext(connection) as first:
        assert client.get("/healthz").status_code == 200
    with CaptureQueriesContext(connection) as following:
        codes = {client.get("/healthz").status_code for _ in range(20)}

    assert len(first.captured_queries) >= 2  # SELECT 1 and the write probe
    assert following.captured_queries == []
    assert codes == {200}


def test_a_writer_behind_another_writer_of_this_process_still_waits_one_timeout_in_all():
    """On SQLite the writer queue and SQLite's busy wait share one budget: a writer queued behind another
    writer of this process gets only what is left of the timeout in SQLite. (PostgreSQL has no queue:
    each writer waits lock_timeout for the lock itself.)"""
    results: dict[str, float] = {}

    def first_writer():
        try:
            started = time.monotonic()
            try:
                lifecycle.session_create(customer_id="first")
            except OperationalError:
                results["first"] = time.monotonic() - started
        finally:
            connections.close_all()

    with hold_write_lock():
        thread = threading.Thread(target=first_writer)
        thread.start()
        time.sleep(0.2)  # the first writer now holds the queue and sleeps in SQLite's busy handler
        started = time.monotonic()
        with pytest.raises(OperationalError):
            lifecycle.session_create(customer_id="second")
        second = time.monotonic() - started
        thread.join()

    assert "first" in results
    # SQLite: queued ~0.8 s behind the first writer, then ~0.2 s in SQLite's busy wait; about LOCK_WAIT in
    # all, where waiting the whole timeout twice over would take ~1.8 s.
    assert second < LOCK_WAIT + 0.4
