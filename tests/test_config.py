"""A bad setting stops `manage.py` with one sentence naming it; the production profile passes --deploy."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PRODUCTION_SECRET_KEY = "Zq8#vL2!mN5@pR7$tW1^yB4&cF6*hJ9(kD3)sG0-xA_eQ+uI=oP-7kV"


def manage(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run manage.py in a fresh process that sees only the variables given (and never a .env)."""
    base = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": os.environ.get("HOME", str(tmp_path)),
        "VOICEAGENT_READ_DOTENV": "0",
        "DJANGO_SETTINGS_MODULE": "voiceagent.settings",
        "LOG_DIR": str(tmp_path / "logs"),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
    }
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def assert_one_sentence_naming(result: subprocess.CompletedProcess[str], name: str) -> str:
    assert result.returncode != 0
    message = result.stderr.strip()
    assert "Traceback" not in result.stderr + result.stdout
    assert len(message.splitlines()) == 1, message
    assert name in message
    assert message.endswith(".")
    return message


def test_a_debug_value_that_is_not_a_boolean_is_refused(tmp_path):
    result = manage(tmp_path, "check", DEBUG="maybe")

    message = assert_one_sentence_naming(result, "DEBUG")
    assert "'maybe'" in message


@pytest.mark.parametrize("url", ["nonsense", "mysql:/x"])
def test_a_database_url_we_cannot_use_is_refused(tmp_path, url):
    result = manage(tmp_path, "check", DEBUG="true", DATABASE_URL=url)

    assert_one_sentence_naming(result, "DATABASE_URL")


def test_a_database_password_is_not_echoed(tmp_path):
    result = manage(tmp_path, "check", DEBUG="true", DATABASE_URL="mysql://app:hunter2-pw@db.internal/voice")

    message = assert_one_sentence_naming(result, "DATABASE_URL")
    assert "hunter2-pw" not in message


def test_production_without_a_secret_key_is_refused(tmp_path):
    result = manage(tmp_path, "check", DEBUG="false", ALLOWED_HOSTS="voice.example.com")

    assert_one_sentence_naming(result, "SECRET_KEY")


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("ELEVENLABS_BASE_URL", "ftp://api.elevenlabs.io"),
        ("LOG_LEVEL", "verbose"),
        ("SESSION_STALE_SECONDS", "soon"),
        ("SESSION_CREATE_THROTTLE", "lots"),
        ("SESSION_CREATE_THROTTLE", "10/fortnight"),
        ("DATABASE_LOCK_TIMEOUT_SECONDS", "0"),
        ("LOGIN_FAILURE_LIMIT", "0"),
        ("LOGIN_LOCKOUT_MINUTES", "forever"),
    ],
)
def test_other_bad_values_are_refused_by_name(tmp_path, name, value):
    result = manage(tmp_path, "check", DEBUG="true", **{name: value})

    assert_one_sentence_naming(result, name)


def test_a_log_dir_that_cannot_be_created_is_refused_by_name(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")

    result = manage(tmp_path, "check", DEBUG="true", LOG_DIR=str(blocker / "logs"))

    message = assert_one_sentence_naming(result, "LOG_DIR")
    assert "cannot be created" in message


def test_reading_the_settings_makes_no_log_dir(tmp_path):
    """Only setting up logging (django.setup) makes it; importing the settings has no side effect."""
    log_dir = tmp_path / "not-yet"
    env = {**os.environ, "VOICEAGENT_READ_DOTENV": "0", "DEBUG": "true", "LOG_DIR": str(log_dir)}
    code = "import voiceagent.settings as s; print(s.LOG_FILE)"
    imported = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True)

    assert imported.returncode == 0, imported.stderr
    assert not log_dir.exists()
    assert manage(tmp_path, "check", DEBUG="true", LOG_DIR=str(log_dir)).returncode == 0
    assert log_dir.is_dir()


def production_env(**overrides: str) -> dict[str, str]:
    return {
        "DEBUG": "false",
        "SECRET_KEY": PRODUCTION_SECRET_KEY,
        "ALLOWED_HOSTS": "voice.example.com",
        **overrides,
    }


def test_the_production_profile_passes_the_deploy_check_without_warnings(tmp_path):
    result = manage(tmp_path, "check", "--deploy", "--fail-level", "WARNING", **production_env())

    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout
    assert "WARNING" not in result.stdout + result.stderr


def test_the_deploy_check_does_catch_a_weak_production_secret_key(tmp_path):
    # Shows the previous test can fail: the same profile with a short key warns.
    result = manage(tmp_path, "check", "--deploy", "--fail-level", "WARNING", **production_env(SECRET_KEY="short-key"))

    assert result.returncode != 0
    assert "security.W009" in result.stdout + result.stderr


def test_env_local_overrides_env_and_the_process_environment_overrides_both(tmp_path):
    (tmp_path / ".env").write_text("LOG_LEVEL=error\nELEVENLABS_SALES_AGENT_ID=from-env\nCLIENT_LOG_MAX_BYTES=1000\n")
    (tmp_path / ".env.local").write_text("LOG_LEVEL=warning\nELEVENLABS_SALES_AGENT_ID=from-env-local\n")
    result = manage(
        tmp_path,
        "shell",
        "-c",
        "from django.conf import settings as s; "
        "print(s.LOG_LEVEL, s.ELEVENLABS_SALES_AGENT_ID, s.CLIENT_LOG_MAX_BYTES)",
        VOICEAGENT_READ_DOTENV="1",
        VOICEAGENT_DOTENV_DIR=str(tmp_path),
        DEBUG="true",
        ELEVENLABS_SALES_AGENT_ID="from-process",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1].split() == ["WARNING", "from-process", "1000"]


def settings_seen(tmp_path: Path, expression: str, **env: str) -> str:
    result = manage(tmp_path, "shell", "-c", f"from django.conf import settings as s; print({expression})", **env)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()[-1]


def test_one_lock_timeout_bounds_every_database_wait(tmp_path):
    sqlite = settings_seen(tmp_path, 's.DATABASES["default"]["OPTIONS"]["timeout"]', DEBUG="true")
    postgres = settings_seen(
        tmp_path,
        'sorted(s.DATABASES["default"]["OPTIONS"].items()), s.DATABASES["default"]["CONN_MAX_AGE"]',
        DEBUG="true",
        DATABASE_URL="postgres://app@db.internal:5432/voice",
        DATABASE_LOCK_TIMEOUT_SECONDS="7.5",
    )

    assert sqlite == "20.0"
    # Connections are kept per HTTP thread (no pool to wait for): the connect and the locks are the waits.
    assert postgres == (
        "[('connect_timeout', 8), ('options', '-c lock_timeout=7500'), ('prepare_threshold', 5), "
        "('server_side_binding', True)] None"
    )


def test_an_empty_session_create_throttle_turns_it_off(tmp_path):
    rates = 's.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]'
    seen = settings_seen(tmp_path, f'{rates}["session_create"]', DEBUG="true", SESSION_CREATE_THROTTLE="")

    assert seen == "None"


@pytest.mark.parametrize(("prepared", "threshold"), [(None, 5), ("true", 5), ("false", None)])
def test_postgresql_binds_on_the_server_and_prepares_unless_told_not_to(prepared, threshold):
    """Server-side binding always; prepared statements unless DATABASE_PREPARED_STATEMENTS=false (old PgBouncer)."""
    env = {
        **os.environ,
        "VOICEAGENT_READ_DOTENV": "0",
        "DEBUG": "true",
        "DATABASE_URL": "postgres://someone@db.example.com:5432/voice",
    }
    env.pop("DATABASE_PREPARED_STATEMENTS", None)
    if prepared is not None:
        env["DATABASE_PREPARED_STATEMENTS"] = prepared
    code = (
        "import voiceagent.settings as s; o = s.DATABASES['default']['OPTIONS']; "
        "print(o['server_side_binding'], o.get('prepare_threshold'))"
    )
    imported = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True)
    assert imported.returncode == 0, imported.stderr
    assert imported.stdout.split() == ["True", str(threshold)]
