"""The data dictionary as comments in the destination, so a SQL client (DBeaver, the DuckDB
UI, ``psql``, Metabase) shows what each table, view and column means.

Written after every load, once the views exist (views are re-created, which drops their
comments), for every relation of ours in the dataset and every column it has now: a
``result__*`` column a load just added gets its family's description. Only comments that differ
from the ones in place are written, in one transaction.

DuckDB takes comments on tables, views, and view columns; a DuckLake keeps those on tables,
their columns and views, but refuses them on view columns ("Cannot comment on columns for entry
... - it is not a table", DuckLake 1.4.4), so there view columns go without. PostgreSQL takes
them all. Parquet has no place for them: ``docs/data-dictionary.md`` and ``onepin-etl schema``
serve its readers.
"""

from __future__ import annotations

from typing import Any

import duckdb

from onepin_etl import descriptions

# (relation, None) -> the relation's comment; (relation, column) -> the column's.
Comments = dict[tuple[str, str | None], str | None]


def comment_duckdb(con: duckdb.DuckDBPyConnection, dataset: str) -> int:
    """Comment the dataset's tables, views and columns in a DuckDB database or DuckLake (the
    connection's current database); returns how many comments were written."""
    found: Comments = {}
    kinds: dict[str, str] = {}
    for name, kind, comment in con.execute("""
            select table_name, 'table', comment from duckdb_tables()
            where database_name = current_database() and schema_name = $1
            union all
            select view_name, 'view', comment from duckdb_views()
            where database_name = current_database() and schema_name = $1""",
                                           [dataset]).fetchall():
        kinds[name] = kind
        found[(name, None)] = comment
    for name, column, comment in con.execute("""
            select table_name, column_name, comment from duckdb_columns()
            where database_name = current_database() and schema_name = ?""",
                                             [dataset]).fetchall():
        found[(name, column)] = comment
    (lake,), = con.execute("select count(*) from duckdb_databases() "
                           "where database_name = current_database() and type = 'ducklake'"
                           ).fetchall()
    sql = statements(dataset, kinds, found, view_columns=not lake)
    if sql:
        con.execute("begin transaction")
        try:
            for statement in sql:
                con.execute(statement)
        except BaseException:
            con.execute("rollback")
            raise
        con.execute("commit")
    return len(sql)


_POSTGRES_COMMENTS = """
select c.relname, case c.relkind when 'v' then 'view' else 'table' end,
       a.attname, obj_description(c.oid, 'pg_class'), col_description(c.oid, a.attnum)
from pg_class c
join pg_namespace n on n.oid = c.relnamespace
join pg_attribute a on a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped
where n.nspname = %s and c.relkind in ('r', 'p', 'v')
"""


def comment_postgres(sql_client: Any, dataset: str) -> int:
    """Comment the dataset's tables, views and columns through dlt's PostgreSQL client (in the
    caller's transaction); returns how many comments were written."""
    found: Comments = {}
    kinds: dict[str, str] = {}
    for name, kind, column, table_comment, column_comment in sql_client.execute_sql(
            _POSTGRES_COMMENTS, dataset) or []:
        kinds[name] = kind
        found[(name, None)] = table_comment
        found[(name, column)] = column_comment
    sql = statements(dataset, kinds, found, view_columns=True)
    for statement in sql:
        sql_client.execute_sql(statement)
    return len(sql)


def statements(dataset: str, kinds: dict[str, str], found: Comments, *,
               view_columns: bool) -> list[str]:
    """``COMMENT ON`` statements for the comments in ``found`` that differ from the
    dictionary's, for the relations of ours among ``kinds`` (name -> ``table`` or ``view``)."""
    sql = []
    for (name, column), comment in sorted(found.items(), key=lambda item: (item[0][0],
                                                                           item[0][1] or "")):
        relation = descriptions.table_description(name)
        if not relation:
            continue  # not ours
        target = f"{ident(dataset)}.{ident(name)}"
        if column is None:
            wanted, what = relation, f"{kinds[name]} {target}"
        elif kinds[name] == "view" and not view_columns:
            continue
        else:
            wanted = descriptions.column_description(name, column)
            what = f"column {target}.{ident(column)}"
        if comment != wanted:
            sql.append(f"comment on {what} is {literal(wanted)}")
    return sql


def ident(name: str) -> str:
    """A quoted SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


def literal(text: str) -> str:
    """A SQL string literal (standard quoting: DuckDB and PostgreSQL alike)."""
    return "'" + text.replace("'", "''") + "'"
