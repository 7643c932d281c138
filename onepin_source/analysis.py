"""Read-only analysis over a DuckDB file or a Parquet folder: views and pandas answers.

    from onepin_source import analysis
    with analysis.connect(duckdb_path="onepin_etl.duckdb") as con:
        con.sql("select * from node_stats order by p95_ms desc").df()

    analysis.slowest_nodes(duckdb_path="onepin_etl.duckdb", top=10)   # opens, queries, closes

A DuckDB file is opened read-only and the helpers close it after each query, so a scheduled
load is not locked out for longer than a query.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from onepin_source.analysis_sql import LATEST_BY_ID, LATEST_STEPS, VIEWS
from onepin_source.errors import ConfigError
from onepin_source.settings import DEFAULT_DATASET

TABLES = ("workflows", "runs", "run_steps")


class NoDataError(ConfigError):
    """Nothing loaded yet where the reader looked."""


@dataclass(frozen=True)
class Filters:
    """Narrow every view to some workflows and to runs created at or after ``since``."""

    workflow_ids: Sequence[str] = ()
    since: str | None = None

    def runs_where(self) -> str:
        clauses = []
        if self.workflow_ids:
            clauses.append(f"workflow_id in ({_sql_list(self.workflow_ids)})")
        if self.since:
            clauses.append(f"created_at >= {_sql_str(self.since)}::timestamptz")
        return " and ".join(clauses)


def _sql_str(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _sql_list(values: Sequence[str]) -> str:
    return ", ".join(_sql_str(v) for v in values)


def _bases(tables: dict[str, str], filters: Filters) -> dict[str, str]:
    """Base relations for the view templates, filtered when asked."""
    where = filters.runs_where()
    if not where:
        return {"workflows": tables["workflows"], "runs": tables["runs"],
                "steps": tables["run_steps"]}
    runs = f"(select * from {tables['runs']} where {where})"
    steps = f"(select * from {tables['run_steps']} where run_id in (select id from {runs}))"
    return {"workflows": tables["workflows"], "runs": runs, "steps": steps}


def create_views(con: duckdb.DuckDBPyConnection, tables: dict[str, str], *,
                 filters: Filters | None = None, schema: str | None = None) -> None:
    """Create the analysis views over ``tables`` (temporary unless a schema is given)."""
    bases = _bases(tables, filters or Filters())
    bases["step_durations"] = f"{schema}.step_durations" if schema else "step_durations"
    kind = "view" if schema else "temp view"
    for name, template in VIEWS.items():
        target = f"{schema}.{name}" if schema else name
        con.execute(f"create or replace {kind} {target} as {template.format(**bases)}")


def persist_views(con: duckdb.DuckDBPyConnection, dataset: str) -> None:
    """Create (or replace) the views inside a loaded DuckDB dataset for analysts' SQL."""
    create_views(con, {t: f'"{dataset}"."{t}"' for t in TABLES}, schema=f'"{dataset}"')


@contextmanager
def connect(*, duckdb_path: str | Path | None = None, parquet_dir: str | Path | None = None,
            dataset: str = DEFAULT_DATASET,
            filters: Filters | None = None) -> Iterator[duckdb.DuckDBPyConnection]:
    """A DuckDB connection with the analysis views, over a DuckDB file or a Parquet folder."""
    if (duckdb_path is None) == (parquet_dir is None):
        raise ConfigError("give exactly one of duckdb_path or parquet_dir")
    if duckdb_path is not None:
        con, tables = _open_duckdb(Path(duckdb_path), dataset)
    else:
        con, tables = _open_parquet(str(parquet_dir), dataset)
    try:
        con.execute("set TimeZone = 'UTC'")
        create_views(con, tables, filters=filters)
        yield con
    finally:
        con.close()


def _open_duckdb(path: Path, dataset: str) -> tuple[duckdb.DuckDBPyConnection, dict[str, str]]:
    if not path.is_file():
        raise NoDataError(f"no DuckDB file at {path}: run 'onepin-etl load' first "
                          "(or pass --duckdb-path)")
    con = duckdb.connect(str(path), read_only=True)
    found = {r[0] for r in con.execute(
        "select table_name from information_schema.tables where table_schema = ?",
        [dataset]).fetchall()}
    if not set(TABLES) <= found:
        con.close()
        raise NoDataError(f"{path} has no loaded Onepin data in dataset {dataset!r}: run "
                          "'onepin-etl load' first")
    return con, {t: f'"{dataset}"."{t}"' for t in TABLES}


def _open_parquet(root: str, dataset: str) -> tuple[duckdb.DuckDBPyConnection, dict[str, str]]:
    base = f"{root.rstrip('/')}/{dataset}"
    if "://" not in root:
        missing = [t for t in TABLES if not list(Path(base, t).glob("*.parquet"))]
        if missing:
            raise NoDataError(f"no Parquet files for {', '.join(missing)} under {base}: run "
                              "'onepin-etl load --destination parquet' first")
    con = duckdb.connect()
    views = {
        "workflows": LATEST_BY_ID.format(path=f"{base}/workflows"),
        "runs": LATEST_BY_ID.format(path=f"{base}/runs"),
        "run_steps": LATEST_STEPS.format(path=f"{base}/run_steps"),
    }
    for name, body in views.items():
        con.execute(f"create temp view current_{name} as {body}")
    return con, {t: f"current_{t}" for t in TABLES}


def query(sql: str, **where: Any) -> pd.DataFrame:
    """Run ``sql`` against the views (``where`` = arguments of :func:`connect`) and close."""
    with connect(**where) as con:
        return con.execute(sql).df()


def workflow_summary(**where: Any) -> pd.DataFrame:
    """Per workflow: runs by status, pass rate, average and p50/p95 active run duration."""
    return query("select * from workflow_summary order by workflow_name", **where)


def slowest_nodes(top: int = 10, **where: Any) -> pd.DataFrame:
    """Nodes with the highest p95 duration of completed steps."""
    return query(f"""select workflow_name, node_display_name, node_type, completed, p50_ms,
                            p95_ms, max_ms from node_stats where p95_ms is not null
                     order by p95_ms desc, workflow_name, node_id limit {int(top)}""", **where)


def failure_rates(top: int = 10, **where: Any) -> pd.DataFrame:
    """Nodes that fail most (with their counts, so small samples are visible)."""
    return query(f"""select workflow_name, node_display_name, node_type, failed, completed,
                            failure_rate, top_error from node_stats where failed > 0
                     order by failure_rate desc, failed desc, workflow_name, node_id
                     limit {int(top)}""", **where)


def node_type_failures(**where: Any) -> pd.DataFrame:
    """Failure rate and durations per node type across workflows."""
    return query("""select node_type, executions, failed, completed, failure_rate, p50_ms,
                           p95_ms, retries, flaky from node_type_stats
                    order by failure_rate desc nulls last, node_type""", **where)


def retries_and_flaky(top: int = 10, **where: Any) -> pd.DataFrame:
    """Nodes with the most retries and flaky runs."""
    return query(f"""select workflow_name, node_display_name, node_type, retries, flaky
                     from node_stats where retries > 0 or flaky > 0
                     order by flaky desc, retries desc, workflow_name, node_id
                     limit {int(top)}""", **where)


def daily_trend(**where: Any) -> pd.DataFrame:
    """Per workflow per day: runs, pass rate, p50/p95 active duration, failed steps."""
    return query("select * from workflow_daily order by workflow_name, day", **where)
