"""Follow-up calls the agent promised: scheduled during a session, marked done by an operator."""

from __future__ import annotations

from datetime import datetime

from django.db import transaction
from django.utils import timezone

from sessions.models import Callback, CallbackStatus, EventKind, VoiceSession
from sessions.services.lifecycle import session_record_event


def callback_schedule(*, session: VoiceSession, requested_time: datetime, reason: str, phone_number: str) -> Callback:
    """Record that the customer of ``session`` is to be called back at ``requested_time``."""
    return Callback.objects.create(
        session=session,
        customer_id=session.customer_id,
        phone_number=phone_number,
        requested_time=requested_time,
        reason=reason,
    )


def callback_mark_done(*, callback: Callback) -> bool:
    """Mark an open callback done, noted on its session's timeline; returns False if it was done already."""
    with transaction.atomic():
        done = Callback.objects.filter(pk=callback.pk, status=CallbackStatus.OPEN).update(
            status=CallbackStatus.DONE, done_at=timezone.now()
        )
        if done:
            session_record_event(
                session=callback.session,
                kind=EventKind.CALLBACK_DONE,
                payload={"callback_id": callback.pk, "requested_time": callback.requested_time.isoformat()},
            )
    return bool(done)
