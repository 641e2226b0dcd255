# Two entry points do everything on a fresh machine (Python 3.11+ on PATH as python3):
#   make run    create the venv, install, migrate a SQLite file, serve on http://127.0.0.1:8000
#   make test   create the venv, install, lint, type-check, and run the suite on SQLite and Postgres
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
PYTEST_WORKERS ?= 2

.PHONY: install run test lint typecheck test-sqlite test-postgres bench clean

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

test-sqlite: install
	TEST_DATABASE=sqlite $(BIN)/pytest -n $(PYTEST_WORKERS) -q

test-postgres: install
	TEST_DATABASE=postgres $(BIN)/pytest -n $(PYTEST_WORKERS) -q

test: lint typecheck test-sqlite test-postgres

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
