# One way to do each thing. Every target installs what it needs into .venv first.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

# Shared destinations need DuckDB 1.4.4 (its extensions install offline): a second environment.
VENV_SHARED ?= .venv-shared
SHARED_STAMP := $(VENV_SHARED)/.installed

.PHONY: install install-shared demo test test-fast test-shared test-slow lint bench clean

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[etl,dagster,dev,notebook]"
	touch $(STAMP)

install: $(STAMP)

# moto pulls the newest boto3; botocore stays at the version s3fs's aiobotocore accepts.
$(SHARED_STAMP): pyproject.toml
	python3 -m venv $(VENV_SHARED)
	$(VENV_SHARED)/bin/python -m pip install --quiet --upgrade pip
	$(VENV_SHARED)/bin/python -m pip install --quiet -e ".[etl,shared]"
	$(VENV_SHARED)/bin/python -m pip freeze | grep -i '^botocore==' > $(VENV_SHARED)/constraints.txt
	$(VENV_SHARED)/bin/python -m pip install --quiet -c $(VENV_SHARED)/constraints.txt \
		-e ".[etl,shared,shared-test]"
	touch $(SHARED_STAMP)

install-shared: $(SHARED_STAMP)

demo: install  ## simulator + load into DuckDB + load again incrementally + report
	$(VENV)/bin/onepin-etl demo

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

# The two suites run side by side (separate environments, mostly waiting on servers): the shared
# one's output follows the fast one's. Either failing fails the target.
test: lint install-shared  ## lint, type-check, the fast suite and the shared destinations' suite (what CI runs)
	@log=$$(mktemp); \
	$(VENV_SHARED)/bin/pytest -m shared tests/shared >"$$log" 2>&1 & shared=$$!; \
	$(VENV)/bin/pytest; fast=$$?; \
	wait $$shared; rc=$$?; \
	echo "---- the shared destinations' suite (tests/shared, run beside the fast suite) ----"; \
	cat "$$log"; rm -f "$$log"; \
	test $$fast -eq 0 && test $$rc -eq 0

test-fast: lint  ## lint, type-check and the fast suite only (no PostgreSQL, S3 or DuckLake)
	$(VENV)/bin/pytest

test-shared: install-shared  ## DuckLake, PostgreSQL and Parquet in S3 against real servers
	$(VENV_SHARED)/bin/pytest -m shared tests/shared

test-slow: install  ## the full fault and SIGKILL crash matrices, a quick benchmark (~4 min)
	$(VENV)/bin/pytest -m slow

bench: install install-shared  ## the benchmarks (~45 min; not part of the tests): docs/performance.md
	$(PY) -m bench.run
	$(PY) -m bench.latency
	$(PY) -m bench.scale
	$(PY) -m bench.limits
	$(PY) -m bench.resume
	$(VENV_SHARED)/bin/python -m bench.shards

clean:
	rm -rf $(VENV) $(VENV_SHARED) onepin_etl.duckdb onepin_data demo_output .pytest_cache .mypy_cache
