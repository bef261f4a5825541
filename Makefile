# Developer and CI entry points. Every target calls the tools in .venv/bin/ directly,
# so nothing needs an activated virtualenv. `make test` is what CI runs (.ci/run).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
UV     := $(BIN)/uv
# Touched after a successful install; depends on the lock so that changing dependencies
# re-installs on the next target that needs the venv.
STAMP  := $(VENV)/.installed
# What `make install` puts in .venv: the project (editable) with these extras, at the versions
# uv.lock names and no others (--frozen: the lock is read, never re-resolved). Bytecode compiled
# at install, as pip does: with PYTHONDONTWRITEBYTECODE set (CI, containers) nothing else
# writes it, and every process would compile each module it imports afresh (twice the CPU of
# an API or worker start-up).
SYNC   := sync --frozen --compile-bytecode --extra dev --extra docs
# uv's own version is the lock's: read from uv.lock, so that `make upgrade` moves it too.
UV_VERSION = $(shell $(BIN)/python -c 'import tomllib; print(next(p["version"] for p in tomllib.load(open("uv.lock", "rb"))["package"] if p["name"] == "uv"))')

.DEFAULT_GOAL := help
.PHONY: help venv install lock-check upgrade docs lint typecheck test test-fast test-examples migrate api worker dev bench clean console-screenshot

help:
	@echo "make install    create .venv and install the project with dev tools, from uv.lock"
	@echo "make lock-check fail if uv.lock does not match pyproject.toml (run: .venv/bin/uv lock)"
	@echo "make upgrade    move uv.lock to the newest versions pyproject.toml allows, then make test"
	@echo "make lint       ruff check + ruff format --check + lint-imports (the layers)"
	@echo "make typecheck  mypy (strict, app/ and workers/)"
	@echo "make docs       build the documentation site (mkdocs.yml, docs/) into build/site/, strict"
	@echo "make test       install, lock check, lint, typecheck, docs, then pytest (what CI runs)"
	@echo "make test-fast  pytest without the slow fault tests (-m 'not faults')"
	@echo "make test-examples  the example plugin's own tests (examples/ticket-triage)"
	@echo "make migrate    alembic upgrade head (AGENTRUN_DATABASE_URL)"
	@echo "make api        serve the API on http://127.0.0.1:8000"
	@echo "make worker     run an arq worker"
	@echo "make dev        everything for a first look: databases, demo data, API + worker"
	@echo "make console-screenshot  regenerate docs/console.png (headless Chromium)"
	@echo "make bench      the performance benchmark (bench/README.md; needs PostgreSQL and Redis)"
	@echo "make clean      remove the venv and tool caches"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# uv from the package index, once; `uv sync` then keeps it at the lock's version.
$(UV): | $(BIN)/python
	$(BIN)/python -m pip install --disable-pip-version-check 'uv==$(UV_VERSION)'

# The environment is the lock, exactly: uv sync also removes what the lock does not name.
$(STAMP): pyproject.toml uv.lock | $(UV)
	$(UV) $(SYNC)
	touch $@

venv install: $(STAMP)

# A pyproject.toml changed without `uv lock` fails here (and so CI): the lock is the install.
lock-check: | $(UV)
	$(UV) lock --check

# The newest versions pyproject.toml's bounds allow, installed, then the whole check.
# Review `git diff uv.lock` and commit it with the fixes the suite asks for.
upgrade: | $(UV)
	$(UV) lock --upgrade
	$(UV) $(SYNC)
	touch $(STAMP)
	$(MAKE) test

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

typecheck: $(STAMP)
	$(BIN)/mypy

# --strict (also in mkdocs.yml): a broken link or anchor, or a page left out of the nav, fails.
# Offline: Material's own search, no web fonts. The variable quiets a banner about MkDocs 2.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

# pytest exits 5 when it collects no tests; make fails on any non-zero status,
# so "no tests" is a failure here, as it should be.
test: $(STAMP) lock-check lint typecheck docs
	$(BIN)/pytest
	$(MAKE) test-examples

# The example plugin, installed beside the service only while its own tests run: installed, it
# adds a fourth agent type to every listing and its schemas to the OpenAPI document, which the
# service's suite pins. Uninstalled after, pass or fail. --no-deps: its one dependency is the
# service itself, already here (uv sync would remove it anyway: the lock does not name it).
EXAMPLE := examples/ticket-triage
test-examples: $(STAMP)
	$(UV) pip install -q -e $(EXAMPLE) --no-deps
	cd $(EXAMPLE) && ../../$(BIN)/pytest; status=$$?; \
		../../$(UV) pip uninstall -q agentrun-ticket-triage; exit $$status

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
