# The README's two commands: `make demo` and `make test`. Each creates its own
# virtualenv (.venv) on first use and reuses it afterwards.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test test-fast lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[test,lint,serve,export,hub,lite]"
	touch $@ $(VENV)/.installed

demo: $(VENV)/.installed
	$(BIN)/skinfood demo

# Lint first, then the fast tier, then the slow one: a broken build fails in seconds, not minutes.
test: $(VENV)/.installed-test lint
	$(BIN)/python -m pytest -m "not slow"
	$(BIN)/python -m pytest -m slow

test-fast: $(VENV)/.installed-test
	$(BIN)/python -m pytest -m "not slow"

lint: $(VENV)/.installed-test
	$(BIN)/ruff check skinfood_cli tests benchmarks tools
	$(BIN)/ruff format --check skinfood_cli tests benchmarks tools
	$(BIN)/mypy

bench: $(VENV)/.installed-test
	$(BIN)/python benchmarks/run.py --quick

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache
