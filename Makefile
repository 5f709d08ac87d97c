# emo — two commands:
#   make demo   set up everything (system packages, virtualenv) and run the demo cohort
#   make test   run the test suite (what CI runs)
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
CORES ?= 2
STAMP := $(VENV)/.emo-installed

.PHONY: demo test test-unit test-fast setup system-deps venv lint report dag clean-demo benchmarks docs

demo: setup
	$(BIN)/snakemake --cores $(CORES)
	@echo "demo done: results/ (stores, tables, figures); 'make report' builds report.html"
	@echo "checking what the pipeline recovered of the demo's planted truth:"
	$(BIN)/python -m pytest -q -p no:cacheprovider tests/workflow/test_demo_acceptance.py

test: setup
	$(BIN)/python -m pytest -v --durations=25

# Library tests only (tests/unit: no Snakemake run, minutes); tests/workflow runs the
# workflow (stage runs, the small demo, incremental reruns, Slurm).
test-unit: setup
	$(BIN)/python -m pytest -q tests/unit

# Everything but the slow end-to-end, Slurm and R tests.
test-fast: setup
	$(BIN)/python -m pytest -q -m "not slow"

setup: system-deps venv

system-deps:
	bash scripts/install_system_deps.sh

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# The CPU build of torch first, so no CUDA wheels are pulled in by other packages.
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e ".[r,test]"
	touch $(STAMP)

lint: setup
	$(BIN)/snakemake --lint

report: setup
	$(BIN)/snakemake --cores $(CORES) --report report.html

# docs/configuration.md is generated from the config schema (a test fails when stale).
docs: venv
	cd scripts && ../$(BIN)/python -m emo.workflow.config_docs > ../docs/configuration.md

benchmarks: setup
	for b in bench/benchmark_*.py; do echo "== $$b"; $(BIN)/python $$b; done

clean-demo:
	rm -rf results logs benchmarks data/demo .snakemake
