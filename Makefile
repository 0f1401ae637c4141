# Every target sets up what it needs first (scripts/bootstrap.sh), so a fresh clone needs nothing else.
PORT ?= 8000
WORKERS ?= $(shell nproc 2>/dev/null || echo 2)
# `make test ARGS="-k end -x"`, `make bench ONLY=api`
ARGS ?=
ONLY ?=
PY := .venv/bin/python

.PHONY: help run test serve lint bench setup

help:
	@echo "make run     set up (venv, .env, database, dev admin) and serve on :$(PORT) with runserver (DEBUG)"
	@echo "make test    set up and run the whole test suite (DATABASE_URL=postgres://... for PostgreSQL)"
	@echo "make serve   production-style (scripts/serve.sh): collectstatic, migrate, uvicorn with $(WORKERS) workers on :$(PORT)"
	@echo "make lint    ruff check and ruff format --check"
	@echo "make bench   benchmarks (ONLY=api, ONLY=vs_reference, ...), results in bench-results/"

setup:
	@PORT=$(PORT) bash scripts/bootstrap.sh dev

run: setup
	$(PY) manage.py runserver 0.0.0.0:$(PORT)

test:
	@bash scripts/bootstrap.sh
	$(PY) -m pytest $(ARGS)

serve:
	@bash scripts/bootstrap.sh
	PORT=$(PORT) WORKERS=$(WORKERS) PY=$(PY) bash scripts/serve.sh

lint:
	@bash scripts/bootstrap.sh
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

bench:
	@bash scripts/bootstrap.sh
	$(PY) -m bench.run $(ONLY)
