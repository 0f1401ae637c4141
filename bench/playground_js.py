"""The playground in a real browser: JavaScript it loads, and how long Start takes to connect.

Production profile: granian workers, DEBUG=false, collectstatic with WhiteNoise's
compressed manifest storage (into a temp dir), SQLite in a temp dir, simulation mode
(no API key), so the official ElevenLabs client talks to the local simulated agent.
Debian's Chromium (Playwright, headless) logs in through the admin form.

- JavaScript bytes: the script responses of a cold page load (before Start) and the
  ones Start adds (the SDK, imported only then), as transferred (gzip from WhiteNoise)
  and decoded.
- Start→connected: from the Start click to the page showing "connected" (session
  created, credential minted, SDK imported and connected, the event reported and the
  status partial swapped in), text mode, over RUNS runs, each on a freshly loaded page
  with a warm HTTP cache; the first run after a cold load is reported apart. The time
  to "connecting" (POST /api/voice/sessions and the partials) is reported beside it.
"""

from __future__ import annotations

import secrets
import shutil
import tempfile
from pathlib import Path
from typing import Any

from bench.common import REPO_ROOT, manage, percentile, print_table, server_env
from devtools.servers import asgi_server

NAME = "playground_js"
DESCRIPTION = "playground JavaScript bytes before/after Start, and Start→connected p50 in Chromium (text mode)"

RUNS = 10
WORKERS = 2
TIMEOUT_MS = 30_000
USERNAME = "bench-player"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]

# A settings module in the temp dir: the project's settings with static files collected there.
_SETTINGS = """from voiceagent.settings import *  # noqa: F403
STATIC_ROOT = {static_root!r}
"""
_MAKE_USER = """
from django.contrib.auth import get_user_model
# Not staff: the playground's login page (LOGIN_URL) lets every account in.
get_user_model().objects.create_user({username!r}, password={password!r})
"""

# Installed on the page before Start: when the click happened and when each status first showed.
_TIMING = """() => {
  window.benchTimes = {};
  document.getElementById("start-form").addEventListener("submit", () => {
    window.benchTimes.start = performance.now();
  }, { capture: true });
  new MutationObserver(() => {
    const status = document.getElementById("status")?.dataset.status;
    if (status && !(status in window.benchTimes)) window.benchTimes[status] = performance.now();
  }).observe(document.body, { subtree: true, childList: true, attributes: true });
}"""


def _script_bytes(responses: list[Any]) -> dict[str, Any]:
    files = []
    for response in responses:
        sizes = response.request.sizes()
        files.append(
            {
                "url": response.url.split("/static/", 1)[-1],
                "transferred": sizes["responseBodySize"],
                "decoded": len(response.body()),
            }
        )
    return {
        "requests": len(files),
        "bytes_transferred": sum(f["transferred"] for f in files),
        "bytes_decoded": sum(f["decoded"] for f in files),
        "files": files,
    }


def _kib(size: int) -> float:
    return round(size / 1024, 1)


def _log_in(page, base_url: str, password: str) -> None:
    page.goto(f"{base_url}/playground/")
    page.fill("#id_username", USERNAME)
    page.fill("#id_password", password)
    page.click("#login-form button[type=submit]")
    page.wait_for_url(f"{base_url}/playground/")


def _start_and_end(page) -> tuple[float, float]:
    """Start a text conversation with the support agent and end it.

    Returns ms from the click to the page showing "connecting" (our start flow and the
    partials) and to it showing "connected" (plus the SDK's import and connection).
    """
    page.evaluate(_TIMING)
    page.check("input[name=agentType][value=support]")
    page.check("input[name=mode][value=text]")
    page.click("#start-button")
    page.locator("#status[data-status=listening]").wait_for(timeout=TIMEOUT_MS)
    times = page.evaluate("window.benchTimes")
    page.click("#end-button")
    page.locator("#status[data-session-status=ended]").wait_for(timeout=TIMEOUT_MS)
    if "connecting" not in times or "connected" not in times:
        raise RuntimeError(f"the page skipped a status: {times}")
    return times["connecting"] - times["start"], times["connected"] - times["start"]


def _stats(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {"p50": round(percentile(ordered, 0.5), 1), "min": round(ordered[0], 1), "max": round(ordered[-1], 1)}


def measure(base_url: str, password: str, runs: int) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=shutil.which("chromium"), args=CHROMIUM_ARGS)
        try:
            login = browser.new_context()
            _log_in(login.new_page(), base_url, password)
            # Logged in, with an empty HTTP cache: the first playground load is a cold one.
            context = browser.new_context(storage_state=login.storage_state())
            login.close()
            page = context.new_page()
            scripts: list[Any] = []
            page.on("response", lambda r: r.request.resource_type == "script" and scripts.append(r))
            page.goto(f"{base_url}/playground/", wait_until="load")
            before = _script_bytes(scripts)
            scripts.clear()
            cold = _start_and_end(page)
            after = _script_bytes(scripts)

            connecting, connected = [], []
            for _ in range(runs):
                page.reload(wait_until="load")
                shown_connecting, shown_connected = _start_and_end(page)
                connecting.append(shown_connecting)
                connected.append(shown_connected)
        finally:
            browser.close()
    return {
        "js_before_start": before,
        "js_added_by_start": after,
        "start_to_connected_ms": {"runs": runs, **_stats(connected), "cold_first_run": round(cold[1], 1)},
        "start_to_connecting_shown_ms": {"runs": runs, **_stats(connecting), "cold_first_run": round(cold[0], 1)},
    }


def run(runs: int = RUNS) -> dict[str, Any]:
    if not shutil.which("chromium"):
        reason = "Debian's Chromium is not installed (apt-get install -y chromium)"
        print(f"skipped: {reason}")
        return {"skipped": reason}
    if not (REPO_ROOT / "node_modules" / "@elevenlabs" / "client").is_dir():
        raise RuntimeError("node_modules is missing: run `npm ci` (make bench does) before this figure")

    with tempfile.TemporaryDirectory(prefix="voiceagent-bench-playground-") as tmp:
        root = Path(tmp)
        (root / "logs").mkdir()
        (root / "bench_playground_settings.py").write_text(_SETTINGS.format(static_root=str(root / "static")))
        env = server_env(f"sqlite:///{root / 'db.sqlite3'}", str(root / "logs"))
        env.update(DJANGO_SETTINGS_MODULE="bench_playground_settings", PYTHONPATH=f"{root}:{REPO_ROOT}")
        password = secrets.token_urlsafe(16)
        manage(env, "migrate", "--noinput", "-v", "0")
        manage(env, "collectstatic", "--noinput", "-v", "0")
        manage(env, "shell", "-c", _MAKE_USER.format(username=USERNAME, password=password))
        with asgi_server(env=env, workers=WORKERS) as base_url:
            figures = measure(base_url, password, runs)

    before, after = figures["js_before_start"], figures["js_added_by_start"]
    print(f"\nChromium, {WORKERS} granian workers, simulated agent, text mode")
    print_table(
        ["JavaScript", "files", "KiB transferred", "KiB decoded"],
        [
            (label, part["requests"], _kib(part["bytes_transferred"]), _kib(part["bytes_decoded"]))
            for label, part in (("before Start", before), ("added by Start (SDK)", after))
        ],
    )
    print()
    print_table(
        ["text mode, from the Start click to", "runs", "p50 ms", "min ms", "max ms", "cold first run ms"],
        [
            (label, t["runs"], t["p50"], t["min"], t["max"], t["cold_first_run"])
            for label, t in (
                ("page shows connecting", figures["start_to_connecting_shown_ms"]),
                ("page shows connected", figures["start_to_connected_ms"]),
            )
        ],
    )
    return figures


if __name__ == "__main__":
    run()
