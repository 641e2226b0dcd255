# Two entry points do everything on a fresh machine (Python 3.11+ on PATH as python3):
#   make run    create the venv, install, migrate a SQLite file, serve on http://127.0.0.1:8000
#   make test   create the venv, install, lint, type-check, and run the suite on SQLite and Postgres
#
# Both install the exact versions of the lock files in requirements/ (hash-checked, from PyPI,
# with plain pip): run.txt holds what running needs, dev.txt that plus the test tools; the project
# itself is installed editable on top with --no-deps. `make lock` refreshes both after a change to
# pyproject.toml's dependencies (or to move to newer releases), resolved for CPython 3.11 on Linux
# x86_64 by uv, which it installs into the venv; commit the two files it writes. It keeps every
# pin that still fits; `make lock LOCK_UPGRADE=--upgrade` moves everything to the newest releases.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
PYTEST_WORKERS ?= 2
UV_VERSION ?= 0.13.8
LOCK_UPGRADE ?=
LOCK_FLAGS := --python-version 3.11 --python-platform x86_64-unknown-linux-gnu \
	--generate-hashes --index-url https://pypi.org/simple --no-header --annotation-style line \
	--quiet $(LOCK_UPGRADE)

# The browser tests (tests/web) drive Debian's Chromium; installed here when running as root.
CHROMIUM ?= /usr/bin/chromium

.PHONY: install install-run lock run test lint typecheck test-sqlite test-postgres browser vendor bench clean

$(VENV)/.created:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	touch $@

# What `make run` needs: the run lock only, no test tools.
$(VENV)/.run-installed: requirements/run.txt pyproject.toml $(VENV)/.created
	$(BIN)/python -m pip install --quiet --require-hashes -r requirements/run.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $@

# What `make test` needs: the dev lock (the run lock's versions plus the test tools).
$(VENV)/.dev-installed: requirements/dev.txt pyproject.toml $(VENV)/.created
	$(BIN)/python -m pip install --quiet --require-hashes -r requirements/dev.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $@

install: $(VENV)/.dev-installed

install-run: $(VENV)/.run-installed

# dev.txt is constrained by run.txt, so the tests run the versions that production runs.
lock: $(VENV)/.created
	$(BIN)/python -m pip install --quiet 'uv==$(UV_VERSION)'
	$(BIN)/uv pip compile pyproject.toml $(LOCK_FLAGS) -o requirements/run.txt
	$(BIN)/uv pip compile pyproject.toml --extra dev --constraints requirements/run.txt \
		$(LOCK_FLAGS) -o requirements/dev.txt

run: install-run
	$(BIN)/alembic upgrade head
	$(BIN)/uvicorn --factory app.main:create_app --host $(HOST) --port $(PORT) --proxy-headers --ws-max-size 1048576

lint: install
	$(BIN)/ruff check app tests bench alembic
	$(BIN)/ruff format --check app tests bench alembic

typecheck: install
	$(BIN)/mypy

# Chromium for the browser tests: apt-get as root (CI) when it is missing; otherwise the tests
# skip with a loud message (and fail under CI=true).
browser:
	@if [ ! -x "$(CHROMIUM)" ] && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "Installing chromium for the browser tests"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	fi
	@[ -x "$(CHROMIUM)" ] || echo "!!! No Chromium at $(CHROMIUM): the browser tests (tests/web) will not run"

# The web client's libraries (markdown-it, DOMPurify, highlight.js) and axe-core for the browser
# tests, from the npm registry with `npm pack`; versions and sha256 in each vendor/MANIFEST.json.
vendor: install
	$(BIN)/python scripts/vendor.py

# --dist loadgroup: the browser tests share one worker (one browser, one server); the others
# spread as with the default.
test-sqlite: install browser
	TEST_DATABASE=sqlite $(BIN)/pytest -n $(PYTEST_WORKERS) --dist loadgroup -q

test-postgres: install browser
	TEST_DATABASE=postgres $(BIN)/pytest -n $(PYTEST_WORKERS) --dist loadgroup -q

test: lint typecheck test-sqlite test-postgres

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
