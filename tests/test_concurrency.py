"""Thirty callers ending one session at the same moment produce exactly one end.

Once through the real server (uvicorn, two worker processes, the test database)
and once through the service in thirty threads with their own connections.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from django.db import connection
from rest_framework.authtoken.models import Token

from sessions.models import EndReason, SessionEvent, Status, VoiceSession
from sessions.services import lifecycle
from tests.server import live_asgi_server  # noqa: F401

CALLERS = 30

pytestmark = pytest.mark.django_db(transaction=True)


def all_at_once[T](call: Callable[[], T], callers: int = CALLERS) -> list[T]:
    """Run ``call`` in ``callers`` threads released together by a barrier."""
    barrier = threading.Barrier(callers)

    def one() -> T:
        barrier.wait(timeout=30)
        return call()

    with ThreadPoolExecutor(max_workers=callers) as pool:
        futures = [pool.submit(one) for _ in range(callers)]
        return [future.result(timeout=120) for future in futures]


def assert_ended_once(session: VoiceSession, reason: str) -> None:
    session.refresh_from_db()
    assert session.status == Status.ENDED
    assert session.end_reason == reason
    ended = SessionEvent.objects.filter(session=session, kind="ended")
    assert ended.count() == 1
    assert ended.get().from_status == Status.CREATED
    assert SessionEvent.objects.filter(session=session, to_status=Status.ENDED).count() == 1


@pytest.mark.server
def test_thirty_concurrent_http_ends_all_succeed_and_end_once(live_asgi_server, alice):  # noqa: F811
    token = Token.objects.create(user=alice)
    session = lifecycle.session_create(customer_id="cust-concurrent-http", user=alice)
    url = f"{live_asgi_server}/voice/sessions/{session.pk}/end"

    def end() -> tuple[int, dict]:
        response = requests.put(
            url, json={"reason": "user"}, headers={"Authorization": f"Token {token.key}"}, timeout=60
        )
        return response.status_code, response.json()

    results = all_at_once(end)

    assert [code for code, _ in results] == [200] * CALLERS
    assert {body["status"] for _, body in results} == {"ended"}
    assert {body["session_id"] for _, body in results} == {str(session.pk)}
    assert_ended_once(session, EndReason.USER)


def test_thirty_concurrent_service_ends_end_once(alice):
    session = lifecycle.session_create(customer_id="cust-concurrent-service", user=alice)

    def end() -> str:
        try:
            # Each thread loads its own copy, as separate requests would.
            fresh = VoiceSession.objects.get(pk=session.pk)
            return lifecycle.session_end(session=fresh, reason=EndReason.AGENT).status
        finally:
            connection.close()  # each thread has its own connection; PostgreSQL must drop the test DB later

    statuses = all_at_once(end)

    assert statuses == [Status.ENDED] * CALLERS
    assert_ended_once(session, EndReason.AGENT)
