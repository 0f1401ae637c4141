"""/healthz and /api/healthz: liveness and what is configured, never a secret, no login."""

from __future__ import annotations

import json

import pytest
from django.db import OperationalError, connection

from voiceagent.views import database_status_cache

PATHS = ["/healthz", "/api/healthz"]


@pytest.fixture(autouse=True)
def fresh_database_status():
    # Each process keeps its last database status for a second; every test here starts without one.
    database_status_cache.forget()
    yield
    database_status_cache.forget()


def secrets_of(settings) -> list[str]:
    return [settings.ELEVENLABS_API_KEY, settings.ELEVENLABS_WEBHOOK_SECRET, settings.SECRET_KEY]


@pytest.mark.django_db
@pytest.mark.parametrize("path", PATHS)
def test_it_answers_without_login(client, settings, path):
    response = client.get(path)

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["database"] == {"ok": True, "vendor": connection.vendor}
    assert body["elevenlabs"] == {"mode": "configured", "missing": [], "base_url": "https://api.elevenlabs.io"}
    assert body["version"] == "1.0.0"
    assert response["Cache-Control"].startswith("max-age=0")
    for secret in secrets_of(settings):
        assert secret not in response.content.decode()


@pytest.mark.django_db
def test_without_an_api_key_it_says_simulation(client, simulation_mode):
    simulation_mode.ELEVENLABS_WEBHOOK_SECRET = ""

    elevenlabs = client.get("/healthz").json()["elevenlabs"]

    assert elevenlabs["mode"] == "simulation"
    assert elevenlabs["missing"] == ["ELEVENLABS_API_KEY", "ELEVENLABS_WEBHOOK_SECRET"]


@pytest.mark.django_db
@pytest.mark.parametrize(
    "unset",
    [
        ["ELEVENLABS_SUPPORT_AGENT_ID"],
        ["ELEVENLABS_SALES_AGENT_ID"],
        ["ELEVENLABS_WEBHOOK_SECRET"],
        ["ELEVENLABS_SUPPORT_AGENT_ID", "ELEVENLABS_SALES_AGENT_ID", "ELEVENLABS_WEBHOOK_SECRET"],
    ],
)
def test_a_key_without_agents_or_webhook_secret_is_misconfigured_and_named(client, settings, unset):
    for name in unset:
        setattr(settings, name, "")

    response = client.get("/api/healthz")

    assert response.status_code == 200  # the process is alive; the body says what is wrong
    elevenlabs = response.json()["elevenlabs"]
    assert elevenlabs["mode"] == "misconfigured"
    assert elevenlabs["missing"] == unset
    assert settings.ELEVENLABS_API_KEY not in response.content.decode()


@pytest.mark.django_db
def test_credentials_in_the_base_url_are_not_shown(client, settings):
    settings.ELEVENLABS_BASE_URL = "https://user:hunter2-password@api.eu.residency.elevenlabs.io"

    response = client.get("/healthz")

    assert response.json()["elevenlabs"]["base_url"] == "https://api.eu.residency.elevenlabs.io"
    assert "hunter2" not in response.content.decode()


@pytest.mark.django_db
@pytest.mark.parametrize("broken", ["ensure_connection", "cursor"])
def test_an_unreachable_database_answers_503_with_the_error_class(client, monkeypatch, broken):
    def fail(*args, **kwargs):
        raise OperationalError("unable to open database file /secret/path")

    monkeypatch.setattr(connection, broken, fail)

    response = client.get("/healthz")

    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "error"
    assert body["database"] == {"ok": False, "vendor": connection.vendor, "error": "OperationalError"}
    text = response.content.decode()
    assert "Traceback" not in text
    assert "/secret/path" not in text
    assert body["elevenlabs"]["mode"] == "configured"


@pytest.mark.django_db
def test_it_is_never_throttled_or_redirected(client, settings):
    settings.SECURE_SSL_REDIRECT = True

    codes = {client.get("/healthz").status_code for _ in range(30)}

    assert codes == {200}
    assert client.get("/api/logs").status_code == 301  # the redirect is on; health is exempt


@pytest.mark.django_db
def test_a_head_request_works_and_a_post_is_refused(client):
    assert client.head("/healthz").status_code == 200
    response = client.post("/healthz", json.dumps({}), content_type="application/json")
    assert response.status_code == 405


def test_start_up_warns_about_each_missing_variable_when_a_key_is_set(settings):
    from django.core.checks import run_checks

    settings.ELEVENLABS_SALES_AGENT_ID = ""
    settings.ELEVENLABS_WEBHOOK_SECRET = ""
    messages = [m for m in run_checks(tags=["elevenlabs"]) if m.id.startswith("elevenlabs.")]
    assert [m.msg for m in messages] == [
        "ELEVENLABS_API_KEY is set but ELEVENLABS_SALES_AGENT_ID is not: sales sessions are refused with a 400.",
        "ELEVENLABS_API_KEY is set but ELEVENLABS_WEBHOOK_SECRET is not: post-call webhooks are refused with a 503.",
    ]


def test_start_up_is_quiet_when_configured_or_simulated(settings):
    from django.core.checks import run_checks

    assert not [m for m in run_checks(tags=["elevenlabs"]) if m.id.startswith("elevenlabs.")]
    settings.ELEVENLABS_API_KEY = ""
    settings.ELEVENLABS_SALES_AGENT_ID = ""
    assert not [m for m in run_checks(tags=["elevenlabs"]) if m.id.startswith("elevenlabs.")]


def test_the_favicon_request_is_answered_without_a_404(client):
    response = client.get("/favicon.ico")
    assert response.status_code == 204
    assert "max-age=86400" in response["Cache-Control"]


def test_the_cache_is_redis_exactly_when_redis_url_is_set(settings):
    """CI's PostgreSQL run sets REDIS_URL: throttles then count across workers and machines."""
    from django.core.cache import cache

    backend = settings.CACHES["default"]["BACKEND"]
    if settings.REDIS_URL:
        assert backend == "django.core.cache.backends.redis.RedisCache"
        cache.set("voiceagent-test-probe", 42, timeout=5)
        assert cache.get("voiceagent-test-probe") == 42  # a real round trip to Redis
    else:
        assert backend == "django.core.cache.backends.locmem.LocMemCache"
