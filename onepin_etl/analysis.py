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

from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from onepin_etl import comments, remote
from onepin_etl.analysis_sql import LATEST_BY_ID, LATEST_STEPS, VIEWS
from onepin_etl.settings import DEFAULT_DATASET
from onepin_source.errors import ConfigError

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


def view_definitions(tables: dict[str, str], *, filters: Filters | None = None,
                     schema: str | None = None) -> dict[str, str]:
    """Each view's name (in ``schema``, if given) and its query over ``tables``, in dependency
    order."""
    bases = _bases(tables, filters or Filters())
    bases["step_durations"] = f"{schema}.step_durations" if schema else "step_durations"
    return {f"{schema}.{name}" if schema else name: template.format(**bases)
            for name, template in VIEWS.items()}


def dataset_tables(dataset: str) -> dict[str, str]:
    """The loaded tables of ``dataset`` by name."""
    return {t: f'"{dataset}"."{t}"' for t in TABLES}


def create_views(con: duckdb.DuckDBPyConnection, tables: dict[str, str], *,
                 filters: Filters | None = None, schema: str | None = None) -> None:
    """Create the analysis views over ``tables`` (temporary unless a schema is given)."""
    kind = "view" if schema else "temp view"
    for name, sql in view_definitions(tables, filters=filters, schema=schema).items():
        con.execute(f"create or replace {kind} {name} as {sql}")


def persist_views(con: duckdb.DuckDBPyConnection, dataset: str) -> None:
    """Create (or replace) the views inside a loaded DuckDB dataset or DuckLake for analysts'
    SQL, and comment every table, view and column (:mod:`onepin_etl.comments`)."""
    create_views(con, dataset_tables(dataset), schema=f'"{dataset}"')
    comments.comment_duckdb(con, dataset)


@contextmanager
def connect(*, duckdb_path: str | Path | None = None, parquet_dir: str | Path | None = None,
            destination: str | None = None, dataset: str = DEFAULT_DATASET,
            filters: Filters | None = None) -> Iterator[duckdb.DuckDBPyConnection]:
    """A DuckDB connection with the analysis views, over a DuckDB file, a Parquet folder or
    bucket, or a shared destination (``destination="ducklake"`` or ``"postgres"``, configured
    the dlt way: :mod:`onepin_etl.remote`)."""
    if sum(x is not None for x in (duckdb_path, parquet_dir, destination)) != 1:
        raise ConfigError("give exactly one of duckdb_path, parquet_dir or destination")
    with ExitStack() as stack:
        if duckdb_path is not None:
            con, tables = _open_duckdb(Path(duckdb_path), dataset)
            stack.callback(con.close)
        elif parquet_dir is not None:
            con, tables = _open_parquet(str(parquet_dir), dataset, stack)
        else:
            con, tables = _open_shared(str(destination), dataset, stack)
        con.execute("set TimeZone = 'UTC'")
        create_views(con, tables, filters=filters)
        yield con


def _open_duckdb(path: Path, dataset: str) -> tuple[duckdb.DuckDBPyConnection, dict[str, str]]:
    if not path.is_file():
        raise NoDataError(f"no DuckDB file at {path}: run 'onepin-etl load' first "
                          "(or pass --duckdb-path)")
    con = duckdb.connect(str(path), read_only=True)
    try:  # before search_path, which fails on a file without the dataset's schema
        _require_tables(con, dataset, str(path), "onepin-etl load")
    except NoDataError:
        con.close()
        raise
    con.execute(f"set search_path = {_sql_str(dataset)}")  # tables by their plain names
    return con, dataset_tables(dataset)


def loaded_tables(con: duckdb.DuckDBPyConnection, dataset: str) -> set[str]:
    """The tables of ``dataset`` in the connection's current database (a DuckDB file, a lake,
    an attached PostgreSQL database)."""
    return {r[0] for r in con.execute(
        "select table_name from information_schema.tables "
        "where table_catalog = current_database() and table_schema = ?", [dataset]).fetchall()}


def _require_tables(con: duckdb.DuckDBPyConnection, dataset: str, place: str,
                    load_command: str) -> None:
    if not set(TABLES) <= loaded_tables(con, dataset):
        raise NoDataError(f"{place} has no loaded Onepin data in dataset {dataset!r}: run "
                          f"'{load_command}' first")


def _open_parquet(root: str, dataset: str, stack: ExitStack
                  ) -> tuple[duckdb.DuckDBPyConnection, dict[str, str]]:
    """An in-memory database whose schema ``dataset`` has a view per table: the latest version
    of each row in the files (so ``onepin.runs`` reads as it does in a DuckDB file)."""
    base = f"{root.rstrip('/')}/{dataset}"
    if "://" in root:
        con = stack.enter_context(remote.read_bucket(root))
        found = {t for t in TABLES if con.execute(
            "select count(*) from glob(?)", [f"{base}/{t}/*.parquet"]).fetchall()[0][0]}
    else:
        con = duckdb.connect()
        stack.callback(con.close)
        found = {t for t in TABLES if list(Path(base, t).glob("*.parquet"))}
    missing = [t for t in TABLES if t not in found]
    if missing:
        raise NoDataError(f"no Parquet files for {', '.join(missing)} under {base}: run "
                          "'onepin-etl load --destination parquet' first")
    tables = dataset_tables(dataset)
    con.execute(f'create schema "{dataset}"')
    for table in TABLES:
        files = _sql_str(f"{base}/{table}/*.parquet")
        con.execute(f"create view {tables[table]} as {latest_sql(table, files)}")
    con.execute(f"set search_path = {_sql_str(dataset)}")
    return con, tables


def _open_shared(destination: str, dataset: str, stack: ExitStack
                 ) -> tuple[duckdb.DuckDBPyConnection, dict[str, str]]:
    """A DuckLake or PostgreSQL, attached and in use (:mod:`onepin_etl.remote`)."""
    if destination == "ducklake":
        con = stack.enter_context(remote.read_ducklake(dataset))
    elif destination == "postgres":
        con = stack.enter_context(remote.read_postgres(dataset))
    else:
        raise ConfigError(f"cannot read destination {destination!r}: use one of "
                          f"{', '.join(remote.SHARED_DESTINATIONS)}")
    _require_tables(con, dataset, destination, f"onepin-etl load --destination {destination}")
    return con, dataset_tables(dataset)


def latest_sql(table: str, files: str) -> str:
    """The latest loaded version of each row of ``table`` in ``files`` (a ``read_parquet``
    argument: a quoted glob or a list), as readers of an append-only Parquet folder see it."""
    return (LATEST_STEPS if table == "run_steps" else LATEST_BY_ID).format(files=files)


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


def retries_and_flaky(top: int = 10, **where: Any) -> pd.DataFrame:
    """Nodes with the most retries and flaky runs."""
    return _answer("retries", top, where)


def daily_trend(**where: Any) -> pd.DataFrame:
    """Per workflow per day: runs, pass rate, p50/p95 active duration, failed steps."""
    return query("select * from workflow_daily order by workflow_name, day", **where)
