"""The sessions domain's Prometheus metrics (plumbing: voiceagent/metrics.py).

- ``voiceagent_session_transitions_total{from_status, to_status, agent_type}``: counted by
  sessions/services/lifecycle.py once a transition commits (a new session counts as
  ``none`` → ``created``);
- ``voiceagent_sessions{status, agent_type}``: sessions connecting or active now, read from the
  database when Prometheus scrapes (:class:`LiveSessionsCollector`), so every worker reports the
  same truth and a worker that dies leaves no count behind.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

from django.db.models import Count
from prometheus_client import Counter
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from sessions.models import AgentType, Status, VoiceSession

logger = logging.getLogger("voiceagent.sessions")

NO_STATUS = "none"
LIVE_STATUSES = (Status.CONNECTING, Status.ACTIVE)

SESSION_TRANSITIONS = Counter(
    "voiceagent_session_transitions",
    "Committed session status changes, by the status left, the status reached and the agent type.",
    ["from_status", "to_status", "agent_type"],
)


def count_transition(from_status: str, to_status: str, agent_type: str) -> None:
    SESSION_TRANSITIONS.labels(from_status or NO_STATUS, to_status, agent_type).inc()


class LiveSessionsCollector:
    """``voiceagent_sessions``: how many sessions are connecting or active, per agent type, now.

    One grouped COUNT per scrape (the status index serves it). Every status and agent type is
    reported, zeros included, so a series never vanishes; when the database cannot answer the
    family is left out of that scrape (and the reason logged) rather than failing the scrape.
    """

    def collect(self) -> Iterator[Metric]:
        try:
            rows = (
                VoiceSession.objects.filter(status__in=LIVE_STATUSES)
                .values_list("status", "agent_type")
                .annotate(sessions=Count("pk"))
                .order_by()
            )
            counts = {(status, agent_type): sessions for status, agent_type, sessions in rows}
        except Exception as exc:  # a scrape must still answer with the counters
            logger.warning("metrics: live sessions not read: %s: %s", type(exc).__name__, exc)
            return
        gauge = GaugeMetricFamily(
            "voiceagent_sessions",
            "Sessions connecting or active now, by status and agent type (read from the database at scrape time).",
            labels=["status", "agent_type"],
        )
        agent_types = [*AgentType.values, *sorted({agent for _, agent in counts} - set(AgentType.values))]
        for status in LIVE_STATUSES:
            for agent_type in agent_types:
                gauge.add_metric([status.value, agent_type], counts.get((status.value, agent_type), 0))
        yield gauge
