# clip2gan — the two commands are `make demo` and `make test` (see README.md).
SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -c
# pip on these machines warns about every missing local index folder; keep the log readable.
QUIET := 2>&1 | { grep -v "^WARNING: Location" || true; }
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.clip2gan-installed
PROFILE ?= toyfaces
PARAMS ?= demo

.PHONY: setup demo test unit notebooks bench app clean-outputs strip

setup: $(STAMP)

# Idempotent: re-runs only when pyproject.toml changes or the venv is missing.
$(STAMP): pyproject.toml
	@echo "== clip2gan set-up: creating $(VENV) (torch first, then the package) =="
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip $(QUIET)
	$(PY) -m pip install --quiet "torch==2.14.1" "torchvision==0.29.1" $(QUIET)
	$(PY) -m pip install --quiet -e ".[dev]" $(QUIET)
	$(PY) -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (clip2gan)" >/dev/null
	@touch $(STAMP)
	@echo "== set-up done: $$(du -sh $(VENV) | cut -f1) in $(VENV) =="

demo: setup
	$(PY) -m clip2gan.pipeline --profile $(PROFILE) --params $(PARAMS) --out outputs/

# Unit tests and every notebook (nbval, lax: only cells marked NBVAL_CHECK_OUTPUT are compared).
test: setup
	@start=$$(date +%s); \
	$(PY) -m pytest tests notebooks --nbval-lax --nbval-current-env --timeout=1800 -q -p no:cacheprovider; \
	rc=$$?; echo "== make test: exit $$rc after $$(( $$(date +%s) - start )) s (unit tests + notebooks) =="; exit $$rc

unit: setup
	$(PY) -m pytest -q tests --timeout=900

notebooks: setup
	$(PY) -m pytest -q --nbval-lax --nbval-current-env notebooks

bench: setup
	$(PY) -m clip2gan.bench

strip: setup
	$(PY) -m clip2gan.pipeline --strip notebooks/

clean-outputs:
	rm -rf outputs/
