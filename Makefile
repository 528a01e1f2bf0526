# The two commands a newcomer runs: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
UV     := $(BIN)/uv
# pytest processes for `make test`: each takes a test module whole (its module fixtures are built once).
TEST_WORKERS ?= 2

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

# datacontract-cli, which tests the contracts `lidm contracts export --format odcs` writes, has a virtual environment
# of its own (as a consuming team installs it, a tool): in ours it would move typer and python-dateutil back and
# bring pandas, ibis and boto3 next to Airflow. Raise the lower bound here; tests/test_consumer_contracts.py runs it.
DATACONTRACT     := $(VENV)/datacontract
DATACONTRACT_CLI := datacontract-cli[postgres]>=1.2.8

$(DATACONTRACT)/.installed: Makefile | $(UV)
	$(UV) venv --quiet --allow-existing --python $(BIN)/python $(DATACONTRACT)
	$(UV) pip install --quiet --python $(DATACONTRACT)/bin/python '$(DATACONTRACT_CLI)'
	touch $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev $(DATACONTRACT)/.installed

## Runs both foundation feeds on embedded defaults (SQLite central database, local drop folder).
demo: install
	$(BIN)/lidm demo

## Installs dev dependencies, makes sure PostgreSQL, MariaDB + ODBC and OpenSSH are there, runs pytest.
test: install-dev services
	$(BIN)/lint-imports
	$(BIN)/pytest -n $(TEST_WORKERS) --dist loadfile

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
