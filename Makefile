# A newcomer needs two commands: `make demo` (run it, with demo data) and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: install test lint format check run demo bench

$(PY):
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev,speed]'

install: $(PY)

test: $(PY)
	$(PY) -m pytest

lint: $(PY)
	$(PY) -m ruff check gateway tests bench deploy
	$(PY) -m ruff format --check gateway tests bench deploy
	$(PY) -m mypy

format: $(PY)
	$(PY) -m ruff format gateway tests bench deploy
	$(PY) -m ruff check --fix gateway tests bench deploy

check: $(PY)
	$(VENV)/bin/shape-gateway check shape_rules.yaml

run: $(PY)  # configuration from the environment: see README "Configuration"
	$(VENV)/bin/shape-gateway serve

demo: $(PY)
	$(PY) -m deploy.demo

bench: $(PY)
	$(PY) -m bench.planner
	$(PY) -m bench.limits
	$(PY) -m bench.http
	$(PY) -m bench.revocation
	$(PY) -m bench.scale
