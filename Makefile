# Two entry points do everything on a fresh machine (Python 3.11+ on PATH as python3):
#   make run    create the venv, install, migrate a SQLite file, serve on http://127.0.0.1:8000
#   make test   create the venv, install, lint, type-check, and run the suite on SQLite and Postgres
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
PYTEST_WORKERS ?= 2

# The browser tests (tests/web) drive Debian's Chromium; installed here when running as root.
CHROMIUM ?= /usr/bin/chromium

.PHONY: install run test lint typecheck test-sqlite test-postgres browser vendor bench clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

install: $(BIN)/.installed

run: install
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
