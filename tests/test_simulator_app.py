"""The simulated agent as an app of its own: its model's move, and the backend seam that chooses it."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from django.contrib.auth.models import Permission
from django.contrib.contenttypes.models import ContentType
from django.core import checks
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from devtools.servers import REPO_ROOT
from elevenlabs.backends import ElevenLabsBackend, SimulationUnavailable, backend_for
from elevenlabs.client import ElevenLabsError
from elevenlabs.simulator.backend import SimulatedAgentBackend
from elevenlabs.simulator.models import SimulatedConversation
from sessions.models import VoiceSession

BEFORE_THE_MOVE = [("elevenlabs", "0003_webhook_outcome_malformed")]


# --- The model's move keeps the table and its rows -------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_rows_written_before_the_move_are_read_through_the_simulator_app():
    executor = MigrationExecutor(connection)
    executor.migrate([("simulator", None), *BEFORE_THE_MOVE])  # the database as the previous release left it
    old_apps = executor.loader.project_state(BEFORE_THE_MOVE).apps
    old_model = old_apps.get_model("elevenlabs", "SimulatedConversation")
    old_model.objects.create(
        conversation_id="sim_conv_before_the_move",
        agent_id="sim_support_agent",
        agent_type="support",
        status="done",
        expires_at=timezone.now() + timedelta(minutes=15),
        transcript=[{"role": "agent", "message": "Kept across the move"}],
    )
    # As the previous release had it: the model's content type (and its permissions) under elevenlabs.
    ContentType.objects.filter(app_label="simulator").delete()
    old_type, _ = ContentType.objects.get_or_create(app_label="elevenlabs", model="simulatedconversation")
    permission, _ = Permission.objects.get_or_create(
        content_type=old_type, codename="view_simulatedconversation", defaults={"name": "Can view"}
    )

    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())

    kept = SimulatedConversation.objects.get(pk="sim_conv_before_the_move")
    assert kept.status == "done" and kept.transcript[0]["message"] == "Kept across the move"
    assert SimulatedConversation._meta.db_table == "elevenlabs_simulatedconversation"
    ContentType.objects.clear_cache()
    assert ContentType.objects.get_for_model(SimulatedConversation).pk == old_type.pk  # renamed, not replaced
    assert Permission.objects.get(pk=permission.pk).content_type.app_label == "simulator"


def _manage(*args: str, database: Path, simulator: bool) -> subprocess.CompletedProcess:
    env = {
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "DATABASE_URL": f"sqlite:///{database}",
        "SIMULATOR_ENABLED": "true" if simulator else "false",
        "PATH": "/usr/bin:/bin",
    }
    return subprocess.run(  # noqa: S603
        [sys.executable, "manage.py", *args], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=180
    )


def test_an_existing_database_migrates_and_a_fresh_one_too(tmp_path):
    existing = tmp_path / "existing.sqlite3"
    # The previous release's schema: the elevenlabs app up to 0003, with a row in the simulator's table.
    assert _manage("migrate", "elevenlabs", "0003", database=existing, simulator=True).returncode == 0
    with sqlite3.connect(existing) as db:
        db.execute(
            "INSERT INTO elevenlabs_simulatedconversation (conversation_id, agent_id, agent_type, status, expires_at,"
            " connected_at, ended_at, text_only, http_base, client_data, transcript, termination_reason,"
            " webhook_sent_at, created_at, session_id) VALUES ('sim_conv_old', 'sim_sales_agent', 'sales', 'done',"
            " '2026-12-01 10:00:00', NULL, NULL, 0, '', '{}', '[]', 'done', NULL, '2026-12-01 09:45:00', NULL)"
        )
    migrated = _manage("migrate", "--no-input", database=existing, simulator=True)
    assert migrated.returncode == 0, migrated.stdout + migrated.stderr
    assert "Applying simulator.0001_initial... OK" in migrated.stdout
    read = _manage(
        "shell",
        "-c",
        "from elevenlabs.simulator.models import SimulatedConversation as C; print(C.objects.get().agent_type)",
        database=existing,
        simulator=True,
    )
    assert read.stdout.strip().splitlines()[-1] == "sales", read.stdout + read.stderr

    fresh = tmp_path / "fresh.sqlite3"
    migrated = _manage("migrate", "--no-input", database=fresh, simulator=True)
    assert migrated.returncode == 0, migrated.stdout + migrated.stderr
    assert _manage("makemigrations", "--check", "--dry-run", database=fresh, simulator=True).returncode == 0


# --- The seam --------------------------------------------------------------------------------------


def test_each_session_gets_its_backend():
    assert isinstance(backend_for(simulation=False), ElevenLabsBackend)
    assert isinstance(backend_for(simulation=True), SimulatedAgentBackend)  # named by ELEVENLABS_SIMULATOR_BACKEND


def test_without_the_simulator_asking_for_simulation_is_refused_clearly(settings):
    settings.ELEVENLABS_SIMULATOR_BACKEND = ""
    with pytest.raises(SimulationUnavailable) as refused:
        backend_for(simulation=True)
    assert refused.value.status == 400
    assert refused.value.body()["error"]["variable"] == "SIMULATOR_ENABLED"
    assert isinstance(backend_for(simulation=False), ElevenLabsBackend)


@pytest.mark.django_db
def test_a_simulated_start_without_the_simulator_is_a_400_and_stores_nothing(alice_api, settings):
    settings.ELEVENLABS_SIMULATOR_BACKEND = ""
    response = alice_api.post(
        "/api/voice/sessions", {"agentType": "sales", "customerId": "c1", "simulation": True}, format="json"
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "simulation_unavailable"
    assert not VoiceSession.objects.exists()


@pytest.mark.django_db
def test_the_simulated_backend_answers_an_unknown_conversation_as_elevenlabs_does():
    with pytest.raises(ElevenLabsError) as missing:
        SimulatedAgentBackend().get_conversation("sim_conv_nobody")
    assert (missing.value.status, missing.value.code) == (404, "conversation_not_found")


def test_the_simulated_backend_simulates_the_configured_agent_or_its_own(settings):
    backend = SimulatedAgentBackend()
    assert backend.agent_id("sales") == "agent_sales_test"
    settings.ELEVENLABS_SALES_AGENT_ID = ""
    assert backend.agent_id("sales") == "sim_sales_agent"


@pytest.mark.django_db
def test_no_key_and_no_simulator_is_reported_at_start_up_and_on_health(client, settings):
    settings.ELEVENLABS_API_KEY = ""
    settings.ELEVENLABS_SIMULATOR_BACKEND = ""
    warnings = [message.id for message in checks.run_checks(tags=["elevenlabs"])]
    assert warnings == ["elevenlabs.W010"]
    health = client.get("/healthz").json()
    assert health["elevenlabs"]["mode"] == "misconfigured"
    assert "ELEVENLABS_API_KEY" in health["elevenlabs"]["missing"]
