"""A real, production-style server process: what the tests and the benchmarks run against.

:func:`make_serve_server` runs what `make serve` runs (scripts/serve.sh: collectstatic, migrate,
granian); :func:`asgi_server` runs the same script's server alone (``--no-setup``), for a database
and static files already prepared. Both listen on a free loopback port, yield the base URL, and
stop the server on the way out: tests and benchmarks meet the production server, never another one.
tests/server.py points them at the pytest-django test database; the benchmarks
(bench/) at a database of their own.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO

import requests

REPO_ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def asgi_server(*, env: Mapping[str, str], workers: int = 2, startup_timeout: float = 60.0) -> Iterator[str]:
    """The production server (scripts/serve.sh --no-setup) with ``workers`` processes and environment ``env``.

    Yields ``http://127.0.0.1:<port>``. Unless ``env`` names one, the server's PUBLIC_BASE_URL is its own
    address, as an operator would set it.
    """
    with _serve_script(["--no-setup"], env=env, workers=workers, startup_timeout=startup_timeout) as base_url:
        yield base_url


@contextlib.contextmanager
def make_serve_server(*, env: Mapping[str, str], workers: int = 2, startup_timeout: float = 180.0) -> Iterator[str]:
    """What `make serve` runs (scripts/serve.sh: collectstatic, migrate, granian); yield its base URL.

    Unless ``env`` names one, the server's PUBLIC_BASE_URL is its own address, as an operator would set it.

    The wait includes collectstatic, which compresses every file (several seconds, more on a busy machine).
    """
    with _serve_script([], env=env, workers=workers, startup_timeout=startup_timeout) as base_url:
        yield base_url


@contextlib.contextmanager
def _serve_script(
    arguments: list[str], *, env: Mapping[str, str], workers: int, startup_timeout: float
) -> Iterator[str]:
    port = free_port()
    env = {**env, "PY": sys.executable, "PORT": str(port), "WORKERS": str(workers), "HOST": "127.0.0.1"}
    command = ["bash", str(REPO_ROOT / "scripts" / "serve.sh"), *arguments]
    with running_server(command, env=env, port=port, startup_timeout=startup_timeout) as base_url:
        yield base_url


@contextlib.contextmanager
def running_server(
    command: list[str], *, env: Mapping[str, str], port: int, startup_timeout: float, cwd: Path = REPO_ROOT
) -> Iterator[str]:
    """Run ``command`` (a server listening on ``port`` that answers /healthz) until the block ends."""
    base_url = f"http://127.0.0.1:{port}"
    env = {"PUBLIC_BASE_URL": base_url, **env}
    # A file rather than a pipe: nobody reads the output while the server runs, and a full pipe would block it.
    with tempfile.TemporaryFile() as output:
        # A process group of its own, so that stopping it reaches every worker (see _stop).
        process = subprocess.Popen(  # noqa: S603
            command, cwd=cwd, env=dict(env), stdout=output, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            _wait_until_answering(process, base_url, output, startup_timeout)
            yield base_url
        finally:
            _stop(process)


def _wait_until_answering(process: subprocess.Popen, base_url: str, output: IO[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with {process.returncode}:\n{_tail(output)}")
        try:
            # Any answer means Django is serving; what /healthz reports is for the tests to judge.
            requests.get(f"{base_url}/healthz", timeout=5)
            return
        except (requests.ConnectionError, requests.Timeout):
            # Not listening yet, or (on a busy machine) a worker's first request, which imports the
            # URLconf and every view, took longer than the wait: ask again until the deadline.
            time.sleep(0.1)
    raise RuntimeError(f"the server did not answer on {base_url} within {timeout:.0f} s:\n{_tail(output)}")


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()  # granian's supervisor stops its workers on SIGTERM
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
    # A worker outlives a supervisor that was killed, or that died: left running, it would spin on
    # its closed pipe for the rest of the session.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)


def _tail(output: IO[bytes], limit: int = 4000) -> str:
    output.seek(0)
    return output.read().decode("utf-8", errors="replace")[-limit:]
