# Developer and CI entry points. Every target calls the tools in .venv/bin/ directly,
# so nothing needs an activated virtualenv. `make test` is what CI runs (.ci/run).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# Touched after a successful install; depends on pyproject.toml so that changing
# dependencies re-installs on the next target that needs the venv.
STAMP  := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help venv install lint typecheck test test-fast migrate api worker dev bench clean console-screenshot

help:
	@echo "make install    create .venv and install the project with dev tools"
	@echo "make lint       ruff check + ruff format --check"
	@echo "make typecheck  mypy (strict, app/ and workers/)"
	@echo "make test       install, lint, typecheck, then pytest (what CI runs)"
	@echo "make test-fast  pytest without the slow fault tests (-m 'not faults')"
	@echo "make migrate    alembic upgrade head (AGENTRUN_DATABASE_URL)"
	@echo "make api        serve the API on http://127.0.0.1:8000"
	@echo "make worker     run an arq worker"
	@echo "make dev        everything for a first look: databases, demo data, API + worker"
	@echo "make console-screenshot  regenerate docs/console.png (headless Chromium)"
	@echo "make bench      the performance benchmark (bench/README.md; needs PostgreSQL and Redis)"
	@echo "make clean      remove the venv and tool caches"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --disable-pip-version-check -e '.[dev]'
	touch $@

venv install: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

# pytest exits 5 when it collects no tests; make fails on any non-zero status,
# so "no tests" is a failure here, as it should be.
test: $(STAMP) lint typecheck
	$(BIN)/pytest

# The fault tests (tests/faults/, marked `faults`) start, kill and starve real processes:
# most of the suite's time. Leave them to `make test` while iterating.
test-fast: $(STAMP)
	$(BIN)/pytest -m "not faults"

migrate: $(STAMP)
	$(BIN)/alembic upgrade head

api: $(STAMP)
	$(BIN)/uvicorn app.main:app --host 127.0.0.1 --port 8000

worker: $(STAMP)
	$(BIN)/agentrun worker

# One command for a newcomer: PostgreSQL and Redis (local ones, or embedded ones from the
# dev extra's wheels), migrations, demo data, then the API and a worker (app/cli/dev_stack.py).
dev: $(STAMP)
	$(BIN)/agentrun dev

# The README's picture of the console: the execution page the browser test photographs
# (tests/console/; every page at desktop and phone width lands in build/console-screenshots/).
console-screenshot: $(STAMP)
	$(BIN)/pytest -q -p no:cacheprovider tests/console/test_console_browser.py -k finish_live
	mkdir -p docs
	cp build/console-screenshots/execution-desktop.png docs/console.png

bench: $(STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache *.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
