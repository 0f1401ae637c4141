#!/usr/bin/env bash
# Production-style start, what `make serve` runs (and every test and benchmark server runs too):
# collect the static files with the production storage, apply migrations, then granian.
#   PORT (8000), WORKERS (the number of CPUs), HOST (0.0.0.0), PY (.venv/bin/python),
#   PUBLIC_BASE_URL (http://localhost:$PORT), HTTP_THREADS (per worker: 1 on SQLite, 4 on PostgreSQL),
#   ACCESS_LOG (false: a line per request costs the hot path; the proxy in front usually keeps them)
#   --no-setup: serve at once (a test server on a database and static files already prepared)
# Settings come from the environment and .env as always; DEBUG off (the default) needs SECRET_KEY.
#
# Why granian: it parses HTTP and WebSocket in Rust and hands voiceagent.asgi one event loop per worker;
# HTTP then runs Django on a fixed thread pool (see voiceagent/asgi.py), WebSocket runs in Channels.
# Against uvicorn on the same application it served the session API 1.2-1.4x faster (bench/vs_reference.py).
set -euo pipefail

cd "$(dirname "$0")/.."
PY="${PY:-.venv/bin/python}"
PORT="${PORT:-8000}"
WORKERS="${WORKERS:-$(nproc 2>/dev/null || echo 2)}"
HOST="${HOST:-0.0.0.0}"
# Where clients reach us: the simulated agent's URLs and webhook target. Set it to the public origin.
export PUBLIC_BASE_URL="${PUBLIC_BASE_URL:-http://localhost:$PORT}"

if [ "${1:-}" != "--no-setup" ]; then
    # WhiteNoise serves what this collects (hashed, compressed names); pages name those files, so a
    # server started without it answers 500 for any page with a stylesheet.
    "$PY" manage.py collectstatic --noinput -v 0
    "$PY" manage.py migrate --noinput
fi
# Prometheus' multiprocess mode: each worker writes its counts here and a scrape sums them; start empty.
export PROMETHEUS_MULTIPROC_DIR="${PROMETHEUS_MULTIPROC_DIR:-${TMPDIR:-/tmp}/voiceagent-metrics-$PORT}"
"$PY" -m voiceagent.metrics prepare
# exec: granian becomes this process, so a stop signal reaches its supervisor and its workers.
# Its own log lines go through Django's LOGGING once a worker has loaded (settings.py: "_granian").
exec "$PY" -m granian voiceagent.asgi:application --interface asginl \
    --workers "$WORKERS" --host "$HOST" --port "$PORT" \
    --loop uvloop --respawn-failed-workers --workers-kill-timeout 10 --log-level warning \
    $([ "${ACCESS_LOG:-false}" = true ] && echo --access-log)
