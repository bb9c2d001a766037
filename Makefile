# Everything a fresh machine (Python 3.11, nothing else) needs: each target builds its own venv.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
# Empty = the newest Airflow PyPI has; `make test-airflow2` pins the 2.11 line in its own venv.
AIRFLOW_VERSION ?=
AIRFLOW_SPEC := $(if $(AIRFLOW_VERSION),apache-airflow==$(AIRFLOW_VERSION),apache-airflow)
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: help venv test test-airflow2 demo bench sandbox lint clean

help:
	@echo "make demo           run example DAG send_and_wait against the sandbox in a real Airflow"
	@echo "make test           the whole test suite on the newest Airflow (creates $(VENV))"
	@echo "make test-airflow2  the same suite on Airflow 2.11 (creates .venv-airflow2)"
	@echo "make bench          benchmarks against the sandbox (docs/benchmarks.md)"
	@echo "make sandbox        run the CommPeak sandbox on 127.0.0.1:8099"
	@echo "make lint           ruff check and format check"

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test,bench]" "$(AIRFLOW_SPEC)"
	@touch $(STAMP)

venv: $(STAMP)

test: $(STAMP)
	AIRFLOW_HOME=$(CURDIR)/.airflow-test-$(notdir $(VENV)) $(PY) -m pytest $(PYTEST_ARGS)

test-airflow2:
	$(MAKE) test VENV=.venv-airflow2 AIRFLOW_VERSION=2.11.2

demo: $(STAMP)
	VENV=$(VENV) bash scripts/demo.sh

bench: $(STAMP)
	$(PY) benchmarks/bench.py $(BENCH_ARGS)

sandbox: $(STAMP)
	$(VENV)/bin/commpeak-sandbox --port 8099

lint: $(STAMP)
	$(PY) -m pip install --quiet "ruff>=0.6"
	$(PY) -m ruff check --select E,W,F,I,B,UP --ignore E501 airflow_provider_commpeak tests benchmarks example_dags scripts
	$(PY) -m ruff format --check airflow_provider_commpeak tests benchmarks example_dags scripts

clean:
	rm -rf .airflow-* build dist *.egg-info .pytest_cache
