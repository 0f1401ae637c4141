"""What happened on the calls of a period: counts, outcomes, durations and cost, per day and per agent.

Everything is counted by the database: one grouped query (per day and agent type) gives the rows
that the totals, the days and the agents are summed from, so Python only adds up at most
366 × agent types rows, never sessions. The duration percentiles are nearest-rank, picked by the
database from a running count per distinct duration, so SQLite and PostgreSQL answer the same. Days are UTC days
of ``created_at``: a session counts on the day it was created, whatever became of it later.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from datetime import UTC, date, datetime, time, timedelta

from django.db import connections
from django.db.models import Count, DateField, Q, QuerySet, Sum
from django.db.models.functions import Cast

from sessions.models import AgentType, CallOutcome, Status, VoiceSession
from sessions.selectors import sessions_visible_to

# The longest period one question may cover, counting both ends (a leap year).
MAX_PERIOD_DAYS = 366
# Without ``from``: the week that ends on ``to``.
DEFAULT_PERIOD_DAYS = 7
# Dates a period may start or end on: a period's end is turned into the next midnight, which
# must stay a datetime Python can hold, and its default start must too.
EARLIEST_DATE = date(1970, 1, 1)
LATEST_DATE = date(9999, 12, 30)

ENDED = Q(status=Status.ENDED)
# The sessions a duration statistic is about: ended, with a duration from their post-call data.
TIMED = ENDED & Q(call_duration_secs__isnull=False)


class PeriodError(ValueError):
    """A period that cannot be asked for; ``parameter`` names what to change (``from`` or ``to``)."""

    def __init__(self, parameter: str, message: str):
        super().__init__(message)
        self.parameter = parameter
        self.message = message


def analytics_period(*, start: date | None, end: date | None, today: date) -> tuple[date, date]:
    """The period asked for, both ends inclusive; ``to`` defaults to today, ``from`` to six days before ``to``."""
    for parameter, day in (("from", start), ("to", end)):
        if day is not None and not EARLIEST_DATE <= day <= LATEST_DATE:
            raise PeriodError(parameter, f"Must be between {EARLIEST_DATE} and {LATEST_DATE}.")
    end = end or min(today, LATEST_DATE)
    start = start or max(end - timedelta(days=DEFAULT_PERIOD_DAYS - 1), EARLIEST_DATE)
    if start > end:
        raise PeriodError("from", f"Must be on or before to ({end}).")
    days = (end - start).days + 1
    if days > MAX_PERIOD_DAYS:
        raise PeriodError("from", f"The period from {start} to {end} is {days} days; at most {MAX_PERIOD_DAYS}.")
    return start, end


@dataclass
class Tally:
    """The counts of one group of sessions (a day, an agent type, the whole period)."""

    sessions: int = 0
    ended: int = 0
    failed: int = 0
    active: int = 0
    successful: int = 0
    unsuccessful: int = 0
    # Ended sessions by verdict, so that a chart can stack outcomes that do not overlap.
    ended_successful: int = 0
    ended_unsuccessful: int = 0
    cost: int = 0
    timed: int = 0
    duration_total: int = 0

    def add(self, counts: Tally) -> None:
        for name in TALLY_FIELDS:
            setattr(self, name, getattr(self, name) + getattr(counts, name))

    @property
    def success_rate(self) -> float | None:
        """Successful ÷ (successful + unsuccessful); None when no session has a verdict either way."""
        judged = self.successful + self.unsuccessful
        return round(self.successful / judged, 4) if judged else None

    @property
    def duration_avg_secs(self) -> float | None:
        return round(self.duration_total / self.timed, 1) if self.timed else None

    @property
    def ended_without_verdict(self) -> int:
        return self.ended - self.ended_successful - self.ended_unsuccessful

    @property
    def in_progress(self) -> int:
        """Neither ended nor failed: created, connecting or active."""
        return self.sessions - self.ended - self.failed


TALLY_FIELDS = tuple(f.name for f in fields(Tally))


@dataclass
class PeriodTally(Tally):
    """The whole period's counts, and the spread of its durations (nearest rank)."""

    duration_p50_secs: int | None = None
    duration_p95_secs: int | None = None


@dataclass
class DayTally(Tally):
    date: date = field(default=EARLIEST_DATE)


@dataclass
class AgentTally(Tally):
    agent_type: str = ""


@dataclass(frozen=True)
class FailureCount:
    code: str
    count: int


@dataclass(frozen=True)
class Analytics:
    start: date
    end: date
    totals: PeriodTally
    by_day: list[DayTally]
    by_agent: list[AgentTally]
    failures_by_code: list[FailureCount]


@dataclass(frozen=True)
class DurationBucket:
    """Ended sessions whose duration is in [low, high) seconds; ``high`` None is open-ended."""

    label: str
    low: int
    high: int | None
    count: int


# The duration percentiles of a period's totals.
PERCENTILES = (50, 95)
# The duration histogram's buckets: [low, high) seconds and a label short enough for a chart's axis.
DURATION_BUCKETS = (
    (0, 30, "under 30 s"),
    (30, 60, "30–60 s"),
    (60, 120, "1–2 min"),
    (120, 300, "2–5 min"),
    (300, 600, "5–10 min"),
    (600, 1200, "10–20 min"),
    (1200, None, "20 min +"),
)


@dataclass(frozen=True)
class AnalyticsFilters:
    """Which sessions a question is about: created in [start, end] (UTC days, both counted), and optionally more."""

    start: date
    end: date
    agent_type: str | None = None
    simulation: bool | None = None
    customer_id: str | None = None


def analytics_sessions(*, user, filters: AnalyticsFilters) -> QuerySet[VoiceSession]:
    """The sessions a question is about: those ``user`` may see, created in the period (UTC), filtered."""
    sessions = (
        sessions_visible_to(user)
        .select_related(None)
        .filter(created_at__gte=_midnight(filters.start), created_at__lt=_midnight(filters.end + timedelta(days=1)))
    )
    if filters.agent_type:
        sessions = sessions.filter(agent_type=filters.agent_type)
    if filters.simulation is not None:
        sessions = sessions.filter(simulation=filters.simulation)
    if filters.customer_id:
        sessions = sessions.filter(customer_id=filters.customer_id)
    return sessions.order_by()


def sessions_analytics(*, user, filters: AnalyticsFilters) -> Analytics:
    """The period's figures for ``user`` (staff: everyone's sessions; others: their own)."""
    sessions = analytics_sessions(user=user, filters=filters)
    start, end = filters.start, filters.end
    totals = PeriodTally()
    days = {start + timedelta(days=n): DayTally(date=start + timedelta(days=n)) for n in range((end - start).days + 1)}
    agents = {kind: AgentTally(agent_type=kind) for kind in AgentType.values if filters.agent_type in (None, "", kind)}
    for day, kind, counts in _tallies_by_day_and_agent(sessions):
        totals.add(counts)
        days[day].add(counts)
        agents[kind].add(counts)
    totals.duration_p50_secs, totals.duration_p95_secs = _duration_percentiles(sessions, totals.timed)
    return Analytics(
        start=start,
        end=end,
        totals=totals,
        by_day=list(days.values()),
        by_agent=list(agents.values()),
        failures_by_code=_failures_by_code(sessions),
    )


def duration_histogram(sessions: QuerySet[VoiceSession]) -> list[DurationBucket]:
    """How many ended sessions lasted how long, in :data:`DURATION_BUCKETS` (one aggregate query)."""
    counts = sessions.filter(TIMED).aggregate(
        **{f"b{low}": counted(Q(call_duration_secs__gte=low) & _below(high)) for low, high, _ in DURATION_BUCKETS}
    )
    return [DurationBucket(label, low, high, counts[f"b{low}"]) for low, high, label in DURATION_BUCKETS]


# --- the queries -----------------------------------------------------------------------------------


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def _below(high: int | None) -> Q:
    return Q(call_duration_secs__lt=high) if high is not None else Q()


def counted(condition: Q) -> Count:
    # COUNT of a NOT NULL column of the covering index (session_created_facts): COUNT(id) would make
    # both databases read the table's rows, and COUNT(*) takes no FILTER in Django.
    return Count("created_at", filter=condition)


def _tallies_by_day_and_agent(sessions: QuerySet[VoiceSession]) -> Iterable[tuple[date, str, Tally]]:
    # CAST(created_at AS date): SQLite's date() on the UTC text Django stores, PostgreSQL's ::date in
    # the UTC time zone Django sets on its connections; both native, unlike TruncDate's Python
    # function on SQLite, which costs a call per row.
    rows = (
        sessions.annotate(day=Cast("created_at", DateField()))
        .values("day", "agent_type")
        .annotate(
            sessions=Count("*"),
            ended=counted(ENDED),
            failed=counted(Q(status=Status.FAILED)),
            active=counted(Q(status=Status.ACTIVE)),
            successful=counted(Q(call_successful=CallOutcome.SUCCESS)),
            unsuccessful=counted(Q(call_successful=CallOutcome.FAILURE)),
            ended_successful=counted(ENDED & Q(call_successful=CallOutcome.SUCCESS)),
            ended_unsuccessful=counted(ENDED & Q(call_successful=CallOutcome.FAILURE)),
            cost=Sum("cost", default=0),
            timed=counted(TIMED),
            duration_total=Sum("call_duration_secs", filter=TIMED, default=0),
        )
        .order_by()
    )
    for row in rows:
        yield row["day"], row["agent_type"], Tally(**{name: row[name] for name in TALLY_FIELDS})


def _duration_percentiles(sessions: QuerySet[VoiceSession], timed: int) -> tuple[int | None, int | None]:
    """The 50th and 95th nearest-rank percentiles of the timed sessions' durations, in one query.

    Nearest rank: the smallest duration with at least p % of the timed sessions at or below it.
    The database counts the sessions of each distinct duration, runs a cumulative sum over those
    counts in duration order and picks, for each rank, the first duration whose sum reaches it:
    one scan and a small sort of distinct values, instead of sorting every session twice.
    """
    if not timed:
        return None, None
    ranks = [-(-percent * timed // 100) for percent in PERCENTILES]  # ceil(p / 100 × timed), in integers
    per_duration = sessions.filter(TIMED).values("call_duration_secs").annotate(n=Count("*")).order_by()
    inner, params = per_duration.query.sql_with_params()
    picks = ", ".join("MIN(CASE WHEN running >= %s THEN call_duration_secs END)" for _ in ranks)
    query = (
        f"SELECT {picks} FROM (SELECT call_duration_secs, SUM(n) OVER (ORDER BY call_duration_secs) AS running"  # noqa: S608
        f" FROM ({inner}) per_duration) cumulative"
    )
    with connections[sessions.db].cursor() as cursor:
        cursor.execute(query, [*ranks, *params])
        p50, p95 = cursor.fetchone()
    return p50, p95


def _failures_by_code(sessions: QuerySet[VoiceSession]) -> list[FailureCount]:
    rows = (
        sessions.filter(status=Status.FAILED)
        .values("failure_code")
        .annotate(count=Count("*"))
        .order_by("-count", "failure_code")
    )
    return [FailureCount(code=row["failure_code"], count=row["count"]) for row in rows]
