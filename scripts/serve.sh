#!/usr/bin/env bash
# Production-style start, what `make serve` runs (and tests/test_production_serve.py runs too):
# collect the static files with the production storage, apply migrations, then uvicorn.
#   PORT (8000), WORKERS (the number of CPUs), HOST (0.0.0.0), PY (.venv/bin/python),
#   PUBLIC_BASE_URL (http://localhost:$PORT)
# Settings come from the environment and .env as always; DEBUG off (the default) needs SECRET_KEY.
set -euo pipefail

cd "$(dirname "$0")/.."
PY="${PY:-.venv/bin/python}"
PORT="${PORT:-8000}"
WORKERS="${WORKERS:-$(nproc 2>/dev/null || echo 2)}"
HOST="${HOST:-0.0.0.0}"
# Where clients reach us: the simulated agent's URLs and webhook target. Set it to the public origin.
export PUBLIC_BASE_URL="${PUBLIC_BASE_URL:-http://localhost:$PORT}"

# WhiteNoise serves what this collects (hashed, compressed names); pages name those files, so a
# server started without it answers 500 for any page with a stylesheet.
"$PY" manage.py collectstatic --noinput -v 0
"$PY" manage.py migrate --noinput
# exec: uvicorn becomes this process, so a stop signal reaches its supervisor and its workers.
exec "$PY" -m uvicorn voiceagent.asgi:application --workers "$WORKERS" --host "$HOST" --port "$PORT"
