"""The dictionary in the shared destinations, against real servers: PostgreSQL comments every
table, view and column (also a ``result__*`` column an incremental load adds), a DuckLake
every table, column and view (it refuses comments on view columns), ``onepin-etl schema``
reads both, and every query of the SQL cookbook runs in PostgreSQL as sqlglot translates it."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from onepin_etl import remote
from onepin_sim import Simulator
from tests import cookbook
from tests.helpers import Cli, invoke_cli
from tests.shared.conftest import Shared

pytestmark = pytest.mark.shared

_PG_OBJECTS = """
select count(*) filter (where c.relkind = 'r'),
       count(nullif(obj_description(c.oid, 'pg_class'), '')) filter (where c.relkind = 'r'),
       count(*) filter (where c.relkind = 'v'),
       count(nullif(obj_description(c.oid, 'pg_class'), '')) filter (where c.relkind = 'v')
from pg_class c join pg_namespace n on n.oid = c.relnamespace
where n.nspname = 'onepin' and c.relkind in ('r', 'v')
"""
_PG_COLUMNS = """
select count(*), count(nullif(col_description(c.oid, a.attnum), '')),
       count(*) filter (where a.attname like 'result\\_\\_%%')
from pg_class c join pg_namespace n on n.oid = c.relnamespace
join pg_attribute a on a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped
where n.nspname = 'onepin' and c.relkind in ('r', 'v')
"""


def postgres_counts(shared: Shared) -> tuple[tuple[int, ...], tuple[int, ...]]:
    with shared.postgres.cursor(shared.database) as cur:
        cur.execute(_PG_OBJECTS)
        objects = cur.fetchone()
        cur.execute(_PG_COLUMNS)
        columns = cur.fetchone()
    return objects, columns


def test_postgres_comments_every_table_view_and_column(sim: Simulator, cli: Cli,
                                                       shared: Shared) -> None:
    cli("load", "--destination", "postgres", "--no-results")
    objects, (columns, commented, results) = postgres_counts(shared)
    assert objects == (6, 6, 5, 5)
    assert columns == commented and results == 0

    sim.advance(3 * 3600)
    cli("load", "--destination", "postgres")  # new result__* columns
    objects, (columns, commented, results) = postgres_counts(shared)
    assert objects == (6, 6, 5, 5)
    assert columns == commented and results >= 10
    with shared.postgres.cursor(shared.database) as cur:
        cur.execute("select col_description(attrelid, attnum) from pg_attribute "
                    "where attrelid = 'onepin.node_stats'::regclass and attname = 'p95_ms'")
        assert cur.fetchone() == ("95th percentile duration_ms of completed steps "
                                  "(interpolated).",)
    schema = cli("schema", "--destination", "postgres").output
    assert "| `result__records_processed` | BIGINT | result.records_processed of the step" \
        in schema


def test_the_lake_keeps_comments_except_on_view_columns(cli: Cli, shared: Shared) -> None:
    cli("load", "--destination", "ducklake")
    with remote.read_ducklake("onepin") as con:
        where = "where database_name = current_database() and schema_name = 'onepin'"
        tables = con.execute(f"select count(*), count(comment) from duckdb_tables() {where}"
                             ).fetchall()
        views = con.execute(f"select count(*), count(comment) from duckdb_views() {where}"
                            ).fetchall()
        columns = con.execute(
            "select t.table_name is not null, count(*), count(c.comment) "
            "from duckdb_columns() c left join duckdb_tables() t using (database_name, "
            f"schema_name, table_name) {where.replace('where ', 'where c.')} group by all "
            "order by all").fetchall()
    assert tables == [(6, 6)] and views == [(5, 5)]
    (view_columns, none), (table_columns, all_of_them) = columns[0][1:], columns[1][1:]
    assert none == 0 and view_columns > 0 and all_of_them == table_columns > 0
    assert "### run_steps" in cli("schema", "--destination", "ducklake").output


def test_every_cookbook_query_runs_in_postgres(workdir: Path, shared: Shared) -> None:
    with Simulator(cookbook.WORLD) as sim:
        load = invoke_cli(sim, workdir)
        load("load", "--destination", "postgres")
        load("load")
    with shared.postgres.cursor(shared.database) as cur, \
            duckdb.connect("onepin_etl.duckdb", read_only=True) as reference:
        cur.execute("set search_path to onepin; set timezone to 'UTC'")
        reference.execute("use onepin; set TimeZone = 'UTC'")
        for number, query in cookbook.queries().items():
            cur.execute(cookbook.postgres(query))
            columns = [c.name for c in cur.description]
            rows = cur.fetchall()
            assert columns == cookbook.COLUMNS[number], f"question {number}"
            assert rows, f"question {number} returned no rows"
            assert len(rows) == len(reference.execute(query).fetchall()), f"question {number}"
