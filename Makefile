# The two commands a new user needs are `make run` and `make test` (see README).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# Tests talk to real PostgreSQL and Redis on this machine unless told otherwise.
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/governance
TEST_BROKER_URL ?= redis://127.0.0.1:6379/15
TEST_CACHE_URL ?= redis://127.0.0.1:6379/14

.PHONY: run test install lint typecheck check-migrations bench bench-stream bench-load bench-partitioned clean

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $@

install: $(VENV)/.installed

## Run the service with its demo on the embedded default (SQLite, filesystem broker).
run: install
	DEBUG=$${DEBUG:-1} $(PY) manage.py rundemo

## Run the whole test suite against PostgreSQL, Redis and a real Celery worker.
test: install
	DATABASE_URL=$${DATABASE_URL:-$(TEST_DATABASE_URL)} CELERY_BROKER_URL=$${CELERY_BROKER_URL:-$(TEST_BROKER_URL)} \
	CACHE_URL=$${CACHE_URL:-$(TEST_CACHE_URL)} SECRET_KEY=$${SECRET_KEY:-test-secret-key-not-for-production} $(PY) -m pytest $(PYTEST_ARGS)

lint: install
	$(VENV)/bin/ruff check .

typecheck: install
	DEBUG=1 $(VENV)/bin/mypy governance audits reports

check-migrations: install
	DEBUG=1 $(PY) manage.py makemigrations --check --dry-run

## The audit against Evidently and aif360 on the same generated data (not a test).
bench: install
	$(PY) benchmarks/audit_speed.py $(BENCH_ARGS)

## The production stream: batch ingest and a window with outcomes joined (not a test).
bench-stream: install
	$(PY) benchmarks/stream_window.py $(BENCH_ARGS)

## The API under load: gunicorn with the production settings, driven by wrk (not a test).
bench-load: install
	$(PY) benchmarks/load.py $(BENCH_ARGS)

bench-partitioned: install
	$(PY) benchmarks/partitioned_audit.py $(BENCH_ARGS)

clean:

	rm -rf $(VENV) var
