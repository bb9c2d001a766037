# Everything a fresh machine (Python 3.11, nothing else) needs: each target builds its own venv.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
# Empty = the newest Airflow PyPI has; `make test-airflow2` pins the 2.11 line in its own venv.
AIRFLOW_VERSION ?=
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=
# The extras installed with the provider (the Airflow 2.11 venv needs only what its tests use).
EXTRAS ?= test,bench,lint,docs,dist,lineage

.PHONY: help venv test test-airflow2 test-py313 fuzz demo bench sandbox lint docs dist wheel-check e2e-celery clean

help:
	@echo "make demo           run example DAG send_and_wait against the sandbox in a real Airflow"
	@echo "make test           the whole test suite on the newest Airflow (creates $(VENV))"
	@echo "make test-airflow2  the same suite on Airflow 2.11 (creates .venv-airflow2)"
	@echo "make test-py313     the suite on the newest Airflow with Python 3.13 (creates .venv-py313)"
	@echo "make fuzz           the property-based tests with 10x the examples, freshly drawn"
	@echo "make lint           ruff (lint and format) and mypy, pinned in pyproject.toml"
	@echo "make docs           the Sphinx site in docs/_build/html (warnings are errors)"
	@echo "make dist           sdist and wheel in dist/, checked with twine"
	@echo "make wheel-check    install the built wheel in a clean venv and check Airflow sees it"
	@echo "make e2e-celery     a CeleryExecutor deployment (Redis, two workers) sending a campaign"
	@echo "make bench          benchmarks against the sandbox (docs/benchmarks.md)"
	@echo "make sandbox        run the CommPeak sandbox on 127.0.0.1:8099"

AIRFLOW_SPEC := $(if $(AIRFLOW_VERSION),apache-airflow==$(AIRFLOW_VERSION),apache-airflow)

# (Users install Airflow with its constraints file, see the README; this machine reaches PyPI only.)
$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[$(EXTRAS)]" "$(AIRFLOW_SPEC)"
	@touch $(STAMP)

venv: $(STAMP)

test: $(STAMP)
	AIRFLOW_HOME=$(CURDIR)/.airflow-test-$(notdir $(VENV)) $(PY) -m pytest $(PYTEST_ARGS)

fuzz: $(STAMP)
	HYPOTHESIS_PROFILE=fuzz AIRFLOW_HOME=$(CURDIR)/.airflow-test-$(notdir $(VENV)) $(PY) -m pytest -q \
		tests/test_engine_properties.py tests/test_phones_differential.py $(PYTEST_ARGS)

test-airflow2:
	$(MAKE) test VENV=.venv-airflow2 AIRFLOW_VERSION=2.11.2 EXTRAS=test,bench

# The newest Python this machine has; `make test` runs the oldest the provider supports (3.11).
# pyenv's own copy first: its `python3.13` shim refuses to run unless 3.13 is a selected version.
PY313 ?= $(firstword $(wildcard $(shell pyenv root 2>/dev/null)/versions/3.13*/bin/python3.13) $(shell command -v python3.13))
test-py313:
	@test -n "$(PY313)" || { echo "no Python 3.13 found (pyenv install 3.13, or PY313=/path/to/python3.13)"; exit 1; }
	$(MAKE) test VENV=.venv-py313 PYTHON=$(PY313) EXTRAS=test,bench

demo: $(STAMP)
	VENV=$(VENV) bash scripts/demo.sh

bench: $(STAMP)
	$(PY) benchmarks/bench.py $(BENCH_ARGS)

sandbox: $(STAMP)
	$(VENV)/bin/commpeak-sandbox --port 8099

lint: $(STAMP)
	$(PY) -m ruff check airflow_provider_commpeak tests benchmarks example_dags scripts docs
	$(PY) -m ruff format --check airflow_provider_commpeak tests benchmarks example_dags scripts docs
	$(PY) -m mypy

docs: $(STAMP)
	rm -rf docs/_build
	$(PY) -m sphinx -W --keep-going -n -b html docs docs/_build/html

dist: $(STAMP)
	rm -rf dist build *.egg-info
	$(PY) -m build --sdist --wheel --outdir dist .
	$(PY) -m twine check --strict dist/*

wheel-check: dist
	VENV=$(VENV) bash scripts/wheel_check.sh

e2e-celery: $(STAMP)
	VENV=$(VENV) bash scripts/e2e_celery.sh

clean:
	rm -rf .airflow-* build dist *.egg-info .pytest_cache docs/_build .venv-wheel
