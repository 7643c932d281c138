"""Read-only analysis over a DuckDB file, a Parquet folder or bucket, a DuckLake or PostgreSQL:
views and pandas answers.

    from onepin_etl import analysis
    with analysis.connect(duckdb_path="onepin_etl.duckdb") as con:
        con.sql("select * from node_stats order by p95_ms desc").df()

    analysis.slowest_nodes(duckdb_path="onepin_etl.duckdb", top=10)   # opens, queries, closes

A DuckDB file is opened read-only and the helpers close it after each query, so a scheduled
load is not locked out for longer than a query.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from onepin_etl.destinations import Target
from onepin_etl.errors import NoDataError
from onepin_etl.settings import DEFAULT_DATASET
from onepin_etl.views import TABLES, Filters, create_views
from onepin_source.errors import ConfigError

__all__ = ["QUESTIONS", "SLOWEST_FIRST", "TABLES", "Filters", "NoDataError", "Question", "ask",
           "connect", "daily_trend", "failure_rates", "node_type_failures", "query",
           "slowest_nodes", "workflow_summary"]


@contextmanager
def connect(target: Target | None = None, *, duckdb_path: str | Path | None = None,
            parquet_dir: str | Path | None = None, destination: str | None = None,
            dataset: str = DEFAULT_DATASET,
            filters: Filters | None = None) -> Iterator[duckdb.DuckDBPyConnection]:
    """A DuckDB connection with the analysis views over ``target``'s data, read-only. For
    notebooks, the place may be given as one of ``duckdb_path``, ``parquet_dir`` (a folder or
    bucket) or ``destination`` (``"ducklake"``, ``"postgres"``, configured the dlt way)."""
    if target is None:
        target = _target(duckdb_path, parquet_dir, destination, dataset)
    with target.open() as (con, tables):
        con.execute("set TimeZone = 'UTC'")
        create_views(con, tables, filters=filters)
        yield con


def _target(duckdb_path: str | Path | None, parquet_dir: str | Path | None,
            destination: str | None, dataset: str) -> Target:
    if sum(x is not None for x in (duckdb_path, parquet_dir, destination)) != 1:
        raise ConfigError("give exactly one of duckdb_path, parquet_dir or destination")
    if duckdb_path is not None:
        return Target(duckdb_path=str(duckdb_path), dataset=dataset)
    if parquet_dir is not None:
        return Target("parquet", parquet_dir=str(parquet_dir), dataset=dataset)
    return Target(str(destination), dataset=dataset)


def query(sql: str, **where: Any) -> pd.DataFrame:
    """Run ``sql`` against the views (``where`` = arguments of :func:`connect`) and close."""
    with connect(**where) as con:
        return con.execute(sql).df()


@dataclass(frozen=True)
class Question:
    """A ranking asked after every load: by the report, the notebook and these helpers."""

    title: str
    sql: str  # over the analysis views; ``{top}`` is the number of rows


# The slowest nodes' order, shared by the question and the health page's duration chart.
SLOWEST_FIRST = "order by p95_ms desc, workflow_name, node_id"

QUESTIONS: dict[str, Question] = {
    "workflows": Question("Runs per workflow", """
        select workflow_name as workflow, total_runs as runs, completed, failed, cancelled,
               pending + running + paused as open, pass_rate,
               round(average_duration_seconds, 1) as avg_active_s,
               round(p95_active_ms / 1000, 1) as p95_active_s
        from workflow_summary order by workflow_name"""),
    "slowest_nodes": Question("Slowest nodes (p95 of completed steps)", """
        select workflow_name as workflow, node_display_name as node, node_type, completed,
               round(p50_ms / 1000, 2) as p50_s, round(p95_ms / 1000, 2) as p95_s,
               round(max_ms / 1000, 2) as max_s
        from node_stats where p95_ms is not null
        """ + SLOWEST_FIRST + " limit {top}"),
    "failing_nodes": Question("Most failing nodes", """
        select workflow_name as workflow, node_display_name as node, node_type, failed,
               completed, failure_rate, top_error
        from node_stats where failed > 0
        order by failure_rate desc, failed desc, workflow_name, node_id limit {top}"""),
    "failing_node_types": Question("Failure rate by node type", """
        select node_type, executions, failed, completed, failure_rate,
               round(p95_ms / 1000, 2) as p95_s
        from node_type_stats
        order by failure_rate desc nulls last, node_type limit {top}"""),
    "retries": Question("Retries and flaky nodes", """
        select workflow_name as workflow, node_display_name as node, node_type, retries, flaky
        from node_stats where retries > 0 or flaky > 0
        order by flaky desc, retries desc, workflow_name, node_id limit {top}"""),
    "errors": Question("Most frequent errors", """
        select error, count(*) as steps, count(distinct run_id) as runs,
               string_agg(distinct node_type, ', ' order by node_type) as node_types
        from step_durations where error is not null
        group by error order by steps desc, error limit {top}"""),
}


def ask(con: duckdb.DuckDBPyConnection, name: str, top: int = 10) -> pd.DataFrame:
    """The answer to ``QUESTIONS[name]`` on an open connection (see :func:`connect`)."""
    return con.execute(QUESTIONS[name].sql.format(top=int(top))).df()


def _answer(name: str, top: int, where: dict[str, Any]) -> pd.DataFrame:
    with connect(**where) as con:
        return ask(con, name, top)


def workflow_summary(**where: Any) -> pd.DataFrame:
    """Per workflow: runs by status, pass rate, average and p50/p95 active run duration."""
    return query("select * from workflow_summary order by workflow_name", **where)


def slowest_nodes(top: int = 10, **where: Any) -> pd.DataFrame:
    """Nodes with the highest p95 duration of completed steps."""
    return _answer("slowest_nodes", top, where)


def failure_rates(top: int = 10, **where: Any) -> pd.DataFrame:
    """Nodes that fail most (with their counts, so small samples are visible)."""
    return _answer("failing_nodes", top, where)


def node_type_failures(top: int = 100, **where: Any) -> pd.DataFrame:
    """Failure rate and p95 duration per node type across workflows."""
    return _answer("failing_node_types", top, where)


def daily_trend(**where: Any) -> pd.DataFrame:
    """Per workflow per day: runs, pass rate, p50/p95 active duration, failed steps."""
    return query("select * from workflow_daily order by workflow_name, day", **where)
