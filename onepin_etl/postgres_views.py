"""The analysis views inside PostgreSQL, for analysts' SQL and BI tools there.

There is one SQL for the views, DuckDB's (:mod:`onepin_etl.analysis_sql`); sqlglot translates it
(``quantile_cont`` to ``percentile_cont … within group``, integer division to a float division,
…) and refuses what it cannot translate. ``tests/test_shared_destinations.py`` checks that these
views give DuckDB's numbers.
"""

from __future__ import annotations

from typing import Any

import sqlglot
from sqlglot.errors import ErrorLevel

from onepin_etl import comments
from onepin_etl.analysis import dataset_tables, view_definitions
from onepin_etl.postgres_ddl import lock_ddl


def statements(dataset: str) -> list[str]:
    """The SQL that (re)creates the views in ``dataset``, in PostgreSQL's dialect. A view is
    dropped first: PostgreSQL cannot replace a view whose columns changed type."""
    schema = f'"{dataset}"'
    sql = []
    for name, query in view_definitions(dataset_tables(dataset), schema=schema).items():
        translated = sqlglot.transpile(query, read="duckdb", write="postgres",
                                       unsupported_level=ErrorLevel.RAISE)[0]
        sql.append(f"drop view if exists {name} cascade")
        sql.append(f"create view {name} as {translated}")
    return sql


def persist(sql_client: Any, dataset: str) -> None:
    """(Re)create the views through dlt's PostgreSQL client, in one transaction that waits for
    any other loader's DDL (views of two shards are created one shard after the other)."""
    with sql_client.begin_transaction():
        lock_ddl(sql_client)
        for statement in statements(dataset):
            sql_client.execute_sql(statement)
        comments.comment_postgres(sql_client, dataset)  # views re-created lost theirs
