"""Fetch ElevenLabs' conversation details for sessions that ended (or went quiet) without post-call data.

Safe from cron on several machines at once: storing is idempotent and a
session ends once. Simulated sessions are read from the simulated agent.
"""

from __future__ import annotations

from datetime import timedelta

from django.core.management.base import BaseCommand
from django.utils import timezone

from elevenlabs.client import ElevenLabsError, get_client
from elevenlabs.reconcile import session_reconcile
from sessions.selectors import sessions_missing_post_call


def _simulated_conversation(conversation_id: str) -> dict:
    from elevenlabs.simulator import simulator_get_conversation

    return simulator_get_conversation(conversation_id)


class Command(BaseCommand):
    help = "Fill in transcripts and analysis that no webhook delivered."

    def add_arguments(self, parser):
        parser.add_argument(
            "--grace",
            type=int,
            default=120,
            help="Seconds to wait after an end for the webhook before asking (default 120).",
        )
        parser.add_argument(
            "--quiet",
            type=int,
            default=600,
            help="Seconds an active session may go without news before asking (default 600).",
        )
        parser.add_argument("--limit", type=int, default=200, help="At most this many sessions per run.")
        parser.add_argument(
            "--audio",
            action="store_true",
            help="Also download the recording of each conversation ElevenLabs has one for.",
        )

    def handle(self, *args, grace, quiet, limit, audio, **options):
        now = timezone.now()
        candidates = sessions_missing_post_call(
            ended_before=now - timedelta(seconds=grace), quiet_before=now - timedelta(seconds=quiet)
        )[:limit]
        counts = {"stored": 0, "in_progress": 0, "already_stored": 0, "error": 0}
        for session in candidates:
            if session.simulation:
                fetch, download = _simulated_conversation, None  # the simulator records no audio
            else:
                client = get_client()
                fetch = client.get_conversation
                download = client.download_conversation_audio if audio else None
            try:
                outcome = session_reconcile(session=session, fetch_conversation=fetch, download_audio=download)
            except ElevenLabsError as exc:
                outcome = "error"
                self.stderr.write(f"{session.pk}: ElevenLabs {exc.status or '-'} {exc.code}: {exc.message}")
            except Exception as exc:  # a simulated conversation that is gone, say; keep going
                outcome = "error"
                self.stderr.write(f"{session.pk}: {type(exc).__name__}: {exc}")
            counts[outcome] += 1
            if outcome != "error":
                self.stdout.write(f"{session.pk}: {outcome.replace('_', ' ')}")
        summary = ", ".join(f"{n} {k.replace('_', ' ')}" for k, n in counts.items())
        self.stdout.write(self.style.SUCCESS(f"Reconciled {sum(counts.values())} session(s): {summary}."))
