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

.PHONY: setup setup-browser demo test lint unit notebooks bench app clean-outputs strip

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

# Debian's Chromium for the browser test of the editing app (Playwright drives it; nothing downloads a browser).
setup-browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "== installing Debian's chromium for the browser test =="; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else echo "!! chromium is missing and cannot be installed here: the browser test will be skipped"; fi; }

demo: setup
	$(PY) -m clip2gan.pipeline --profile $(PROFILE) --params $(PARAMS) --out outputs/

# Unit tests and every notebook (nbval, lax: only cells marked NBVAL_CHECK_OUTPUT are compared).
# One OpenMP thread everywhere (tests and notebook kernels): on a busy 2-core machine torch's default
# of 2 threads spin-waits and runs 5-17x slower; results do not depend on the thread count.
test: setup setup-browser lint
	@start=$$(date +%s); \
	OMP_NUM_THREADS=1 $(PY) -m pytest tests notebooks --nbval-lax --nbval-current-env --timeout=1800 -q -p no:cacheprovider; \
	rc=$$?; echo "== make test: exit $$rc after $$(( $$(date +%s) - start )) s (unit tests + notebooks) =="; exit $$rc

# ruff (configured in pyproject.toml) over the package, the tests, the docs scripts and the notebooks.
lint: setup
	$(PY) -m ruff check .

unit: setup
	$(PY) -m pytest -q tests --timeout=900

notebooks: setup
	$(PY) -m pytest -q --nbval-lax --nbval-current-env notebooks

bench: setup
	$(PY) -m clip2gan.bench

app: setup
	$(PY) -m clip2gan.app --profile $(PROFILE)

strip: setup
	$(PY) -m clip2gan.pipeline --strip notebooks/

clean-outputs:
	rm -rf outputs/
