"""`GET /api/analytics` on crafted sessions: exact numbers, empty days and periods, bad parameters, ownership."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from sessions.models import VoiceSession
from sessions.serializers import AnalyticsQueryInput

pytestmark = pytest.mark.django_db

WEEK = "from=2026-03-01&to=2026-03-07"


def at(day: int, hour: int = 12, minute: int = 0, second: int = 0, micro: int = 0, month: int = 3) -> datetime:
    return datetime(2026, month, day, hour, minute, second, micro, tzinfo=UTC)


def stored(user, created: datetime, *, customer_id: str = "globex", **fields) -> VoiceSession:
    session = VoiceSession.objects.create(created_by=user, customer_id=customer_id, **fields)
    VoiceSession.objects.filter(pk=session.pk).update(created_at=created)  # auto_now_add ignores a value
    return session


def ended(verdict: str = "", secs: int | None = None, cost: int | None = None, **fields) -> dict:
    return {"status": "ended", "call_successful": verdict, "call_duration_secs": secs, "cost": cost, **fields}


def failed(code: str, **fields) -> dict:
    return {"status": "failed", "failure_code": code, **fields}


@pytest.fixture
def week(alice, bob):
    """Alice's nine sessions of the week of 2026-03-01 (and two just outside it), Bob's one."""
    stored(alice, at(1, 10), customer_id="acme", **ended("success", 60, 100))
    stored(alice, at(1, 23, 59, 59), customer_id="acme", agent_type="sales", **ended("failure", 120, 50))
    stored(alice, at(3, 0), **failed("invalid_api_key"))
    stored(alice, at(3, 9), **ended("unknown", 30, 10))
    stored(alice, at(3, 10), agent_type="sales", status="active")
    stored(alice, at(7, 23, 59, 59, 999999), simulation=True, **ended("success", 300, 0))
    stored(alice, at(5, 8), **ended())  # ended, its post-call data never came
    stored(alice, at(5, 9), **failed("invalid_api_key"))
    stored(alice, at(5, 10), agent_type="sales", **failed("upstream_timeout"))
    # Outside the week, by a microsecond either way.
    stored(alice, at(8, 0), **ended("success", 999, 999))
    stored(alice, at(28, 23, 59, 59, 999999, month=2), **ended("success", 999, 999))
    stored(bob, at(2, 15), agent_type="sales", **ended("success", 45, 20))


def zero_day(day: str) -> dict:
    return {
        "date": day,
        "sessions": 0,
        "ended": 0,
        "failed": 0,
        "successful": 0,
        "cost": 0,
        "duration_avg_secs": None,
    }


def day(day: str, sessions: int, ended: int, failed: int, successful: int, cost: int, avg: float | None) -> dict:
    return {
        "date": day,
        "sessions": sessions,
        "ended": ended,
        "failed": failed,
        "successful": successful,
        "cost": cost,
        "duration_avg_secs": avg,
    }


ALICE_WEEK = {
    "from": "2026-03-01",
    "to": "2026-03-07",
    "totals": {
        "sessions": 9,
        "ended": 5,
        "failed": 3,
        "active": 1,
        "successful": 2,
        "unsuccessful": 1,
        "success_rate": 0.6667,
        # Ended with a duration: 30, 60, 120, 300. Nearest rank: p50 is the 2nd, p95 the 4th.
        "duration_p50_secs": 60,
        "duration_p95_secs": 300,
        "cost_total": 160,
    },
    "by_day": [
        day("2026-03-01", 2, 2, 0, 1, 150, 90.0),
        zero_day("2026-03-02"),
        day("2026-03-03", 3, 1, 1, 0, 10, 30.0),
        zero_day("2026-03-04"),
        day("2026-03-05", 3, 1, 2, 0, 0, None),
        zero_day("2026-03-06"),
        day("2026-03-07", 1, 1, 0, 1, 0, 300.0),
    ],
    "by_agent": [
        {"agent_type": "support", "sessions": 6, "success_rate": 1.0, "duration_avg_secs": 130.0, "cost_total": 110},
        {"agent_type": "sales", "sessions": 3, "success_rate": 0.0, "duration_avg_secs": 120.0, "cost_total": 50},
    ],
    "failures_by_code": [{"code": "invalid_api_key", "count": 2}, {"code": "upstream_timeout", "count": 1}],
}


def analytics(client, query: str = WEEK) -> dict:
    response = client.get(f"/api/analytics?{query}")
    assert response.status_code == 200, response.content
    return response.json()


def test_the_owner_gets_exact_figures_for_their_own_sessions(week, alice_api):
    assert analytics(alice_api) == ALICE_WEEK


def test_staff_see_everyones_sessions(week, staff_api):
    body = analytics(staff_api)
    assert body["totals"] == {
        **ALICE_WEEK["totals"],
        "sessions": 10,
        "ended": 6,
        "successful": 3,
        "success_rate": 0.75,
        # 30, 45, 60, 120, 300: the 3rd and the 5th.
        "duration_p50_secs": 60,
        "duration_p95_secs": 300,
        "cost_total": 180,
    }
    assert body["by_day"][1] == day("2026-03-02", 1, 1, 0, 1, 20, 45.0)
    assert body["by_agent"][1] == {
        "agent_type": "sales",
        "sessions": 4,
        "success_rate": 0.5,
        "duration_avg_secs": 82.5,
        "cost_total": 70,
    }


def test_another_user_sees_only_theirs(week, bob_api):
    body = analytics(bob_api)
    assert body["totals"]["sessions"] == 1
    assert body["totals"]["cost_total"] == 20
    assert body["failures_by_code"] == []


def test_filters_narrow_every_figure(week, alice_api):
    sales = analytics(alice_api, f"{WEEK}&agent_type=sales")
    assert sales["totals"]["sessions"] == 3
    assert [agent["agent_type"] for agent in sales["by_agent"]] == ["sales"]
    assert sales["failures_by_code"] == [{"code": "upstream_timeout", "count": 1}]

    simulated = analytics(alice_api, f"{WEEK}&simulation=true")
    assert simulated["totals"]["sessions"] == 1
    assert simulated["totals"]["duration_p50_secs"] == 300
    assert analytics(alice_api, f"{WEEK}&simulation=false")["totals"]["sessions"] == 8

    acme = analytics(alice_api, f"{WEEK}&customer_id=acme")
    assert acme["totals"]["sessions"] == 2
    assert acme["totals"]["success_rate"] == 0.5
    assert [d["sessions"] for d in acme["by_day"]] == [2, 0, 0, 0, 0, 0, 0]


def test_an_empty_period_has_every_day_and_no_rates(alice_api):
    body = analytics(alice_api, "from=2026-02-27&to=2026-03-01")
    assert body == {
        "from": "2026-02-27",
        "to": "2026-03-01",
        "totals": {
            "sessions": 0,
            "ended": 0,
            "failed": 0,
            "active": 0,
            "successful": 0,
            "unsuccessful": 0,
            "success_rate": None,
            "duration_p50_secs": None,
            "duration_p95_secs": None,
            "cost_total": 0,
        },
        "by_day": [zero_day("2026-02-27"), zero_day("2026-02-28"), zero_day("2026-03-01")],
        "by_agent": [
            {"agent_type": "support", "sessions": 0, "success_rate": None, "duration_avg_secs": None, "cost_total": 0},
            {"agent_type": "sales", "sessions": 0, "success_rate": None, "duration_avg_secs": None, "cost_total": 0},
        ],
        "failures_by_code": [],
    }


def test_one_day_and_the_longest_period(week, alice_api):
    one = analytics(alice_api, "from=2026-03-03&to=2026-03-03")
    assert one["totals"]["sessions"] == 3 and len(one["by_day"]) == 1
    leap_year = analytics(alice_api, "from=2024-01-01&to=2024-12-31")  # 366 days, both ends counted
    assert len(leap_year["by_day"]) == 366
    assert leap_year["by_day"][-1]["date"] == "2024-12-31"


@pytest.fixture
def today_is_march_7(monkeypatch):
    monkeypatch.setattr(AnalyticsQueryInput, "today", lambda self: date(2026, 3, 7))


def test_the_default_period_is_the_week_ending_today(week, alice_api, today_is_march_7):
    assert analytics(alice_api, "") == ALICE_WEEK
    assert analytics(alice_api, "to=2026-03-07") == ALICE_WEEK
    assert analytics(alice_api, "from=2026-03-01") == ALICE_WEEK
    assert analytics(alice_api, "from=&to=") == ALICE_WEEK  # empty means unset


@pytest.mark.parametrize(
    ("query", "parameter"),
    [
        ("from=2026-13-01", "from"),
        ("from=yesterday", "from"),
        ("to=2026-02-30", "to"),
        ("to=2026-03-01T00:00:00Z", "to"),
        ("from=2026-03-08&to=2026-03-07", "from"),
        ("from=2025-01-01&to=2026-01-01", "from"),  # 366 days, but 2025 is not a leap year: fine
        ("from=2024-12-31&to=2026-01-01", "from"),  # 367 days
        ("from=0001-01-01&to=0001-01-02", "from"),
        ("to=9999-12-31", "to"),
        ("agent_type=billing", "agent_type"),
        ("simulation=maybe", "simulation"),
        ("simulation=1", "simulation"),
        ("customer_id=not%20an%20id", "customer_id"),
        ("customer_id=a%00b", "customer_id"),
    ],
)
def test_bad_parameters_are_400_naming_the_parameter(alice_api, today_is_march_7, query, parameter):
    response = alice_api.get(f"/api/analytics?{query}")
    if query == "from=2025-01-01&to=2026-01-01":
        assert response.status_code == 200
        return
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] == "invalid"
    assert list(error["fields"]) == [parameter]
    assert parameter in error["message"]


def test_anonymous_is_401_and_a_token_works(week, alice):
    assert APIClient().get("/api/analytics").status_code == 401
    client = APIClient(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=alice).key}")
    assert analytics(client) == ALICE_WEEK


def test_a_logged_in_browser_session_works(week, client, alice):
    client.force_login(alice)
    response = client.get(f"/api/analytics?{WEEK}", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    assert response.json() == ALICE_WEEK


def test_the_number_of_queries_does_not_grow_with_sessions_or_days(week, staff_api):
    """Counted by the database: the same handful of queries for a week or a year of sessions."""
    with CaptureQueriesContext(connection) as week_queries:
        analytics(staff_api)
    with CaptureQueriesContext(connection) as year_queries:
        analytics(staff_api, "from=2025-03-08&to=2026-03-07")
    assert len(week_queries) == len(year_queries) <= 8


def test_it_is_in_the_openapi_schema(alice_api):
    schema = alice_api.get("/api/schema/?format=json").json()
    operation = schema["paths"]["/api/analytics"]["get"]
    assert {p["name"] for p in operation["parameters"]} >= {"from", "to", "agent_type", "simulation", "customer_id"}
    response = operation["responses"]["200"]["content"]["application/json"]["schema"]
    name = response["$ref"].rsplit("/", 1)[-1]
    assert set(schema["components"]["schemas"][name]["properties"]) == {
        "from",
        "to",
        "totals",
        "by_day",
        "by_agent",
        "failures_by_code",
    }
