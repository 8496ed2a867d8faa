# The two commands of the README's Quickstart: `make run` and `make test`.
# Both create .venv on first use (any Python >= 3.11; see scripts/make_venv.py)
# and reinstall when pyproject.toml changes.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: run test quick test-sqlite check clean

run: $(VENV)/.installed-run  ## install, then start web + worker + Redis locally
	$(BIN)/optgate dev

test: $(VENV)/.installed-dev  ## install, then run the test suite
	$(BIN)/pytest

# The fast loop while you work: the domain and the provider adapters, on SQLite, no
# servers and no processes started (about a minute on 2 cores).
QUICK := tests/keywords tests/sending tests/providers tests/consent tests/test_addresses.py \
	tests/test_settings.py tests/test_layers.py

quick: $(VENV)/.installed-dev  ## the fast loop: domain and adapter tests
	$(BIN)/pytest -q -m "not slow and not postgres and not redis" $(QUICK)

test-sqlite: $(VENV)/.installed-dev  ## everything but PostgreSQL and tests/processes (a few minutes)
	$(BIN)/pytest -q -m "not slow and not postgres" --ignore=tests/processes

check: $(VENV)/.installed-dev  ## lint, format and types (CI runs this after `make test`)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

$(BIN)/python:
	$(PYTHON) scripts/make_venv.py $(VENV)

$(VENV)/.installed-run: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[embedded]'
	@touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $@ $(VENV)/.installed-run

clean:  ## remove the environment and caches (not var/, which holds your local data)
	rm -rf $(VENV) *.egg-info .pytest_cache .mypy_cache .ruff_cache .hypothesis
