# The two commands a newcomer runs: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
UV     := $(BIN)/uv

.PHONY: demo test install install-dev services lint format clean

$(UV):
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip uv

$(VENV)/.installed: pyproject.toml samples/pyproject.toml | $(UV)
	$(UV) pip install --quiet --python $(BIN)/python -e . -e samples
	touch $@

$(VENV)/.installed-dev: pyproject.toml samples/pyproject.toml | $(UV)
	$(UV) pip install --quiet --python $(BIN)/python -e '.[dev,airflow,celery]' -e samples
	touch $@ $(VENV)/.installed

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

## Runs both foundation feeds on embedded defaults (SQLite central database, local drop folder).
demo: install
	$(BIN)/lidm demo

## Installs dev dependencies, makes sure PostgreSQL, MariaDB + ODBC and OpenSSH are there, runs pytest.
test: install-dev services
	$(BIN)/lint-imports
	$(BIN)/pytest

services:
	bash scripts/services.sh

lint:
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format:
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf $(VENV) .lidm build *.egg-info
