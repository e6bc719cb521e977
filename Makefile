# medrepro: every figure regenerates with one command.  `make help` lists the targets.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PROFILE ?= smoke
NB ?=
export MPLBACKEND := Agg
export PYTHONUNBUFFERED := 1

.DEFAULT_GOAL := help
.PHONY: help setup data reports report test sync-check pytest notebooks export lab clean

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

reports: setup data ## run every numbered notebook (PROFILE=smoke|paper|real) into reports/, with reports/index.html
	$(BIN)/medrepro-reports --profile $(PROFILE)

report: setup data ## run the notebooks matching NB (a glob, e.g. NB='3*') into reports/
	@test -n "$(NB)" || { echo "usage: make report NB='31_*' [PROFILE=...]"; exit 2; }
	$(BIN)/medrepro-reports --profile $(PROFILE) --only '$(NB)'

test: setup sync-check pytest notebooks ## nbdev sync check, pytest, then every notebook on the smoke profile

sync-check: setup ## fail if nbdev-export / nbdev-clean would change the tree
	@state() { { git status --porcelain -- nbs lib; git diff -- nbs lib; } | md5sum; }; \
	before=$$(state); $(BIN)/nbdev-export && $(BIN)/nbdev-clean; after=$$(state); \
	if [ "$$before" != "$$after" ]; then echo "nbdev-export/nbdev-clean changed the tree: run 'make export' and commit"; git status --short -- nbs lib; exit 1; fi; \
	echo "nbdev sync: ok"

pytest: setup
	$(BIN)/python -m pytest tests

notebooks: setup data
	$(BIN)/medrepro-reports --profile smoke --out build/test-reports --no-html

export: setup ## nbdev-export (nbs/ -> lib/medrepro) and nbdev-clean
	$(BIN)/nbdev-export && $(BIN)/nbdev-clean

lab: setup ## open JupyterLab on nbs/
	$(BIN)/jupyter lab nbs/

clean: ## remove generated reports, build files and sample data (keeps .venv and data/raw)
	rm -rf build reports/*/ reports/index.html reports/timings.csv data/sample data/cache
