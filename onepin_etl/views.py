"""The analysis views over the loaded tables: their definitions (one SQL,
:mod:`onepin_etl.analysis_sql`), created temporary in a reader's connection or persisted in a
dataset, and the check that a dataset has the tables they read. Every destination kind
(:mod:`onepin_etl.destinations`) builds on these, so all answer with the same numbers."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import duckdb

from onepin_etl import comments
from onepin_etl.analysis_sql import LATEST_BY_ID, LATEST_STEPS, VIEWS
from onepin_etl.errors import NoDataError
from onepin_etl.sql import identifier, literal, literals

TABLES = ("workflows", "runs", "run_steps")


@dataclass(frozen=True)
class Filters:
    """Narrow every view to some workflows and to runs created at or after ``since``."""

    workflow_ids: Sequence[str] = ()
    since: str | None = None

    def runs_where(self) -> str:
        clauses = []
        if self.workflow_ids:
            clauses.append(f"workflow_id in ({literals(self.workflow_ids)})")
        if self.since:
            clauses.append(f"created_at >= {literal(self.since)}::timestamptz")
        return " and ".join(clauses)


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
    return {t: f"{identifier(dataset)}.{identifier(t)}" for t in TABLES}


def create_views(con: duckdb.DuckDBPyConnection, tables: dict[str, str], *,
                 filters: Filters | None = None, schema: str | None = None) -> None:
    """Create the analysis views over ``tables`` (temporary unless a schema is given)."""
    kind = "view" if schema else "temp view"
    for name, sql in view_definitions(tables, filters=filters, schema=schema).items():
        con.execute(f"create or replace {kind} {name} as {sql}")


def persist_views(con: duckdb.DuckDBPyConnection, dataset: str) -> None:
    """Create (or replace) the views inside a loaded DuckDB dataset or DuckLake for analysts'
    SQL, and comment every table, view and column (:mod:`onepin_etl.comments`)."""
    create_views(con, dataset_tables(dataset), schema=identifier(dataset))
    comments.comment_duckdb(con, dataset)


def latest_sql(table: str, files: str) -> str:
    """The latest loaded version of each row of ``table`` in ``files`` (a ``read_parquet``
    argument: a quoted glob or a list), as readers of an append-only Parquet folder see it."""
    return (LATEST_STEPS if table == "run_steps" else LATEST_BY_ID).format(files=files)


def loaded_tables(con: duckdb.DuckDBPyConnection, dataset: str) -> set[str]:
    """The tables of ``dataset`` in the connection's current database (a DuckDB file, a lake,
    an attached PostgreSQL database)."""
    return {r[0] for r in con.execute(
        "select table_name from information_schema.tables "
        "where table_catalog = current_database() and table_schema = ?", [dataset]).fetchall()}


def require_tables(con: duckdb.DuckDBPyConnection, dataset: str, place: str) -> None:
    """Refuse a dataset without the loaded tables, naming the place."""
    if not set(TABLES) <= loaded_tables(con, dataset):
        raise NoDataError(f"{place} has no loaded Onepin data in dataset {dataset!r}")
