"""Post-call data no webhook brought, fetched from the agent platform (the reconcile_sessions command)."""

from __future__ import annotations

import tempfile

from django.core.files import File

from sessions.models import EndReason, VoiceSession
from sessions.services.lifecycle import session_store_audio, session_store_post_call

FINISHED_CONVERSATION_STATUSES = {"done", "failed"}


def session_reconcile(*, session: VoiceSession, fetch_conversation, download_audio=None) -> str:
    """Fill in post-call data from ElevenLabs' conversation details when no webhook brought it.

    ``fetch_conversation(conversation_id) -> dict`` is the real client or the
    simulator. With ``download_audio(conversation_id, fileobj) -> int``, the
    recording is fetched too when ElevenLabs has one (the audio webhook is best
    left off: its base64 bodies are large). Returns what happened: "stored",
    "in_progress" (ElevenLabs is still on it; try again later) or
    "already_stored". Safe to run twice at once: storing is idempotent and the
    session ends once.
    """
    if session.post_call_received_at is not None:
        return "already_stored"
    conversation = fetch_conversation(session.conversation_id)
    if conversation.get("status") not in FINISHED_CONVERSATION_STATUSES:
        return "in_progress"
    stored = session_store_post_call(
        session=session, conversation=conversation, source="reconciler", end_reason=EndReason.UPSTREAM
    )
    if download_audio is not None and conversation.get("has_audio") and not stored.audio:
        # Streamed to a temporary file first: a broken download leaves no partial recording behind.
        with tempfile.TemporaryFile() as recording:
            size = download_audio(session.conversation_id, recording)
            recording.seek(0)
            session_store_audio(
                session=stored, content=File(recording), filename=f"{session.conversation_id}.mp3", size=size
            )
    return "stored"
