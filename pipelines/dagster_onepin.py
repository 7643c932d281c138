"""Dagster: Onepin loaded on a schedule into DuckDB, with asset checks on ``run_steps``.

    make install                                   # installs the [dagster] extra too
    export ONEPIN_API_KEY=op_live_...
    .venv/bin/dagster dev -f pipelines/dagster_onepin.py

From the environment (all optional): ``ONEPIN_DUCKDB_PATH`` (default ``onepin_etl.duckdb``),
``ONEPIN_PIPELINES_DIR`` (dlt's working folder), ``ONEPIN_SCHEDULE_CRON`` (default every 15
minutes), ``ONEPIN_MAX_DURATION`` (``840`` seconds: a long load stops starting new work after 14
minutes, commits what it fetched, and the next scheduled run continues; so runs never overlap),
``ONEPIN_CHECK_MAX_AGE`` (``2h``) and ``ONEPIN_CHECK_MAX_FAILURE_RATE`` (``0.5``).
"""

from __future__ import annotations

import os

from onepin_etl.dagster_defs import DEFAULT_CRON, AssetChecks, build_definitions
from onepin_etl.destinations import Target
from onepin_etl.health import parse_duration
from onepin_etl.settings import DEFAULT_DUCKDB_PATH

defs = build_definitions(
    Target(duckdb_path=os.environ.get("ONEPIN_DUCKDB_PATH", DEFAULT_DUCKDB_PATH),
           pipelines_dir=os.environ.get("ONEPIN_PIPELINES_DIR") or None),
    cron=os.environ.get("ONEPIN_SCHEDULE_CRON", DEFAULT_CRON),
    checks=AssetChecks(
        max_age=parse_duration(os.environ.get("ONEPIN_CHECK_MAX_AGE", "2h")),
        max_failure_rate=float(os.environ.get("ONEPIN_CHECK_MAX_FAILURE_RATE", "0.5"))),
    max_duration=float(os.environ.get("ONEPIN_MAX_DURATION", "840")))
