"""reconcile_sessions and expire_stale_sessions."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone

from sessions.models import SessionEvent, VoiceSession
from sessions.services import lifecycle
from tests.elevenlabs_fakes import CONVERSATIONS_PATH, add_conversation, add_error, conversation

pytestmark = pytest.mark.django_db


def make_session(alice, *, status, conversation_id=None, age=timedelta(hours=1)):
    session = lifecycle.session_create(user=alice, customer_id="c1")
    if status in ("connecting", "active", "ended"):
        lifecycle.session_mark_connecting(session=session, agent_id="a", connection_type="websocket", simulation=False)
    if status in ("active", "ended"):
        lifecycle.session_activate(session=session, conversation_id=conversation_id)
    if status == "ended":
        lifecycle.session_end(session=session)
    past = timezone.now() - age
    VoiceSession.objects.filter(pk=session.pk).update(updated_at=past, started_at=past, ended_at=past)
    return VoiceSession.objects.get(pk=session.pk)


def run(command, *args):
    out, err = StringIO(), StringIO()
    call_command(command, *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_reconcile_fills_in_an_ended_session_without_a_webhook(alice, upstream):
    session = make_session(alice, status="ended", conversation_id="conv_r1")
    add_conversation(upstream, conversation("conv_r1"))
    out, _ = run("reconcile_sessions")
    session.refresh_from_db()
    assert session.transcript[0]["message"] == "Hello!"
    assert session.call_successful == "success"
    assert session.call_duration_secs == 42
    assert session.post_call_received_at is not None
    assert "1 stored" in out
    # A second run asks nobody: nothing is missing any more.
    out, _ = run("reconcile_sessions")
    assert len(upstream.calls) == 1
    assert "Reconciled 0 session(s)" in out


def test_reconcile_ends_a_quiet_active_session_that_finished_upstream(alice, upstream):
    session = make_session(alice, status="active", conversation_id="conv_r2")
    add_conversation(upstream, conversation("conv_r2"))
    run("reconcile_sessions")
    session.refresh_from_db()
    assert session.status == "ended"
    assert session.end_reason == "upstream"
    assert SessionEvent.objects.filter(session=session, kind="ended").count() == 1


def test_reconcile_leaves_a_conversation_still_in_progress(alice, upstream):
    session = make_session(alice, status="active", conversation_id="conv_r3")
    add_conversation(upstream, conversation("conv_r3", status="in-progress"))
    out, _ = run("reconcile_sessions")
    session.refresh_from_db()
    assert session.status == "active"
    assert session.post_call_received_at is None
    assert "1 in progress" in out


def test_reconcile_waits_for_the_webhook_grace_period(alice, upstream):
    make_session(alice, status="ended", conversation_id="conv_r4", age=timedelta(seconds=5))
    run("reconcile_sessions")
    assert len(upstream.calls) == 0


def test_reconcile_reports_upstream_errors_and_goes_on(alice, upstream):
    make_session(alice, status="ended", conversation_id="conv_missing")
    ok = make_session(alice, status="ended", conversation_id="conv_ok")
    add_error(
        upstream,
        "GET",
        f"{CONVERSATIONS_PATH}/conv_missing",
        404,
        code="conversation_not_found",
        message="Conversation not found",
    )
    add_conversation(upstream, conversation("conv_ok"))
    out, err = run("reconcile_sessions")
    assert "404 conversation_not_found: Conversation not found" in err
    ok.refresh_from_db()
    assert ok.post_call_received_at is not None
    assert "1 error" in out


def test_expire_ends_sessions_stuck_past_the_limit(alice, settings):
    settings.SESSION_STALE_SECONDS = 900
    stuck_connecting = make_session(alice, status="connecting")
    stuck_active = make_session(alice, status="active", conversation_id="conv_e1")
    fresh = make_session(alice, status="active", conversation_id="conv_e2", age=timedelta(seconds=30))
    created = make_session(alice, status="created")
    out, _ = run("expire_stale_sessions")
    for session in (stuck_connecting, stuck_active, fresh, created):
        session.refresh_from_db()
    assert stuck_connecting.status == "ended" and stuck_connecting.end_reason == "timeout"
    assert stuck_active.status == "ended" and stuck_active.end_reason == "timeout"
    assert fresh.status == "active"
    assert created.status == "created"
    assert "2 stale session(s) ended" in out
    out, _ = run("expire_stale_sessions")
    assert "0 stale session(s) ended" in out
    assert SessionEvent.objects.filter(kind="ended").count() == 2


def test_expire_dry_run_changes_nothing(alice):
    session = make_session(alice, status="connecting")
    out, _ = run("expire_stale_sessions", "--dry-run")
    assert f"would end {session.pk}" in out
    session.refresh_from_db()
    assert session.status == "connecting"


def test_expire_rechecks_under_the_lock(alice):
    session = make_session(alice, status="active", conversation_id="conv_e3")
    cutoff = timezone.now() - timedelta(minutes=15)
    VoiceSession.objects.filter(pk=session.pk).update(started_at=timezone.now())  # it moved on meanwhile
    assert lifecycle.session_expire_if_stale(session=session, cutoff=cutoff) is False


def test_reconcile_with_audio_downloads_the_recording(alice, upstream):
    session = make_session(alice, status="ended", conversation_id="conv_a1")
    add_conversation(upstream, conversation("conv_a1", has_audio=True))
    recording = b"ID3" + bytes(range(256)) * 300
    upstream.add(
        "GET", f"https://api.elevenlabs.io{CONVERSATIONS_PATH}/conv_a1/audio", body=recording, content_type="audio/mpeg"
    )
    run("reconcile_sessions", "--audio")
    session.refresh_from_db()
    with session.audio.open("rb") as stored:
        assert stored.read() == recording
    assert session.events.filter(kind="post_call_audio").count() == 1


def test_reconcile_without_the_audio_flag_leaves_the_recording(alice, upstream):
    session = make_session(alice, status="ended", conversation_id="conv_a2")
    add_conversation(upstream, conversation("conv_a2", has_audio=True))
    run("reconcile_sessions")
    session.refresh_from_db()
    assert not session.audio
    assert [call.request.url for call in upstream.calls] == [f"https://api.elevenlabs.io{CONVERSATIONS_PATH}/conv_a2"]
