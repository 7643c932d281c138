# One way to do each thing. Every target installs what it needs into .venv first.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install demo test test-slow lint bench clean

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[etl,dagster,dev,notebook]"
	touch $(STAMP)

install: $(STAMP)

demo: install  ## simulator + load into DuckDB + load again incrementally + report
	$(VENV)/bin/onepin-etl demo

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

test: lint  ## lint, type-check and the fast test suite (what CI runs)
	$(VENV)/bin/pytest

test-slow: install  ## the full fault and SIGKILL crash matrices, a quick benchmark (~4 min)
	$(VENV)/bin/pytest -m slow

bench: install  ## the benchmark (~20 min; not part of the tests): README "Performance"
	$(PY) -m bench.run

clean:
	rm -rf $(VENV) onepin_etl.duckdb onepin_data demo_output .pytest_cache .mypy_cache
