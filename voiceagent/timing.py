"""`Server-Timing` on every response: the app's own time and the time spent waiting on ElevenLabs.

Browsers show these in their developer tools, and the start-flow benchmark reads
them to separate our time from the upstream's. Only durations are sent.
"""

from __future__ import annotations

import contextvars
import time

_upstream_seconds: contextvars.ContextVar[float | None] = contextvars.ContextVar("upstream_seconds", default=None)


def record_upstream(seconds: float) -> None:
    """Add one ElevenLabs exchange to the current request's upstream time (no-op outside a request)."""
    spent = _upstream_seconds.get()
    if spent is not None:
        _upstream_seconds.set(spent + seconds)


class ServerTimingMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        token = _upstream_seconds.set(0.0)
        started = time.perf_counter()
        try:
            response = self.get_response(request)
            total_ms = (time.perf_counter() - started) * 1000
            upstream_ms = (_upstream_seconds.get() or 0.0) * 1000
        finally:
            _upstream_seconds.reset(token)
        timings = [f"app;dur={total_ms:.2f}"]
        if upstream_ms:
            timings.append(f"elevenlabs;dur={upstream_ms:.2f}")
        response["Server-Timing"] = ", ".join(timings)
        return response
