"""Browser tests: Debian's Chromium, driven by pytest-playwright, against a real uvicorn server.

Playwright's own browser downloads are never used (nothing may be fetched from
outside): the ``browser_type_launch_args`` fixture points it at /usr/bin/chromium.
Without Chromium these tests skip with the reason in the summary, except under
CI=true, where a missing browser is a failure.

The server is a separate process (tests/server.py) on the pytest-django test
database, so the tests commit what they write (``django_db(transaction=True)``).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import pytest

from devtools.servers import asgi_server
from tests.elevenlabs_fakes import LoopbackElevenLabs
from tests.server import env_for_test_database

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
MISSING_CHROMIUM = (
    "BROWSER TESTS NOT RUN: Debian's Chromium is not installed (apt-get install -y chromium); "
    "never `playwright install`"
)
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    # A microphone without a person: Chromium grants the permission and plays a recording
    # (--use-file-for-fake-audio-capture, added by browser_type_launch_args).
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
]
PASSWORD = "playground-pass-123"


@pytest.hookimpl(trylast=True)  # after pytest-django has ordered the tests by database use
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run the browser tests last.

    Playwright's sync API keeps its event loop running in the main thread until the
    session ends (pytest-playwright's fixtures are session-scoped), so any later test
    that calls asyncio.run() would fail with "cannot be called from a running event loop".
    """
    items.sort(key=lambda item: item.get_closest_marker("browser") is not None)


def pytest_report_header(config) -> str:
    return f"browser tests: {'chromium at ' + CHROMIUM if CHROMIUM else MISSING_CHROMIUM}"


def require_chromium() -> None:
    if CHROMIUM:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(MISSING_CHROMIUM)
    pytest.skip(MISSING_CHROMIUM)


@pytest.fixture(scope="session", autouse=True)
def _chromium_present() -> None:
    require_chromium()


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args, tmp_path_factory):
    require_chromium()
    microphone = write_microphone_recording(tmp_path_factory.mktemp("microphone") / "speech.wav")
    args = [*CHROMIUM_ARGS, f"--use-file-for-fake-audio-capture={microphone}"]
    return {**browser_type_launch_args, "executable_path": CHROMIUM, "args": args}


def write_microphone_recording(path, *, quiet_secs: float = 10.0, speech_secs: float = 1.0) -> str:
    """What the fake microphone hears: silence while the greeting plays, then a short utterance.

    Chromium's default fake device beeps from the first second, which made the simulated agent
    hear an interruption at a random point of its greeting; a recording makes the order fixed.
    """
    import math
    import struct
    import wave

    rate = 16000
    quiet = b"\x00\x00" * int(rate * quiet_secs)
    speech = b"".join(
        struct.pack("<h", int(8000 * math.sin(2 * math.pi * 220 * n / rate))) for n in range(int(rate * speech_secs))
    )
    with wave.open(str(path), "wb") as recording:
        recording.setnchannels(1)
        recording.setsampwidth(2)
        recording.setframerate(rate)
        recording.writeframes(quiet + speech + quiet)
    return str(path)


# --- Servers -----------------------------------------------------------------------------------------


def server_env(**overrides: str) -> dict[str, str]:
    env = env_for_test_database()
    env["DJANGO_SETTINGS_MODULE"] = "tests.browser.settings"
    env.update(overrides)
    return env


@pytest.fixture(scope="session")
def simulated_server(django_db_setup) -> Iterator[str]:
    """uvicorn in simulation mode: no API key (tests/settings.py only sets one if the variable is unset)."""
    with asgi_server(env=server_env(ELEVENLABS_API_KEY="")) as base_url:
        yield base_url


class FakeUpstream(LoopbackElevenLabs):
    """A local stand-in for api.elevenlabs.io that refuses every request with one answer."""

    def __init__(self, status: int, body: dict) -> None:
        super().__init__()
        self.status = status
        self.body = body

    def answer(self, path: str) -> tuple[int, dict]:
        return self.status, self.body


@contextlib.contextmanager
def fake_upstream(status: int, body: dict) -> Iterator[tuple[str, FakeUpstream]]:
    fake = FakeUpstream(status, body)
    with fake.serving() as url:
        yield url, fake


INVALID_API_KEY = {"detail": {"status": "invalid_api_key", "message": "Invalid API key"}}
UPSTREAM_API_KEY = "xi-browser-test-key-0123456789abcdef"


@pytest.fixture(scope="module")
def invalid_key_server(django_db_setup) -> Iterator[tuple[str, FakeUpstream]]:
    """uvicorn in real mode whose ElevenLabs answers 401 invalid_api_key to everything."""
    with fake_upstream(401, INVALID_API_KEY) as (upstream_url, fake):
        env = server_env(ELEVENLABS_API_KEY=UPSTREAM_API_KEY, ELEVENLABS_BASE_URL=upstream_url)
        with asgi_server(env=env, workers=1) as base_url:
            yield base_url, fake


# --- What the page did -------------------------------------------------------------------------------


@dataclass
class PageWatch:
    """Every request, WebSocket and console message of a page, to check afterwards."""

    base_url: str
    requests: list[tuple[str, str]] = field(default_factory=list)  # (resource type, url)
    websockets: list[str] = field(default_factory=list)
    console: list[tuple[str, str]] = field(default_factory=list)  # (type, text)
    page_errors: list[str] = field(default_factory=list)

    def off_host(self) -> list[str]:
        host = urlsplit(self.base_url).netloc
        urls = [url for _, url in self.requests] + self.websockets
        return [url for url in urls if not url.startswith("data:") and urlsplit(url).netloc != host]

    def csp_violations(self) -> list[str]:
        return [text for _, text in self.console if re.search(r"Content[ -]Security[ -]Policy", text, re.I)]

    def errors(self) -> list[str]:
        return [text for kind, text in self.console if kind == "error"] + self.page_errors

    def scripts(self) -> list[str]:
        return [url for kind, url in self.requests if kind == "script"]


def watch(page, base_url: str) -> PageWatch:
    seen = PageWatch(base_url=base_url)
    page.on("request", lambda request: seen.requests.append((request.resource_type, request.url)))
    page.on("websocket", lambda socket: seen.websockets.append(socket.url))
    page.on("console", lambda message: seen.console.append((message.type, message.text)))
    page.on("pageerror", lambda error: seen.page_errors.append(str(error)))
    return seen


def log_in(page, base_url: str, user, password: str = PASSWORD) -> None:
    """Through the login page the playground sends a visitor to, as a person would; lands on the playground."""
    page.goto(f"{base_url}/playground/")
    page.wait_for_url(f"{base_url}/accounts/login/?next=/playground/")
    page.fill("#id_username", user.get_username())
    page.fill("#id_password", password)
    page.click("#login-form button[type=submit]")
    page.wait_for_url(f"{base_url}/playground/")


# Records every status the page shows, so a test can check the order (a poll could skip one).
RECORD_STATUSES = """() => {
  window.seenStatuses = [document.getElementById("status").dataset.status];
  new MutationObserver(() => {
    const status = document.getElementById("status");
    if (status && window.seenStatuses.at(-1) !== status.dataset.status) window.seenStatuses.push(status.dataset.status);
  }).observe(document.body, { subtree: true, childList: true, attributes: true });
}"""
