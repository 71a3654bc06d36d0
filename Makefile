# Thin wrappers over the commands documented in README.md.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
DSPY_VENV ?= .venv-dspy

.PHONY: install test test-fast bench plugins clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

install: $(VENV)/.installed

# The full suite CI runs (unit + contract + integration tests that can run here).
test: $(VENV)/.installed
	$(PY) -m pytest

# Unit tests only (seconds).
test-fast: $(VENV)/.installed
	$(PY) -m pytest tests/unit -q

$(DSPY_VENV)/.installed:
	$(PYTHON) -m venv $(DSPY_VENV)
	$(DSPY_VENV)/bin/python -m pip install -q dspy==3.4.1
	touch $@

# Framework overhead, plait vs DSPy 3.4.1 side by side (writes benchmarks/results/).
bench: $(VENV)/.installed $(DSPY_VENV)/.installed
	$(PY) benchmarks/overhead.py --dspy-python $(DSPY_VENV)/bin/python

plugins: $(VENV)/.installed
	$(VENV)/bin/plait plugins

clean:
	rm -rf $(VENV) $(DSPY_VENV) build dist .pytest_cache .hypothesis
