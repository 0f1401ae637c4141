"""What the playground shows about a session, derived from the session and its timeline.

The browser reports what only it sees (connected, speaking/listening, messages)
as timeline rows ``client.<type>``; the page's status is computed here from the
stored session, so every tab and every reload shows the same thing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum

from django.utils import timezone

from sessions.models import TERMINAL_STATUSES, EventKind, SessionEvent, Status, VoiceSession
from voiceagent.logging import redact

RECENT_LIMIT = 10
# After a session ends the post-call webhook usually follows within seconds;
# the timeline keeps polling this long for it, then stops.
POST_CALL_WAIT = timedelta(minutes=2)


class LiveStatus(StrEnum):
    IDLE = "idle"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    SPEAKING = "speaking"
    LISTENING = "listening"
    ERROR = "error"


@dataclass(frozen=True)
class LiveState:
    status: LiveStatus
    # Why the status is what it is, when the status alone does not say ("ended").
    detail: str = ""

    @property
    def label(self) -> str:
        return f"{self.status.value} ({self.detail})" if self.detail else self.status.value


MODES = {"speaking": LiveStatus.SPEAKING, "listening": LiveStatus.LISTENING}


def latest_client_mode(*, session: VoiceSession) -> str | None:
    """The last speaking/listening mode the browser reported, if any."""
    event = (
        SessionEvent.objects.filter(session=session, kind=EventKind.CLIENT_MODE)
        .order_by("-created_at", "-id")
        .only("payload")
        .first()
    )
    mode = (event.payload or {}).get("mode") if event else None
    return mode if mode in MODES else None


def session_live_state(*, session: VoiceSession | None) -> LiveState:
    """created→idle, connecting→connecting, active→connected (then the latest mode), failed→error, ended→idle."""
    if session is None or session.status == Status.CREATED:
        return LiveState(LiveStatus.IDLE)
    if session.status == Status.CONNECTING:
        return LiveState(LiveStatus.CONNECTING)
    if session.status == Status.ACTIVE:
        mode = latest_client_mode(session=session)
        return LiveState(MODES[mode]) if mode else LiveState(LiveStatus.CONNECTED)
    if session.status == Status.FAILED:
        return LiveState(LiveStatus.ERROR, "failed")
    return LiveState(LiveStatus.IDLE, "ended")


def session_expects_updates(*, session: VoiceSession | None) -> bool:
    """Whether the timeline may still change without this page doing anything.

    True while the session is open, and for a short while after it ended
    without post-call data (the webhook is on its way).
    """
    if session is None:
        return False
    if not session.is_terminal:
        return True
    if session.status == Status.ENDED and session.post_call_received_at is None and session.ended_at:
        return timezone.now() - session.ended_at < POST_CALL_WAIT
    return False


def session_live_transcript(*, session: VoiceSession) -> list[dict[str, str]]:
    """The messages the browser reported during the call, oldest first."""
    rows = SessionEvent.objects.filter(session=session, kind=EventKind.CLIENT_MESSAGE).order_by("created_at", "id")
    transcript = []
    for event in rows.only("payload", "created_at"):
        payload = event.payload or {}
        message = payload.get("message")
        if isinstance(message, str) and message:
            transcript.append({"role": str(payload.get("role") or "agent"), "message": message, "at": event.created_at})
    return transcript


def latest_client_error(*, session: VoiceSession) -> str:
    """The last error message the browser's client reported (onError keeps the session open)."""
    event = (
        SessionEvent.objects.filter(session=session, kind=EventKind.CLIENT_ERROR).order_by("-created_at", "-id").first()
    )
    message = (event.payload or {}).get("message") if event else ""
    return message if isinstance(message, str) else ""


def recent_sessions_of(user, *, limit: int = RECENT_LIMIT) -> list[VoiceSession]:
    return list(VoiceSession.objects.filter(created_by=user).order_by("-created_at")[:limit])


def user_has_open_session(user) -> bool:
    """Whether any of the user's sessions can still change status (so polling is worth it)."""
    return VoiceSession.objects.filter(created_by=user).exclude(status__in=TERMINAL_STATUSES).exists()


SUMMARY_MAX_CHARS = 240


def event_summary(event: SessionEvent) -> str:
    """One readable line for a timeline row: its payload's scalar fields, redacted and shortened."""
    parts = []
    for key, value in (event.payload or {}).items():
        if value is None or value == "" or isinstance(value, (dict, list)):
            continue
        parts.append(f"{key}: {value}")
    text = redact(", ".join(parts))
    return text if len(text) <= SUMMARY_MAX_CHARS else text[: SUMMARY_MAX_CHARS - 1] + "…"
