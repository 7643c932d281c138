"""Every table, view and column of a load carries its description as a comment, also a
``result__*`` column an incremental load adds; ``onepin-etl schema`` prints the dictionary and
``docs/data-dictionary.md`` is its output for the demo."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
from rich.console import Console

from onepin_etl import comments, descriptions
from onepin_etl.demo import run_demo
from onepin_sim import Simulator
from tests.helpers import ROOT, Cli

DICTIONARY = ROOT / "docs" / "data-dictionary.md"
OURS = {"workflows", "runs", "run_steps", "_dlt_loads", "_dlt_version", "_dlt_pipeline_state"}
VIEWS = {"step_durations", "node_stats", "node_type_stats", "workflow_summary", "workflow_daily"}


def comment_counts(db: Path) -> dict[str, tuple[int, int]]:
    """(objects, objects with a non-empty comment) for tables, views and columns."""
    where = "where database_name = current_database() and schema_name = 'onepin'"
    with duckdb.connect(str(db), read_only=True) as con:
        return {kind: con.execute(f"select count(*), count(nullif(comment, '')) from {table} "
                                  f"{where}").fetchall()[0]
                for kind, table in (("tables", "duckdb_tables()"), ("views", "duckdb_views()"),
                                    ("columns", "duckdb_columns()"))}


def columns(db: Path) -> list[tuple[str, str, str]]:
    with duckdb.connect(str(db), read_only=True) as con:
        return con.execute("select table_name, column_name, comment from duckdb_columns() "
                           "where schema_name = 'onepin' order by all").fetchall()


def test_a_load_comments_every_table_view_and_column(sim: Simulator, cli: Cli,
                                                     workdir: Path) -> None:
    db = workdir / "onepin_etl.duckdb"
    cli("load", "--no-results")
    before = columns(db)
    assert not [c for t, c, _ in before if c.startswith("result__")]
    counts = comment_counts(db)
    assert counts == {"tables": (6, 6), "views": (5, 5), "columns": (len(before),) * 2}
    assert all(descriptions.is_described(t, c) for t, c, _ in before)

    sim.advance(3 * 3600)
    cli("load")  # new runs' steps come with results: new result__* columns
    after = columns(db)
    added = sorted(c for t, c, _ in after if t == "run_steps" and c.startswith("result__"))
    assert "result__records_processed" in added and len(added) >= 10
    assert comment_counts(db) == {"tables": (6, 6), "views": (5, 5),
                                  "columns": (len(after),) * 2}
    comment = dict(((t, c), text) for t, c, text in after)
    assert comment[("run_steps", "result__records_processed")] == (
        "result.records_processed of the step: a key of its result payload (node-specific "
        "output, flattened: recordsProcessed -> result__records_processed, nested keys joined "
        "with __, lists kept as JSON).")
    assert comment[("runs", "active_duration_ms")] == descriptions.column_description(
        "runs", "active_duration_ms")
    assert comment[("node_stats", "failure_rate")] == (
        "failed / (completed + failed), 0 to 1; null without such steps.")


def test_comments_already_in_place_are_not_written_again(cli: Cli, workdir: Path) -> None:
    cli("load")
    with duckdb.connect(str(workdir / "onepin_etl.duckdb")) as con:
        assert comments.comment_duckdb(con, "onepin") == 0
        con.execute('comment on column onepin.runs.duration_ms is null')
        assert comments.comment_duckdb(con, "onepin") == 1


def test_names_and_texts_are_quoted() -> None:
    assert comments.statements("on'e", {'we"ird': "table"}, {('we"ird', None): None},
                               view_columns=True) == []  # not one of ours: left alone
    found: comments.Comments = {("runs", None): None, ("runs", 'odd"name'): None}
    assert comments.statements("onepin", {"runs": "table"}, found, view_columns=True) == [
        f"comment on table \"onepin\".\"runs\" is "
        f"{comments.literal(descriptions.table_description('runs'))}",
        "comment on column \"onepin\".\"runs\".\"odd\"\"name\" is 'A field the Onepin API sent "
        "that this dictionary does not describe yet (odd\"name); loaded as sent.'"]
    assert comments.literal("it's") == "'it''s'"


def test_schema_prints_the_dictionary(cli: Cli, workdir: Path) -> None:
    cli("load")
    found = json.loads(cli("schema", "--format", "json").output)
    assert [r["name"] for r in found] == ["workflows", "runs", "run_steps", "_dlt_loads",
                                          "_dlt_version", "_dlt_pipeline_state",
                                          "step_durations", "node_stats", "node_type_stats",
                                          "workflow_summary", "workflow_daily"]
    runs = next(r for r in found if r["name"] == "runs")
    assert runs["kind"] == "table"
    assert runs["columns"][:2] == [
        {"name": "id", "type": "VARCHAR", "description": "Run id (UUID)."},
        {"name": "workflow_id", "type": "VARCHAR",
         "description": "The run's workflow (workflows.id)."}]
    assert all(c["description"] for r in found for c in r["columns"])
    cli("load", "--destination", "parquet", "--parquet-dir", "pq")
    parquet = json.loads(cli("schema", "--destination", "parquet", "--parquet-dir", "pq",
                             "--format", "json").output)
    assert [r["name"] for r in parquet] == [r["name"] for r in found
                                            if not r["name"].startswith("_dlt")]


def test_schema_without_data_says_what_to_do(cli: Cli) -> None:
    result = cli("schema", "--duckdb-path", "nothing.duckdb", expect=2)
    assert result.output.strip() == ("error: nothing.duckdb does not exist: check "
                                     "--duckdb-path, or load it first with 'onepin-etl load'")


def test_the_data_dictionary_is_the_demos(cli: Cli, workdir: Path) -> None:
    with open(workdir / "demo.log", "w", encoding="utf-8") as log:
        db = run_demo(workdir / "demo", Console(file=log))
    assert all(descriptions.is_described(t, c) for t, c, _ in columns(db)), \
        "a column without a description: add it to onepin_source/hints.py"
    printed = cli("schema", "--duckdb-path", str(db), "--format", "markdown").output
    assert printed == DICTIONARY.read_text(encoding="utf-8"), (
        "docs/data-dictionary.md is out of date: make demo, then .venv/bin/onepin-etl schema "
        "--duckdb-path demo_output/onepin_demo.duckdb > docs/data-dictionary.md")


def test_the_health_page_explains_its_columns(cli: Cli, workdir: Path) -> None:
    cli("load")
    cli("report", "--format", "html", "--output", "page.html")
    page = (workdir / "page.html").read_text(encoding="utf-8")
    assert ('<th title="failed / (completed + failed), 0 to 1; null without such steps.">'
            "failure_rate</th>") in page
    assert "<th>p95_s</th>" in page  # a computed label has no column of its own to explain
