"""Remove the transcripts, analysis and recordings of sessions that ended long ago (retention; run from cron).

The session rows stay, with their timeline and post-call columns, so filters and analytics still count
every call. Safe while the service runs, on several machines at once: sessions are taken a batch at a
time, each one pruned in a short transaction of its own under its row lock (sessions.services.lifecycle
.session_prune), and recordings deleted from storage only after that transaction has committed.
"""

from __future__ import annotations

from argparse import ArgumentTypeError
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db.models import Q
from django.utils import timezone

from sessions.selectors import sessions_to_prune
from sessions.services.lifecycle import session_prune

BATCH_SIZE = 200


@dataclass(frozen=True)
class Plan:
    days: int
    audio_only: bool
    setting: str = ""  # the setting the age came from, when --older-than did not give it

    def describe(self, ended_before: datetime) -> str:
        what = "recordings only" if self.audio_only else "transcripts, analysis and recordings"
        source = f", {self.setting}" if self.setting else ""
        return f"ended more than {self.days} day(s) ago, before {ended_before:%Y-%m-%d %H:%M} UTC ({what}{source})"


class Command(BaseCommand):
    help = (
        "Remove stored transcripts, analysis and recordings of sessions that ended more than DAYS ago; "
        "the sessions and their post-call columns stay."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--older-than",
            type=_days,
            default=None,
            metavar="DAYS",
            help="Sessions that ended more than DAYS days ago (default: RETENTION_DAYS, and AUDIO_RETENTION_DAYS "
            "for recordings).",
        )
        parser.add_argument(
            "--audio-only", action="store_true", help="Remove only the recordings; keep transcripts and analysis."
        )
        parser.add_argument("--dry-run", action="store_true", help="Count what would be removed; change nothing.")

    def handle(self, *args, older_than, audio_only, dry_run, **options):
        for plan in _plans(older_than=older_than, audio_only=audio_only):
            ended_before = timezone.now() - timedelta(days=plan.days)
            if dry_run:
                self._count(plan, ended_before)
            else:
                self._prune(plan, ended_before, verbose=options["verbosity"] >= 2)

    def _count(self, plan: Plan, ended_before: datetime) -> None:
        candidates = sessions_to_prune(ended_before=ended_before, audio_only=plan.audio_only)
        transcripts = 0 if plan.audio_only else candidates.filter(pruned_at__isnull=True).count()
        recordings = candidates.exclude(audio="").count()
        self.stdout.write(
            f"Dry run: would prune {candidates.count()} session(s) that {plan.describe(ended_before)}: "
            f"{transcripts} transcript(s), {recordings} recording(s). Nothing was changed."
        )

    def _prune(self, plan: Plan, ended_before: datetime, *, verbose: bool) -> None:
        sessions = transcripts = recordings = 0
        after = None  # (ended_at, pk) of the last session looked at: every batch moves on, pruned or not
        while True:
            candidates = sessions_to_prune(ended_before=ended_before, audio_only=plan.audio_only)
            if after is not None:
                candidates = candidates.filter(Q(ended_at__gt=after[0]) | Q(ended_at=after[0], pk__gt=after[1]))
            batch = list(candidates.values_list("ended_at", "pk")[:BATCH_SIZE])
            if not batch:
                break
            after = batch[-1]
            for _, pk in batch:
                pruned = session_prune(session=pk, ended_before=ended_before, audio_only=plan.audio_only)
                if pruned is None:  # it changed since the batch was read
                    continue
                sessions += 1
                transcripts += pruned.transcript
                recordings += pruned.recording
                if verbose:
                    self.stdout.write(f"pruned {pk}: transcript {pruned.transcript}, recording {pruned.recording}")
        self.stdout.write(
            self.style.SUCCESS(
                f"Pruned {sessions} session(s) that {plan.describe(ended_before)}: "
                f"{transcripts} transcript(s), {recordings} recording(s) removed."
            )
        )


def _days(value: str) -> int:
    try:
        days = int(value)
    except ValueError:
        raise ArgumentTypeError(f"{value!r} is not a whole number of days") from None
    if days < 1:
        raise ArgumentTypeError("must be 1 or more days")
    return days


def _plans(*, older_than: int | None, audio_only: bool) -> list[Plan]:
    """What to prune: the age asked for, else the settings' (recordings may be kept for less time than the rest)."""
    if older_than is not None:
        return [Plan(days=older_than, audio_only=audio_only)]
    retention, audio_retention = settings.RETENTION_DAYS, settings.AUDIO_RETENTION_DAYS
    if audio_only:
        if audio_retention or retention:
            name = "AUDIO_RETENTION_DAYS" if audio_retention else "RETENTION_DAYS"
            return [Plan(days=audio_retention or retention, audio_only=True, setting=name)]
        raise CommandError("Say how old: --older-than DAYS, or set AUDIO_RETENTION_DAYS (or RETENTION_DAYS).")
    plans = []
    if retention:
        plans.append(Plan(days=retention, audio_only=False, setting="RETENTION_DAYS"))
    if audio_retention and (not retention or audio_retention < retention):
        plans.append(Plan(days=audio_retention, audio_only=True, setting="AUDIO_RETENTION_DAYS"))
    if not plans:
        raise CommandError("Say how old: --older-than DAYS, or set RETENTION_DAYS and/or AUDIO_RETENTION_DAYS.")
    return plans
