"""Run the benchmark figures: all of them, or the ones named.

    python -m bench.run              (make bench)
    python -m bench.run api          (make bench ONLY=api)

Each figure is a module in bench/ with NAME, DESCRIPTION and run() -> dict; it
prints its own table. Results go to bench-results/<name>.json with the machine
they were measured on. To add a figure, add a module and list it in FIGURES.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from bench.common import REPO_ROOT

FIGURES = [
    "api",
    "logtail",
    "webhook",
    "start_flow",
    "playground_js",
    "simulator_load",
    "vs_reference",
    "conversation_init",
    "analytics",
]
RESULTS_DIR = REPO_ROOT / "bench-results"


def machine() -> dict[str, object]:
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("figures", nargs="*", metavar="figure", help=f"any of: {', '.join(FIGURES)} (default: all)")
    names = parser.parse_args(argv).figures or FIGURES
    unknown = sorted(set(names) - set(FIGURES))
    if unknown:
        parser.error(f"unknown figure {', '.join(unknown)}; choose from {', '.join(FIGURES)}")

    RESULTS_DIR.mkdir(exist_ok=True)
    for name in names:
        module = importlib.import_module(f"bench.{name}")
        print(f"\n### {name}: {module.DESCRIPTION}")
        started = time.perf_counter()
        figures = module.run()
        record = {"figure": name, "machine": machine(), "seconds": round(time.perf_counter() - started, 1), **figures}
        path: Path = RESULTS_DIR / f"{name}.json"
        path.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
        print(f"-> {path.relative_to(REPO_ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
