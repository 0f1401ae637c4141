"""manage.py prune_sessions: retention of transcripts, analysis and recordings; the sessions themselves stay."""

from __future__ import annotations

import threading
from datetime import timedelta
from io import StringIO
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.core.files.base import ContentFile
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import close_old_connections, transaction
from django.utils import timezone

from sessions.management.commands.prune_sessions import Command
from sessions.models import EventKind, SessionEvent, VoiceSession
from sessions.services import lifecycle
from sessions.services.client_events import session_client_event
from tests.elevenlabs_fakes import conversation

pytestmark = pytest.mark.django_db

DETAILS = conversation(
    "conv_old",
    transcript=[
        {"role": "agent", "message": "Hello!", "time_in_call_secs": 0},
        {"role": "user", "message": "My name is Jane Roe.", "time_in_call_secs": 2},
    ],
    metadata={
        "start_time_unix_secs": 1765000000,
        "call_duration_secs": 42,
        "cost": 120,
        "main_language": "en",
        "termination_reason": "end_call tool",
    },
    analysis={"call_successful": "success", "transcript_summary": "Jane asked.", "call_summary_title": "Question"},
)


def finished_session(conversation_id: str, *, days_ago: float, audio: bool = True, live: bool = True) -> VoiceSession:
    """A call that ended ``days_ago`` with everything a call leaves: post-call data, a recording, live messages."""
    session = lifecycle.session_create(customer_id="cust-1")
    lifecycle.session_mark_connecting(session=session, agent_id="a", connection_type="websocket", simulation=False)
    session = lifecycle.session_activate(session=session, conversation_id=conversation_id)
    if live:
        session_client_event(session=session, event_type="message", data={"role": "user", "message": "Jane Roe"})
    session = lifecycle.session_store_post_call(
        session=session, conversation={**DETAILS, "conversation_id": conversation_id}, source="webhook"
    )
    if audio:
        session = lifecycle.session_store_audio(
            session=session, content=ContentFile(b"ID3 recording"), filename=f"{conversation_id}.mp3", size=13
        )
    VoiceSession.objects.filter(pk=session.pk).update(ended_at=timezone.now() - timedelta(days=days_ago))
    return VoiceSession.objects.get(pk=session.pk)


def recording_path(session: VoiceSession) -> Path:
    return Path(django_settings.MEDIA_ROOT) / session.audio.name


def prune(*args: str) -> str:
    out = StringIO()
    call_command("prune_sessions", *args, stdout=out)
    return out.getvalue()


@pytest.fixture
def run_on_commit(django_capture_on_commit_callbacks):
    """Run the command's after-commit work (deleting recordings) as a committed transaction would."""

    def run(*args: str) -> str:
        with django_capture_on_commit_callbacks(execute=True):
            return prune(*args)

    return run


def test_it_removes_transcript_analysis_and_recording_and_keeps_the_post_call_columns(run_on_commit):
    old = finished_session("conv_old", days_ago=40)
    file = recording_path(old)
    assert file.exists()

    out = run_on_commit("--older-than", "30")

    old.refresh_from_db()
    assert (old.transcript, old.analysis, old.call_metadata, old.audio.name) == ([], {}, {}, "")
    assert not file.exists()
    assert old.pruned_at is not None
    # What filters and analytics read stays.
    assert (old.status, old.call_successful, old.call_duration_secs, old.cost) == ("ended", "success", 42, 120)
    assert (old.main_language, old.termination_reason) == ("en", "end_call tool")
    assert (old.transcript_summary, old.summary_title) == ("Jane asked.", "Question")
    assert old.post_call_received_at is not None  # so the reconciler does not fetch it all again
    # The browser's live messages lose their words; the rows that say a message came stay.
    messages = SessionEvent.objects.filter(session=old, kind=EventKind.CLIENT_MESSAGE)
    assert [row.payload for row in messages] == [{"pruned": True}]
    row = old.events.get(kind=EventKind.PRUNED)
    assert row.payload["transcript_turns"] == 2
    assert row.payload["recording"] is True and row.payload["live_messages"] == 1
    assert row.payload["analysis"] is True and row.payload["audio_only"] is False
    assert "Pruned 1 session(s) that ended more than 30 day(s) ago" in out
    assert "1 transcript(s), 1 recording(s) removed" in out


def test_recent_and_open_sessions_are_left_alone(run_on_commit):
    recent = finished_session("conv_recent", days_ago=10)
    still_open = lifecycle.session_create(customer_id="cust-2")
    VoiceSession.objects.filter(pk=still_open.pk).update(created_at=timezone.now() - timedelta(days=90))

    out = run_on_commit("--older-than", "30")

    recent.refresh_from_db()
    assert recent.transcript and recent.analysis and recent.audio and recent.pruned_at is None
    assert recording_path(recent).exists()
    assert not SessionEvent.objects.filter(kind=EventKind.PRUNED).exists()
    assert "Pruned 0 session(s)" in out


def test_audio_only_removes_the_recording_and_keeps_the_transcript(run_on_commit):
    old = finished_session("conv_old", days_ago=10)
    file = recording_path(old)

    out = run_on_commit("--older-than", "7", "--audio-only")

    old.refresh_from_db()
    assert not old.audio and not file.exists()
    assert old.transcript and old.analysis and old.call_metadata and old.pruned_at is None
    row = old.events.get(kind=EventKind.PRUNED).payload
    assert row["audio_only"] is True and row["recording"] is True and "transcript_turns" not in row
    assert "0 transcript(s), 1 recording(s) removed" in out
    # Later, the full prune takes the rest.
    run_on_commit("--older-than", "7")
    old.refresh_from_db()
    assert old.transcript == [] and old.pruned_at is not None


def test_a_dry_run_counts_and_changes_nothing(run_on_commit):
    finished_session("conv_a", days_ago=40)
    finished_session("conv_b", days_ago=50, audio=False)
    finished_session("conv_c", days_ago=5)

    out = run_on_commit("--older-than", "30", "--dry-run")

    assert "would prune 2 session(s)" in out
    assert "2 transcript(s), 1 recording(s). Nothing was changed." in out
    assert VoiceSession.objects.filter(pruned_at__isnull=False).count() == 0
    assert VoiceSession.objects.exclude(audio="").count() == 2
    assert not SessionEvent.objects.filter(kind=EventKind.PRUNED).exists()


def test_running_it_again_prunes_nothing_more(run_on_commit):
    finished_session("conv_old", days_ago=40)
    run_on_commit("--older-than", "30")
    out = run_on_commit("--older-than", "30")
    assert "Pruned 0 session(s)" in out
    assert SessionEvent.objects.filter(kind=EventKind.PRUNED).count() == 1


def test_many_sessions_are_pruned_batch_after_batch(run_on_commit, monkeypatch):
    from sessions.management.commands import prune_sessions

    monkeypatch.setattr(prune_sessions, "BATCH_SIZE", 3)
    for n in range(8):
        finished_session(f"conv_{n}", days_ago=40 + n, audio=False, live=False)
    out = run_on_commit("--older-than", "30")
    assert "Pruned 8 session(s)" in out
    assert VoiceSession.objects.filter(pruned_at__isnull=True).count() == 0


def test_the_settings_give_the_ages_when_none_is_asked_for(run_on_commit, settings):
    settings.RETENTION_DAYS = 90
    settings.AUDIO_RETENTION_DAYS = 30
    very_old = finished_session("conv_very_old", days_ago=100)
    old = finished_session("conv_old", days_ago=40)
    recent = finished_session("conv_recent", days_ago=10)

    out = run_on_commit()

    very_old.refresh_from_db(), old.refresh_from_db(), recent.refresh_from_db()
    assert very_old.pruned_at is not None and not very_old.audio
    assert old.pruned_at is None and old.transcript and not old.audio  # recordings go sooner
    assert recent.pruned_at is None and recent.audio
    assert "RETENTION_DAYS" in out and "AUDIO_RETENTION_DAYS" in out


def test_audio_only_without_an_age_uses_audio_retention_days_then_retention_days(run_on_commit, settings):
    old = finished_session("conv_old", days_ago=40)
    settings.RETENTION_DAYS = 30
    settings.AUDIO_RETENTION_DAYS = 0
    out = run_on_commit("--audio-only")
    old.refresh_from_db()
    assert not old.audio and old.transcript
    assert "RETENTION_DAYS" in out


def test_without_an_age_or_a_setting_it_refuses_and_exits_non_zero(settings, capsys):
    settings.RETENTION_DAYS = 0
    settings.AUDIO_RETENTION_DAYS = 0
    with pytest.raises(CommandError, match="--older-than DAYS, or set RETENTION_DAYS"):
        prune()
    with pytest.raises(CommandError, match="AUDIO_RETENTION_DAYS"):
        prune("--audio-only")
    with pytest.raises(SystemExit) as exit_info:
        Command().run_from_argv(["manage.py", "prune_sessions"])
    assert exit_info.value.code != 0
    assert "RETENTION_DAYS" in capsys.readouterr().err


@pytest.mark.parametrize("value", ["0", "-3", "thirty", "1.5"])
def test_the_age_must_be_a_whole_number_of_days(value, capsys):
    with pytest.raises(SystemExit) as exit_info:
        Command().run_from_argv(["manage.py", "prune_sessions", "--older-than", value])
    assert exit_info.value.code != 0
    assert "--older-than" in capsys.readouterr().err


def test_the_recording_is_deleted_only_once_the_prune_has_committed(django_capture_on_commit_callbacks):
    old = finished_session("conv_old", days_ago=40)
    file = recording_path(old)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        lifecycle.session_prune(session=old, ended_before=timezone.now() - timedelta(days=30))
    assert file.exists()  # the database change is not committed yet: the file stays
    for callback in callbacks:
        callback()
    assert not file.exists()


def test_a_rolled_back_prune_keeps_the_session_whole():
    old = finished_session("conv_old", days_ago=40)
    file = recording_path(old)
    with pytest.raises(RuntimeError), transaction.atomic():
        lifecycle.session_prune(session=old, ended_before=timezone.now() - timedelta(days=30))
        raise RuntimeError("the caller's transaction fails")
    old.refresh_from_db()
    assert old.transcript and old.audio and file.exists()


def test_the_prune_checks_again_under_the_lock():
    old = finished_session("conv_old", days_ago=40)
    # Between the batch's read and the prune, the session turned out to be more recent than the cutoff.
    assert lifecycle.session_prune(session=old, ended_before=timezone.now() - timedelta(days=50)) is None
    old.refresh_from_db()
    assert old.transcript and old.pruned_at is None


def test_post_call_data_arriving_after_the_prune_brings_back_only_the_facts(run_on_commit):
    old = finished_session("conv_old", days_ago=40)
    run_on_commit("--older-than", "30")
    again = lifecycle.session_store_post_call(
        session=old,
        conversation={**DETAILS, "conversation_id": "conv_old", "analysis": {"call_successful": "failure"}},
        source="reconciler",
    )
    assert (again.transcript, again.analysis, again.call_metadata) == ([], {}, {})
    assert again.call_successful == "failure" and again.call_duration_secs == 42


@pytest.mark.django_db(transaction=True)
def test_it_runs_beside_the_service_writing_to_other_sessions():
    """Short transactions one session at a time: the service's writes interleave instead of waiting for the prune."""
    for n in range(30):
        finished_session(f"conv_old_{n}", days_ago=40, audio=False)
    errors: list[BaseException] = []

    def service() -> None:
        try:
            for n in range(15):
                session = lifecycle.session_create(customer_id=f"live-{n}")
                lifecycle.session_end(session=session)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            close_old_connections()

    worker = threading.Thread(target=service)
    worker.start()
    out = prune("--older-than", "30")
    worker.join(timeout=60)
    assert errors == []
    assert "Pruned 30 session(s)" in out
    assert VoiceSession.objects.filter(customer_id__startswith="live-", status="ended").count() == 15
