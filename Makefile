# Two commands a newcomer needs: `make run` (issue: serving) and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: install test lint format check

$(PY):
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev,speed]'

install: $(PY)

test: $(PY)
	$(PY) -m pytest

lint: $(PY)
	$(PY) -m ruff check gateway tests bench
	$(PY) -m ruff format --check gateway tests bench
	$(PY) -m mypy

format: $(PY)
	$(PY) -m ruff format gateway tests bench
	$(PY) -m ruff check --fix gateway tests bench

check: $(PY)
	$(VENV)/bin/shape-gateway check shape_rules.yaml
