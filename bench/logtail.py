"""GET /api/logs?tail=N reads from the end: its cost must not grow with the log file.

Times ``voiceagent.logtail.tail_lines(path, 200)`` on a 1 MB and a 1 GB file
(target: the 1 GB median at most 2x the 1 MB median), beside reading the whole
file into a deque, which is what the cost would be without it. The files are
freshly written, so both are read from the page cache.
"""

from __future__ import annotations

import collections
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import print_table
from voiceagent.logtail import tail_lines

NAME = "logtail"
DESCRIPTION = "tail_lines(path, 200) on a 1 MB and a 1 GB log file"

LINES = 200
REPETITIONS = 500
WHOLE_FILE_REPETITIONS = {"1 MB": 50, "1 GB": 3}
SIZES = {"1 MB": 1024**2, "1 GB": 1024**3}
TARGET_RATIO = 2.0


def log_chunk(size: int) -> bytes:
    """About ``size`` bytes of lines shaped like the service's own log lines."""
    lines = []
    total = i = 0
    while total < size:
        line = (
            f"2026-12-01 13:{i // 60 % 60:02d}:{i % 60:02d},{i % 1000:03d} INFO voiceagent.sessions "
            f"session={i:08x}-1f2e-4d3c-8b4a-{i * 7919 % 10**12:012d} session created -> ended (ended)\n"
        ).encode()
        lines.append(line)
        total += len(line)
        i += 1
    return b"".join(lines)


def write_log(path: Path, size: int) -> None:
    chunk = log_chunk(min(size, 4 * 1024**2))
    with path.open("wb") as handle:
        written = 0
        while written < size:
            part = chunk[: size - written]
            handle.write(part)
            written += len(part)
    # End on a line break, as a log file does.
    with path.open("r+b") as handle:
        handle.seek(-1, 2)
        handle.write(b"\n")


def time_calls(call, repetitions: int) -> list[float]:
    timings = []
    for _ in range(repetitions):
        started = time.perf_counter()
        call()
        timings.append(time.perf_counter() - started)
    return timings


def run() -> dict[str, Any]:
    figures: dict[str, Any] = {"lines": LINES, "repetitions": REPETITIONS, "files": {}}
    with tempfile.TemporaryDirectory(prefix="voiceagent-bench-logtail-") as tmp:
        for label, size in SIZES.items():
            path = Path(tmp) / f"{label.replace(' ', '')}.log"
            write_log(path, size)
            tail = time_calls(lambda path=path: tail_lines(path, LINES), REPETITIONS)
            assert len(tail_lines(path, LINES)) == LINES

            def whole_file(path: Path = path) -> None:
                with path.open("rb") as handle:
                    collections.deque(handle, maxlen=LINES)

            naive = time_calls(whole_file, WHOLE_FILE_REPETITIONS[label])
            figures["files"][label] = {
                "bytes": path.stat().st_size,
                "tail_median_ms": round(statistics.median(tail) * 1000, 4),
                "whole_file_median_ms": round(statistics.median(naive) * 1000, 2),
            }
            path.unlink()
    small, large = figures["files"]["1 MB"], figures["files"]["1 GB"]
    figures["ratio_1gb_to_1mb"] = round(large["tail_median_ms"] / small["tail_median_ms"], 2)
    figures["target_ratio"] = TARGET_RATIO
    figures["meets_target"] = figures["ratio_1gb_to_1mb"] <= TARGET_RATIO

    print(f"\ntail_lines(path, {LINES}), median of {REPETITIONS} calls")
    print_table(
        ["file", "tail_lines ms", "read whole file ms"],
        [[label, f["tail_median_ms"], f["whole_file_median_ms"]] for label, f in figures["files"].items()],
    )
    verdict = "meets" if figures["meets_target"] else "MISSES"
    print(f"1 GB / 1 MB = {figures['ratio_1gb_to_1mb']}x ({verdict} the target of {TARGET_RATIO}x)")
    return figures
