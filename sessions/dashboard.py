"""The admin's analytics page (/admin/analytics/): the API's figures as SVG bar charts, each beside its table.

The charts are drawn on the server: this module turns the figures into rectangles and axis
labels (a presenter, no HTML), the template writes them out as SVG. No script runs, so the
page works without JavaScript and under the strict Content-Security-Policy, and every number a
chart shows is in the table next to it, where a screen reader or a copy-paste finds it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse

from sessions.analytics import Analytics, DurationBucket, analytics_sessions, duration_histogram, sessions_analytics
from sessions.models import AgentType
from sessions.serializers import AnalyticsQueryInput

# The drawing's coordinate system (the SVG's viewBox); the browser scales it to the page.
WIDTH = 640
HEIGHT = 240
MARGIN_LEFT = 52
MARGIN_RIGHT = 8
MARGIN_TOP = 12
MARGIN_BOTTOM = 34
BAR_FILL = 0.8  # of each category's slot; the rest is the gap between bars
MAX_X_LABELS = 8
NO_DATA = "–"


@dataclass(frozen=True)
class Series:
    """One kind of value across the categories; ``key`` names its colour (the CSS class ``series-<key>``)."""

    key: str
    label: str
    values: Sequence[float | None]


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    series: str
    title: str


@dataclass(frozen=True)
class Tick:
    at: float
    label: str


@dataclass(frozen=True)
class Chart:
    id: str
    title: str
    description: str
    category_label: str
    categories: Sequence[str]
    series: Sequence[Series]
    bars: Sequence[Bar]
    x_ticks: Sequence[Tick]
    y_ticks: Sequence[Tick]
    table_rows: Sequence[tuple[str, Sequence[str]]]
    show_total: bool
    width: int = WIDTH
    height: int = HEIGHT
    plot_left: int = MARGIN_LEFT
    plot_right: int = WIDTH - MARGIN_RIGHT
    plot_top: int = MARGIN_TOP
    plot_bottom: int = HEIGHT - MARGIN_BOTTOM


def nice_ceiling(value: float) -> float:
    """The smallest 1, 2 or 5 × 10ⁿ at or above ``value``: the top of an axis people read easily."""
    if value <= 0:
        return 1
    magnitude = 10 ** math.floor(math.log10(value))
    return next(step * magnitude for step in (1, 2, 5, 10) if step * magnitude >= value)


def bar_chart(
    *,
    id: str,
    title: str,
    description: str,
    category_label: str,
    categories: Sequence[str],
    series: Sequence[Series],
    axis_labels: Sequence[str] | None = None,
    top: float | None = None,
    show: Callable[[float], str] = lambda value: f"{value:,.0f}" if value == int(value) else f"{value:,.1f}",
) -> Chart:
    """Bars per category, the series stacked in order; a value of 0 or None draws nothing."""
    count = max(len(categories), 1)
    plot_width = WIDTH - MARGIN_LEFT - MARGIN_RIGHT
    plot_height = HEIGHT - MARGIN_TOP - MARGIN_BOTTOM
    baseline = HEIGHT - MARGIN_BOTTOM
    stacked = [sum(s.values[i] or 0 for s in series) for i in range(len(categories))]
    top = top or nice_ceiling(max(stacked, default=0))
    scale = plot_height / top
    slot = plot_width / count
    bar_width = slot * BAR_FILL
    bars = []
    for i, category in enumerate(categories):
        x = MARGIN_LEFT + i * slot + (slot - bar_width) / 2
        below = 0.0
        for s in series:
            value = s.values[i]
            if not value:
                continue
            height = value * scale
            bars.append(
                Bar(
                    x=round(x, 2),
                    y=round(baseline - (below + value) * scale, 2),
                    width=round(bar_width, 2),
                    height=round(height, 2),
                    series=s.key,
                    title=f"{category}, {s.label}: {show(value)}",
                )
            )
            below += value
    labels = axis_labels or categories
    step = math.ceil(len(labels) / MAX_X_LABELS) or 1
    x_ticks = [Tick(round(MARGIN_LEFT + (i + 0.5) * slot, 2), labels[i]) for i in range(0, len(labels), step)]
    y_ticks = [Tick(round(baseline - fraction * plot_height, 2), show(top * fraction)) for fraction in (0, 0.5, 1)]
    table_rows = [
        (category, [NO_DATA if s.values[i] is None else show(s.values[i]) for s in series])
        for i, category in enumerate(categories)
    ]
    if len(series) > 1:
        table_rows = [(category, [*cells, show(stacked[i])]) for i, (category, cells) in enumerate(table_rows)]
    return Chart(
        id=id,
        title=title,
        description=description,
        category_label=category_label,
        categories=categories,
        series=series,
        bars=bars,
        x_ticks=x_ticks,
        y_ticks=y_ticks,
        table_rows=table_rows,
        show_total=len(series) > 1,
    )


def analytics_charts(analytics: Analytics, histogram: Sequence[DurationBucket]) -> list[Chart]:
    days = analytics.by_day
    dates = [day.date.isoformat() for day in days]
    short_dates = [day.date.strftime("%m-%d") for day in days]
    agent_labels = dict(AgentType.choices)
    return [
        bar_chart(
            id="chart-sessions-per-day",
            title="Sessions per day, by outcome",
            description="Each day's sessions stacked: ended (success, failure, no verdict), failed, still open.",
            category_label="Day (UTC)",
            categories=dates,
            axis_labels=short_dates,
            series=[
                Series("success", "Ended: success", [d.ended_successful for d in days]),
                Series("failure", "Ended: failure", [d.ended_unsuccessful for d in days]),
                Series("no-verdict", "Ended: no verdict", [d.ended_without_verdict for d in days]),
                Series("failed", "Failed", [d.failed for d in days]),
                Series("open", "In progress", [d.in_progress for d in days]),
            ],
        ),
        bar_chart(
            id="chart-success-rate",
            title="Success rate per day",
            description="Successful ÷ (successful + unsuccessful) per day; no bar where no call had a verdict.",
            category_label="Day (UTC)",
            categories=dates,
            axis_labels=short_dates,
            series=[
                Series(
                    "success",
                    "Success rate",
                    [None if d.success_rate is None else round(d.success_rate * 100, 1) for d in days],
                )
            ],
            top=100,
            show=lambda value: f"{value:g} %",
        ),
        bar_chart(
            id="chart-durations",
            title="How long calls lasted",
            description="Ended sessions with a duration, counted by length.",
            category_label="Duration",
            categories=[bucket.label for bucket in histogram],
            series=[Series("duration", "Sessions", [bucket.count for bucket in histogram])],
        ),
        bar_chart(
            id="chart-cost-per-agent",
            title="Cost per agent",
            description="ElevenLabs credits of the period's sessions, per agent.",
            category_label="Agent",
            categories=[agent_labels[agent.agent_type] for agent in analytics.by_agent],
            series=[Series("cost", "Credits", [agent.cost for agent in analytics.by_agent])],
        ),
    ]


def analytics_page(request: HttpRequest) -> HttpResponse:
    """The page: the API's parameters as a GET form, then the figures (staff see every session)."""
    query = AnalyticsQueryInput(data=request.GET)
    context: dict[str, Any] = {
        **admin.site.each_context(request),
        "title": "Analytics",
        "agent_types": AgentType.choices,
        "values": request.GET,
        "errors": {},
    }
    if query.is_valid():
        filters = query.validated_data["filters"]
        analytics = sessions_analytics(user=request.user, filters=filters)
        histogram = duration_histogram(analytics_sessions(user=request.user, filters=filters))
        context.update(
            analytics=analytics,
            charts=analytics_charts(analytics, histogram),
            values={**request.GET.dict(), "from": filters.start.isoformat(), "to": filters.end.isoformat()},
        )
    else:
        context["errors"] = {name: " ".join(messages) for name, messages in query.errors.items()}
    return TemplateResponse(request, "sessions/admin/analytics.html", context)
