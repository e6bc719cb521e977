# medrepro: every figure regenerates with one command.  `make help` lists the targets.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PROFILE ?= smoke
NB ?=
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
export MPLBACKEND := Agg
export PYTHONUNBUFFERED := 1

.DEFAULT_GOAL := help
.PHONY: help setup data reports report test sync-check nbdev-test pytest notebooks check-report export lab mutation clean

help: ## list the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN{FS=":.*## "}{printf "  make %-11s %s\n", $$1, $$2}'
	@echo "  variables: PROFILE=$(PROFILE) (smoke|paper|real), NB=<glob> for 'make report'"

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	$(BIN)/python -m ipykernel install --sys-prefix --name medrepro --display-name "Python (medrepro)" >/dev/null
	touch $@

setup: $(VENV)/.installed ## create .venv, install the project (-e .[dev]) and its Jupyter kernel

data: setup ## write the synthetic sample data sets into data/sample/
	$(BIN)/medrepro-sample --dataset all --dest data/sample

reports: setup data ## run every numbered notebook (PROFILE=smoke|paper|real), studies in parallel, into reports/ with reports/index.html
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

pytest: setup data
	$(BIN)/python -m pytest tests -n 2 --dist loadfile

notebooks: setup data
	$(BIN)/medrepro-reports --profile smoke --out build/test-reports --no-html -j $(JOBS)

check-report: setup ## open the test report's index in headless Chromium (skipped without chromium): broken images/links fail
	$(BIN)/python scripts/check_report.py build/test-reports/index.html --screenshot build/test-reports/index.png

export: setup ## nbdev-export (nbs/ -> lib/medrepro) and nbdev-clean
	$(BIN)/nbdev-export && $(BIN)/nbdev-clean

lab: setup ## open JupyterLab on nbs/ (works as root in containers too)
	$(BIN)/jupyter lab nbs/ $$( [ "$$(id -u)" = 0 ] && echo --allow-root )

mutation: setup ## by hand, not CI: mutmut over the metric, imaging and DICOM code; prints the surviving mutants
	$(BIN)/python scripts/mutation.py --fresh

clean: ## remove generated reports, build files and sample data (keeps .venv and data/raw)
	rm -rf build reports/*/ reports/index.html reports/index.png reports/timings.csv reports/manifest.json data/sample data/cache
