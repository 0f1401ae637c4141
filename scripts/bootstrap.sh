#!/usr/bin/env bash
# Sets up a checkout so that the service and its tests can run. Used by every make target.
#
#   scripts/bootstrap.sh        the virtualenv (.venv) with requirements-dev.txt, and node_modules
#   scripts/bootstrap.sh dev    also .env (DEBUG on, a fresh SECRET_KEY), migrations, a dev admin account
#
# Idempotent and quick on a second run: the venv is rebuilt only when missing or made by an
# unsuitable Python, and packages are reinstalled only when requirements*.txt changed.
set -euo pipefail

cd "$(dirname "$0")/.."
MODE="${1:-venv}"
VENV=.venv
STAMP="$VENV/.requirements.sha256"
NODE_STAMP=node_modules/.package-lock.sha256

say() { printf '==> %s\n' "$*"; }
die() {
    printf 'bootstrap: %s\n' "$*" >&2
    exit 1
}

# Django 6 needs Python 3.12 or newer; pip on an older Python silently installs Django 5.
python_ok() {
    [ -n "$1" ] && "$1" -c 'import sys; sys.exit(sys.version_info < (3, 12))' >/dev/null 2>&1
}

find_python() {
    local candidate version
    # pyenv shims exist for every installed version but fail outside a matching
    # .python-version, so each candidate is run, not just looked up.
    for candidate in "${PYTHON:-}" python3.13 python3.12 python3; do
        python_ok "$candidate" && { command -v "$candidate"; return; }
    done
    command -v pyenv >/dev/null 2>&1 || return 1
    for version in "$(cat .python-version 2>/dev/null || true)" 3.13 3.12; do
        [ -n "$version" ] || continue
        for candidate in "$(pyenv prefix "$version" 2>/dev/null | head -n 1)/bin/python3" \
            "$(PYENV_VERSION="$version" pyenv which python3 2>/dev/null || true)"; do
            python_ok "$candidate" && { echo "$candidate"; return; }
        done
    done
    for candidate in "$(pyenv root)"/versions/3.1[23]*/bin/python3; do
        python_ok "$candidate" && { echo "$candidate"; return; }
    done
    return 1
}

ensure_venv() {
    if [ -x "$VENV/bin/python" ] && ! python_ok "$VENV/bin/python"; then
        say "$VENV was made by an unsuitable Python; rebuilding it"
        rm -rf "$VENV"
    fi
    if [ ! -x "$VENV/bin/python" ]; then
        local python
        python="$(find_python)" || die "no Python 3.12 or newer found (tried \$PYTHON, python3.13, python3.12, python3, pyenv). Install one, or run: PYTHON=/path/to/python3.12 make run"
        say "creating $VENV with $python ($("$python" --version 2>&1))"
        rm -rf "$VENV"
        "$python" -m venv "$VENV"
    fi
    local wanted
    wanted="$(cat requirements.txt requirements-dev.txt | sha256sum | cut -d' ' -f1) $("$VENV/bin/python" --version 2>&1)"
    if [ "$(cat "$STAMP" 2>/dev/null || true)" != "$wanted" ]; then
        say "installing requirements-dev.txt into $VENV"
        "$VENV/bin/python" -m pip install --disable-pip-version-check -q --upgrade pip
        "$VENV/bin/python" -m pip install --disable-pip-version-check -q -r requirements-dev.txt
        echo "$wanted" >"$STAMP"
    fi
}

ensure_node_modules() {
    [ -f package.json ] || return 0
    command -v npm >/dev/null 2>&1 || die "package.json needs npm (Node.js 20 or newer); install it, e.g. apt-get install -y npm"
    local wanted
    wanted="$(cat package.json package-lock.json 2>/dev/null | sha256sum | cut -d' ' -f1)"
    if [ ! -d node_modules ] || [ "$(cat "$NODE_STAMP" 2>/dev/null || true)" != "$wanted" ]; then
        if [ -f package-lock.json ]; then
            say "npm ci"
            npm ci --no-audit --no-fund
        else
            say "npm install (no package-lock.json yet)"
            npm install --no-audit --no-fund
        fi
        echo "$wanted" >"$NODE_STAMP"
    fi
}

ensure_venv
ensure_node_modules

case "$MODE" in
venv) ;;
dev)
    "$VENV/bin/python" scripts/dev_setup.py write-env
    "$VENV/bin/python" manage.py migrate --noinput -v 0
    "$VENV/bin/python" scripts/dev_setup.py ensure-admin
    ;;
*) die "unknown mode '$MODE' (use: venv, dev)" ;;
esac
