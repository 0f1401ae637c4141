"""Fetch conversation details for sessions that ended (or went quiet) without post-call data.

Safe from cron on several machines at once: storing is idempotent and a session
ends once. Each session is asked of its own backend: ElevenLabs, or the simulated
agent for simulated sessions (elevenlabs.reconcile).
"""

from __future__ import annotations

from datetime import timedelta

from django.core.management.base import BaseCommand
from django.utils import timezone

from elevenlabs.client import ElevenLabsError
from elevenlabs.reconcile import ReconcileOutcome, session_reconcile
from sessions.selectors import sessions_missing_post_call
from voiceagent.errors import ApplicationError

ERROR = "error"


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
            help="Also download the recording of each conversation that has one.",
        )

    def handle(self, *args, grace, quiet, limit, audio, **options):
        now = timezone.now()
        candidates = sessions_missing_post_call(
            ended_before=now - timedelta(seconds=grace), quiet_before=now - timedelta(seconds=quiet)
        )[:limit]
        counts = {outcome: 0 for outcome in [*ReconcileOutcome, ERROR]}
        for session in candidates:
            try:
                outcome = session_reconcile(session=session, with_audio=audio)
            except ElevenLabsError as exc:
                outcome = ERROR
                self.stderr.write(f"{session.pk}: ElevenLabs {exc.status or '-'} {exc.code}: {exc.message}")
            except ApplicationError as exc:  # a simulated session where the simulator is not installed, say
                outcome = ERROR
                self.stderr.write(f"{session.pk}: {exc.code}: {exc.message}")
            except Exception as exc:  # anything else about one session; keep going with the others
                outcome = ERROR
                self.stderr.write(f"{session.pk}: {type(exc).__name__}: {exc}")
            counts[outcome] += 1
            if outcome != ERROR:
                self.stdout.write(f"{session.pk}: {outcome.replace('_', ' ')}")
        summary = ", ".join(f"{n} {str(k).replace('_', ' ')}" for k, n in counts.items())
        self.stdout.write(self.style.SUCCESS(f"Reconciled {sum(counts.values())} session(s): {summary}."))
