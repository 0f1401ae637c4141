"""Prometheus metrics: the registry plumbing every app's metrics go through.

Each app defines its own counters and histograms (``sessions/metrics.py``, ``elevenlabs/metrics.py``,
...) on prometheus_client's default registry, named ``voiceagent_*``; incrementing one costs a
few microseconds and touches no database. ``GET /metrics`` (voiceagent.views) renders
:func:`exposition_registry`.

Several worker processes: prometheus_client's multiprocess mode. With ``PROMETHEUS_MULTIPROC_DIR``
in the environment *before prometheus_client is first imported*, every process writes its values
to memory-mapped files in that folder, and a scrape (answered by any one worker) sums them all.
The folder must be empty when the workers start, or the counts of an earlier run are added in:
``python -m voiceagent.metrics prepare`` (scripts/serve.sh runs it before uvicorn) empties it.
Without the variable (development, one process) the values live in the process as usual.

Gauges of live state (sessions connecting or active) are not counted up and down per worker: a
collector reads them from the database at scrape time (sessions/metrics.py).
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path

from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

MULTIPROC_DIR_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
# What prometheus_client writes in the folder: <type>_<pid>.db, gauges with their mode
# (gauge_livesum_<pid>.db). Only these are removed: a misconfigured folder (a home directory,
# /tmp) loses nothing else.
_MULTIPROC_FILE = re.compile(r"(?:counter|histogram|summary|gauge_[a-z]+)_\d+\.db")


def multiproc_dir() -> str | None:
    """The multiprocess folder prometheus_client uses in this process, or None (one process)."""
    return os.environ.get(MULTIPROC_DIR_VARIABLE) or None


def prepare_multiproc_dir(path: str | os.PathLike[str]) -> int:
    """Make ``path`` exist and hold none of prometheus_client's files; returns how many were removed.

    Run it before the workers start: files left by an earlier run would be summed into this one's
    counts (and a worker's pid may repeat). Other files in the folder are left alone.
    """
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    removed = 0
    for entry in folder.iterdir():
        if _MULTIPROC_FILE.fullmatch(entry.name) and entry.is_file():
            entry.unlink(missing_ok=True)
            removed += 1
    return removed


class _Collectors:
    """Several collectors as one, registered without describe (so no name is checked twice)."""

    def __init__(self, collectors: Iterable[Collector]):
        self.collectors = tuple(collectors)

    def collect(self) -> Iterator[Metric]:
        for collector in self.collectors:
            yield from collector.collect()


def exposition_registry(*scrape_time: Collector) -> CollectorRegistry:
    """The registry a scrape renders: every process's values, then the ``scrape_time`` collectors.

    Build it once per process and keep it (a registry per request would cost a scrape its speed,
    and MultiProcessCollector already re-reads the folder on each collect). In multiprocess mode
    the values come from the folder's files; otherwise from this process's default registry,
    which also carries prometheus_client's process and platform collectors.
    """
    registry = CollectorRegistry(auto_describe=False)
    folder = multiproc_dir()
    values: Collector = MultiProcessCollector(None, path=folder) if folder else REGISTRY
    registry.register(_Collectors([values, *scrape_time]))
    return registry


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m voiceagent.metrics",
        description="Empty the Prometheus multiprocess folder before the workers start.",
    )
    parser.add_argument("command", choices=["prepare"])
    parser.add_argument("path", nargs="?", help=f"the folder (default: ${MULTIPROC_DIR_VARIABLE}; unset: no-op)")
    arguments = parser.parse_args(argv)
    path = arguments.path or multiproc_dir()
    if not path:
        return 0  # one process: nothing is shared, nothing to prepare
    try:
        prepare_multiproc_dir(path)
    except OSError as exc:
        print(f"{MULTIPROC_DIR_VARIABLE}={path!r} cannot be prepared: {exc.strerror}.", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
