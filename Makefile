# medrepro: every figure regenerates with one command.  `make help` lists the targets.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PROFILE ?= smoke
NB ?=
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
export PYTHONUNBUFFERED := 1
# Batch targets draw figures without a display; `make lab` must not pass this on (ipykernel draws inline only when
# MPLBACKEND is unset), so it is set per target, never exported to every target.
BATCH := data reports report test nbdev-test pytest notebooks mutation assignments grade
$(BATCH): export MPLBACKEND := Agg

.DEFAULT_GOAL := help
.PHONY: help setup data reports report test sync-check nbdev-test pytest notebooks check-report export lab mutation clean clean-cache weights assignments grade

help: ## list the targets and variables
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN{FS=":.*## "}{printf "  make %-12s %s\n", $$1, $$2}'
	@echo "  variables:"
	@echo "    PROFILE=$(PROFILE)   parameter profile, a folder of params/: smoke | paper | real | real-paper"
	@echo "    NB=<glob>       notebooks for 'make report', e.g. NB='3*'"
	@echo "    JOBS=$(JOBS)          studies run at once (default: the number of cores)"
	@echo "    VENV=$(VENV)     the Python environment: made here if it has no bin/python; an existing one (e.g."
	@echo "                    VENV=\$$CONDA_PREFIX after 'conda env create -f environment.yml') is used as it is"
	@echo "    PYTHON=$(PYTHON)  the interpreter that creates VENV (3.11 or newer)"
	@echo "    SUBMISSIONS=<folder>  for 'make grade': <student>/<assignment>.ipynb (or nbgrader's <student>/<assignment>/<assignment>.ipynb)"

# The environment: VENV is created only when it has no python (a conda env or an existing venv is used as it is), then
# the project is installed into it within constraints.txt (the versions that passed CI), and the kernelspec `medrepro`.
$(VENV)/.installed: pyproject.toml constraints.txt
	@if [ ! -x $(BIN)/python ]; then \
	  $(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "$(PYTHON) is $$($(PYTHON) -V 2>&1): medrepro needs Python 3.11 or newer (make PYTHON=python3.11 ...)"; exit 1; }; \
	  echo "$(PYTHON) -m venv $(VENV)"; $(PYTHON) -m venv $(VENV); fi
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	$(BIN)/python scripts/install_kernel.py
	touch $@

setup: $(VENV)/.installed ## create .venv (unless VENV has a python), install the project (-e .[dev], pinned by constraints.txt) and its Jupyter kernel `medrepro`

data: setup ## write the synthetic sample data sets into data/sample/
	$(BIN)/medrepro-sample --dataset all --dest data/sample

reports: setup data ## run every numbered notebook (PROFILE=smoke|paper|real|real-paper), studies in parallel, into reports/ with reports/index.html
	$(BIN)/medrepro-reports --profile $(PROFILE) -j $(JOBS)
	$(BIN)/python scripts/check_report.py reports/index.html

report: setup data ## run the notebooks matching NB (a glob, e.g. NB='3*') into reports/
	@test -n "$(NB)" || { echo "usage: make report NB='31_*' [PROFILE=...]"; exit 2; }
	$(BIN)/medrepro-reports --profile $(PROFILE) --only '$(NB)' -j $(JOBS)

test: setup sync-check nbdev-test pytest notebooks check-report ## nbdev sync check, library notebooks (nbdev-test), pytest, every notebook on the smoke profile, the index in a browser

sync-check: setup ## fail if nbdev-export / nbdev-clean would change the tree
	@state() { { git status --porcelain -- nbs lib; git diff -- nbs lib; } | md5sum; }; \
	before=$$(state); $(BIN)/nbdev-export && $(BIN)/nbdev-clean; after=$$(state); \
	if [ "$$before" != "$$after" ]; then echo "nbdev-export/nbdev-clean changed the tree: run 'make export' and commit"; git status --short -- nbs lib; exit 1; fi; \
	echo "nbdev sync: ok"

nbdev-test: setup ## the shared-library notebooks 00-09 with nbdev-test (study notebooks run in `notebooks`, every cell)
	$(BIN)/nbdev-test nbs --file-re '^0[0-9]_.*\.ipynb$$' --n-workers 2 --timing

pytest: setup data ## the tests in tests/ (pytest, 2 workers)
	$(BIN)/python -m pytest tests -n 2 --dist loadfile

notebooks: setup data ## every numbered notebook on the smoke profile into build/test-reports (part of make test)
	$(BIN)/medrepro-reports --profile smoke --out build/test-reports --no-html -j $(JOBS)

check-report: setup ## open the test report's index in headless Chromium (skipped without chromium): broken images/links fail
	$(BIN)/python scripts/check_report.py build/test-reports/index.html --screenshot build/test-reports/index.png

export: setup ## nbdev-export (nbs/ -> lib/medrepro) and nbdev-clean
	$(BIN)/nbdev-export && $(BIN)/nbdev-clean

lab: setup ## open JupyterLab on nbs/ with the kernel `medrepro`, figures inline (works as root in containers too)
	env -u MPLBACKEND -u MEDREPRO_BATCH $(BIN)/jupyter lab nbs/ --MultiKernelManager.default_kernel_name=medrepro $$( [ "$$(id -u)" = 0 ] && echo --allow-root )

assignments: setup data ## the course edition (nbgrader): student copies in build/course/release/ (no solutions, no hidden tests, no outputs) and the grading material
	$(BIN)/python course/course.py assignments --out build/course

grade: setup data ## autograde SUBMISSIONS=<folder>: build/grades/grades.csv (per student and question), totals.csv, feedback/<student>/index.html
	@test -n "$(SUBMISSIONS)" || { echo "usage: make grade SUBMISSIONS=<folder of <student>/<assignment>.ipynb>"; exit 2; }
	$(BIN)/python course/course.py grade '$(SUBMISSIONS)' --out build/grades -j $(JOBS)

mutation: setup ## by hand, not CI: mutmut over the metric, imaging and DICOM code; prints the surviving mutants
	$(BIN)/python scripts/mutation.py --fresh

weights: setup ## on a connected machine, once: the ImageNet weight files the paper profiles start from, into torch's cache, hash-checked
	$(BIN)/python scripts/weights.py

.PHONY: bench-scale
bench-scale: setup ## by hand, not CI (~15 min on 2 idle cores): the scale benchmark of issue 23 -> build/bench/scale.csv (BENCH_ARGS="--only dsb")
	$(BIN)/python scripts/bench_scale.py $(BENCH_ARGS)

clean: ## remove generated reports, build files and sample data (keeps .venv, data/raw and data/cache)
	rm -rf build reports/*/ reports/index.html reports/index.png reports/timings.csv reports/manifest.json data/sample

clean-cache: ## remove data/cache, the decoded-data caches (hours of work on the real data sets)
	rm -rf data/cache
