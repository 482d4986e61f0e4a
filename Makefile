# Every target bootstraps .venv on first use, so a fresh clone needs nothing but Python 3.11+.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint format bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# Alerts on stdout, logs on stderr at WARNING (make run ARGS=-v: at INFO).
run: $(STAMP)
	@MONITOR_LOG_LEVEL=$${MONITOR_LOG_LEVEL:-WARNING} $(BIN)/monitor run $(ARGS)

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check monitor tests
	$(BIN)/ruff format --check monitor tests
	$(BIN)/mypy
	$(BIN)/lint-imports --no-logo --no-cache

format: $(STAMP)
	$(BIN)/ruff check --fix monitor tests
	$(BIN)/ruff format monitor tests

bench: $(STAMP)
	$(BIN)/monitor bench $(or $(BENCH_ARGS),match --rules 100,1000,10000)

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
