"""Callbacks in the admin: the open ones listed, marked done with an action, shown on their session's page."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from sessions.models import Callback
from sessions.services import lifecycle
from sessions.services.callbacks import callback_mark_done, callback_schedule

pytestmark = pytest.mark.django_db

LIST = "/admin/voice_sessions/callback/"


def callback(reason: str, *, hours: int = 2, customer_id: str = "+15551234567") -> Callback:
    session = lifecycle.session_create(customer_id=customer_id, phone_number=customer_id)
    return callback_schedule(
        session=session,
        requested_time=timezone.now() + timedelta(hours=hours),
        reason=reason,
        phone_number=customer_id,
    )


def test_the_list_opens_on_the_open_callbacks(operator):
    callback("Check the refund arrived")
    done = callback("Already called back")
    callback_mark_done(callback=done)

    page = operator.get(LIST)

    assert page.status_code == 200
    html = page.content.decode()
    assert "Check the refund arrived" in html
    assert "Already called back" not in html
    every = operator.get(LIST, {"status": "all"}).content.decode()
    assert "Already called back" in every


def test_mark_done_marks_them_and_notes_it_on_the_session(operator):
    first, second = callback("First"), callback("Second")

    response = operator.post(LIST, {"action": "mark_done", "_selected_action": [first.pk, second.pk]}, follow=True)

    assert response.status_code == 200
    assert "Marked 2 callback(s) done" in response.content.decode()
    for item in (first, second):
        item.refresh_from_db()
        assert item.status == "done" and item.done_at is not None
        row = item.session.events.get(kind="callback_done")
        assert row.payload["callback_id"] == item.pk


def test_marking_a_done_callback_again_changes_nothing(operator):
    item = callback("Once")
    assert callback_mark_done(callback=item) is True
    item.refresh_from_db()
    done_at = item.done_at

    operator.post(LIST, {"action": "mark_done", "_selected_action": [item.pk], "status": "all"}, follow=True)

    item.refresh_from_db()
    assert item.done_at == done_at
    assert item.session.events.filter(kind="callback_done").count() == 1


def test_the_session_s_page_shows_its_callbacks(operator):
    item = callback("Call about the invoice")
    page = operator.get(f"/admin/voice_sessions/voicesession/{item.session_id}/change/")
    assert page.status_code == 200
    assert "Call about the invoice" in page.content.decode()


def test_operators_cannot_add_callbacks_by_hand(operator):
    assert operator.get(f"{LIST}add/").status_code == 403


def test_a_non_staff_user_cannot_see_callbacks(client, alice):
    callback("Private")
    client.force_login(alice)
    page = client.get(LIST)
    assert page.status_code == 302 and "/admin/login/" in page["Location"]
