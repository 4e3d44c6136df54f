# Two entry points: `make run` (set up, then serve Loom) and `make test` (set up, then run the whole suite).
# Both are idempotent: the virtual environment and the web build are redone only when their inputs change.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup run test lint bench web clean

setup: $(STAMP) web

$(STAMP): requirements.txt requirements-dev.txt requirements-ray.txt requirements-nodeps.txt requirements.lock
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), "Loom needs Python 3.11"'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --disable-pip-version-check -q -r requirements-dev.txt -c requirements.lock
	$(PY) -m pip install --disable-pip-version-check -q --no-deps -r requirements-nodeps.txt
	touch $(STAMP)

web:
	@if [ -f web/package.json ]; then $(MAKE) --no-print-directory web/dist/index.html; fi

web/dist/index.html: web/package.json web/package-lock.json $(shell find web/src web/public -type f 2>/dev/null) $(wildcard web/index.html web/vite.config.* web/tsconfig.json)
	cd web && (test -d node_modules && test node_modules/.package-lock.json -nt package-lock.json || npm ci --no-audit --no-fund --loglevel=error)
	cd web && npm run --silent build
	touch $@

run: setup
	$(PY) main.py $(ARGS)

test: setup
	$(PY) tests/ensure_browser.py
	$(PY) -m ruff check .
	$(PY) -m mypy
	@if [ -f web/package.json ]; then cd web && npm run --silent typecheck; fi
	$(PY) -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m mypy

bench: setup
	@for f in bench/*.py; do echo "== $$f"; $(PY) $$f || exit 1; done

clean:
	rm -rf $(VENV) web/node_modules web/dist
