"""The admin's analytics page (/admin/analytics/): staff only, the API's filters as a form, SVG charts beside tables."""

from __future__ import annotations

import re

import pytest

from sessions.dashboard import Series, bar_chart, nice_ceiling
from tests.test_analytics_api import WEEK, week  # noqa: F401 (week: a fixture)

pytestmark = pytest.mark.django_db

PAGE = "/admin/analytics/"


@pytest.fixture
def operator(client, charlie_staff):
    client.force_login(charlie_staff)
    return client


def rects(html: str, chart_id: str) -> list[str]:
    svg = re.search(rf'<svg id="{chart_id}".*?</svg>', html, re.S).group(0)
    return re.findall(r'<rect class="bar series-([\w-]+)"', svg)


def table_rows(html: str, chart_id: str) -> list[list[str]]:
    table = re.search(rf'<table id="{chart_id}-table">.*?</table>', html, re.S).group(0)
    body = table.split("<tbody>", 1)[1]
    return [re.findall(r"<t[hd][^>]*>([^<]*)</t[hd]>", row) for row in re.findall(r"<tr>(.*?)</tr>", body, re.S)]


def test_anonymous_and_non_staff_users_are_sent_to_the_admin_login(client, alice):
    assert client.get(PAGE)["Location"] == f"/admin/login/?next={PAGE}"
    client.force_login(alice)
    assert client.get(PAGE)["Location"] == f"/admin/login/?next={PAGE}"


def test_the_admin_index_links_to_it(client, django_user_model):
    client.force_login(django_user_model.objects.create_superuser("olivia", "olivia@example.com", "olivia-pass-1"))
    index = client.get("/admin/")
    assert f'<a href="{PAGE}">Calls per day, outcomes, durations and cost</a>' in index.text
    assert "Voice sessions" in index.text  # the apps are still listed


@pytest.mark.usefixtures("week")
def test_the_charts_and_their_tables_show_the_weeks_figures(operator):
    page = operator.get(f"{PAGE}?{WEEK}")
    assert page.status_code == 200
    html = page.text
    assert 'value="2026-03-01"' in html and 'value="2026-03-07"' in html
    assert "<dt>Sessions</dt><dd>10</dd>" in html
    # Stacked per day: 03-01 success + failure, 03-02 success, 03-03 no verdict + failed + open,
    # 03-05 no verdict + failed, 03-07 success.
    assert rects(html, "chart-sessions-per-day") == [
        "success",
        "failure",
        "success",
        "no-verdict",
        "failed",
        "open",
        "no-verdict",
        "failed",
        "success",
    ]
    assert table_rows(html, "chart-sessions-per-day")[2] == ["2026-03-03", "0", "0", "1", "1", "1", "3"]
    # Days with a verdict: 03-01 (50 %), 03-02 (100 %), 03-07 (100 %); 03-03's only verdict is "unknown".
    assert len(rects(html, "chart-success-rate")) == 3
    assert [row[1] for row in table_rows(html, "chart-success-rate")] == ["50 %", "100 %", "–", "–", "–", "–", "100 %"]
    # 30, 45, 60, 120, 300 seconds.
    assert [row[1] for row in table_rows(html, "chart-durations")] == ["0", "2", "1", "1", "1", "0", "0"]
    assert len(rects(html, "chart-durations")) == 4
    assert table_rows(html, "chart-cost-per-agent") == [["Support", "110"], ["Sales", "70"]]
    assert 'role="img"' in html and "<desc" in html
    assert "<script" not in html.split('<div id="content-main">', 1)[1]  # the page itself runs no script


@pytest.mark.usefixtures("week")
def test_its_filters_are_the_apis(operator):
    page = operator.get(f"{PAGE}?{WEEK}&agent_type=sales&simulation=false&customer_id=acme")
    assert "<dt>Sessions</dt><dd>1</dd>" in page.text
    assert table_rows(page.text, "chart-cost-per-agent") == [["Sales", "50"]]
    assert '<option value="sales" selected>' in page.text
    assert '<option value="false" selected>' in page.text


def test_bad_filters_are_named_on_the_page_without_figures(operator):
    page = operator.get(f"{PAGE}?from=2026-03-08&to=2026-03-07")
    assert page.status_code == 200
    assert 'role="alert"' in page.text
    assert "<strong>from</strong>: Must be on or before to (2026-03-07)." in page.text
    assert 'id="analytics-from" name="from" value="2026-03-08" aria-invalid="true"' in page.text
    assert "<svg id=" not in page.text
    unknown_agent = operator.get(f"{PAGE}?agent_type=billing&customer_id=a%20b")
    assert "<strong>agent_type</strong>" in unknown_agent.text
    assert "<strong>customer_id</strong>" in unknown_agent.text


def test_the_page_is_under_the_strict_csp(operator):
    page = operator.get(PAGE)
    policy = page["Content-Security-Policy"]
    assert "script-src 'self' 'nonce-" in policy and "unsafe-inline" not in policy


def test_a_long_period_labels_at_most_eight_days_and_keeps_every_row():
    days = [f"2026-01-{n:02d}" for n in range(1, 32)]
    chart = bar_chart(
        id="c", title="t", description="d", category_label="Day", categories=days, series=[Series("s", "S", [1] * 31)]
    )
    assert len(chart.x_ticks) <= 8
    assert len(chart.table_rows) == 31 and len(chart.bars) == 31
    assert all(bar.y >= chart.plot_top and bar.y + bar.height <= chart.plot_bottom + 0.01 for bar in chart.bars)


@pytest.mark.parametrize(("value", "top"), [(0, 1), (1, 1), (3, 5), (7, 10), (12, 20), (250, 500), (1000, 1000)])
def test_axes_end_on_a_round_number(value, top):
    assert nice_ceiling(value) == top
