"""Fill in post-call data that no webhook brought, from the conversation's holder (run from cron).

The same code for real and simulated sessions: the conversation details (and the
recording) come from the session's backend (:func:`elevenlabs.backends.backend_for`),
and are stored through the session services, as the webhook's are. Safe to run on
several machines at once: storing is idempotent and a session ends once.
"""

from __future__ import annotations

import tempfile
from enum import StrEnum

from django.core.files import File

from elevenlabs.backends import backend_for
from sessions.models import EndReason, VoiceSession
from sessions.services.lifecycle import session_store_audio, session_store_post_call

# ElevenLabs' conversation statuses after which nothing more will happen to it.
FINISHED_CONVERSATION_STATUSES = frozenset({"done", "failed"})


class ReconcileOutcome(StrEnum):
    STORED = "stored"
    IN_PROGRESS = "in_progress"  # the conversation is still going (or being analysed): try again later
    ALREADY_STORED = "already_stored"


def session_reconcile(*, session: VoiceSession, with_audio: bool = False) -> ReconcileOutcome:
    """Store the conversation's details on ``session`` if it has finished and nothing stored them yet.

    With ``with_audio``, the recording is fetched too when the conversation has one (the audio
    webhook is best left off: its base64 bodies are large). Raises what the backend raises
    (ElevenLabsError, SimulationUnavailable for a simulated session on a deployment without the simulator).
    """
    if session.post_call_received_at is not None:
        return ReconcileOutcome.ALREADY_STORED
    backend = backend_for(simulation=session.simulation)
    conversation = backend.get_conversation(session.conversation_id)
    if conversation.get("status") not in FINISHED_CONVERSATION_STATUSES:
        return ReconcileOutcome.IN_PROGRESS
    stored = session_store_post_call(
        session=session, conversation=conversation, source="reconciler", end_reason=EndReason.UPSTREAM
    )
    if with_audio and conversation.get("has_audio") and not stored.audio:
        # Streamed to a temporary file first: a broken download leaves no partial recording behind.
        with tempfile.TemporaryFile() as recording:
            size = backend.download_audio(session.conversation_id, recording)
            if size is not None:
                recording.seek(0)
                session_store_audio(
                    session=stored, content=File(recording), filename=f"{session.conversation_id}.mp3", size=size
                )
    return ReconcileOutcome.STORED
