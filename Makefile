# A newcomer needs two commands: `make demo` (run it, with demo data) and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python

# The pinned npm packages: the real-client tests' and the demo web app's @electric-sql/client,
# and the client package's own (TypeScript, its peer @electric-sql/client for its tests).
NPM_DIRS := tests/client deploy/web clients/js
NPM_STAMPS := $(NPM_DIRS:%=%/node_modules/.package-lock.json)
CLIENT_BUILD := clients/js/dist/index.js

.PHONY: install test lint format check run demo bench screenshot npm

$(PY):
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

# Reinstalled when pyproject.toml changes (a new test dependency reaches existing checkouts).
$(VENV)/.installed: pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e '.[dev,speed]'
	touch $@

install: $(VENV)/.installed

# npm ci when the lockfile changed; without npm the tests that need these packages skip
# (locally) or fail (CI=true), each saying what to install.
%/node_modules/.package-lock.json: %/package-lock.json
	@if command -v npm >/dev/null; then \
		npm ci --prefix $* --no-audit --no-fund --loglevel=error; \
	else \
		echo "npm not found: install Node.js 18+ to run the tests that need $*"; \
	fi

# The client package (clients/js), built with tsc when its sources change; the demo web app
# links it from deploy/web/node_modules.
$(CLIENT_BUILD): clients/js/node_modules/.package-lock.json clients/js/tsconfig.json $(wildcard clients/js/src/*.ts)
	@if command -v npm >/dev/null; then \
		npm run build --prefix clients/js --silent; \
	else \
		echo "npm not found: install Node.js 20+ to build clients/js"; \
	fi

npm: $(NPM_STAMPS) $(CLIENT_BUILD)

test: install npm
	$(PY) -m pytest

# docs/demo.png, the README's picture: the browser test's own screenshot of the demo.
screenshot: install npm
	SHAPE_GATEWAY_SCREENSHOT=docs/demo.png $(PY) -m pytest -q tests/browser/test_picture.py

lint: install
	$(PY) -m ruff check gateway electric_imitation tests bench deploy
	$(PY) -m ruff format --check gateway electric_imitation tests bench deploy
	$(PY) -m mypy

format: install
	$(PY) -m ruff format gateway electric_imitation tests bench deploy
	$(PY) -m ruff check --fix gateway electric_imitation tests bench deploy

check: install
	$(VENV)/bin/shape-gateway check shape_rules.yaml

run: install  # configuration from the environment: see README "Configuration"
	$(VENV)/bin/shape-gateway serve

demo: install npm
	$(PY) -m deploy.demo

bench: install
	$(PY) -m bench.planner
	$(PY) -m bench.limits
	$(PY) -m bench.compare
	$(PY) -m bench.collapse
	$(PY) -m bench.scale
