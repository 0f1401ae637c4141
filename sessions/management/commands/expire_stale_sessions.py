"""End sessions stuck in connecting or active past SESSION_STALE_SECONDS (reason: timeout).

Safe from cron on several machines at once: each end re-checks under the row lock.
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.core.management.base import BaseCommand
from django.utils import timezone

from sessions.selectors import sessions_possibly_stale
from sessions.services.lifecycle import session_expire_if_stale


class Command(BaseCommand):
    help = "End sessions stuck in connecting or active past the limit, with reason timeout."

    def add_arguments(self, parser):
        parser.add_argument(
            "--older-than",
            type=int,
            default=None,
            help=f"Seconds without progress (default SESSION_STALE_SECONDS={settings.SESSION_STALE_SECONDS}; "
            "ElevenLabs' default maximum call is 600 s).",
        )
        parser.add_argument("--dry-run", action="store_true", help="List what would be ended; change nothing.")

    def handle(self, *args, older_than, dry_run, **options):
        seconds = older_than if older_than is not None else settings.SESSION_STALE_SECONDS
        cutoff = timezone.now() - timedelta(seconds=seconds)
        ended = 0
        for session in sessions_possibly_stale(cutoff=cutoff).iterator():
            if dry_run:
                self.stdout.write(f"would end {session.pk} ({session.status} since before {cutoff:%H:%M:%S})")
                continue
            if session_expire_if_stale(session=session, cutoff=cutoff):
                ended += 1
                self.stdout.write(f"ended {session.pk}: stuck in {session.status}")
        self.stdout.write(self.style.SUCCESS(f"{ended} stale session(s) ended (limit {seconds} s)."))
