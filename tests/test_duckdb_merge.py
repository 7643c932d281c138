"""The DuckDB destination's cheaper de-duplication of staged rows (``duckdb_merge.py``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dlt
import duckdb
import pytest

from onepin_etl.destinations import duckdb_destination
from onepin_etl.destinations.duckdb_merge import KeyDedupDuckDbClient, KeyDedupMergeJob
from onepin_source.hints import RUN_STEPS_TABLE

STAGED = [  # (run_id, id, value): a key staged twice identically, a key twice with other values
    ("r1", "s1", "a"), ("r1", "s1", "a"), ("r1", "s2", "b"),
    ("r2", "s1", "c"), ("r2", "s1", "d"), ("r2", "s3", None),
]


@pytest.fixture
def staged() -> Iterator[duckdb.DuckDBPyConnection]:
    with duckdb.connect() as con:
        con.execute("create table staged (run_id text, id text, value text)")
        con.executemany("insert into staged values (?, ?, ?)", STAGED)
        yield con


def test_one_row_per_key_then_the_condition(staged: duckdb.DuckDBPyConnection) -> None:
    select = KeyDedupMergeJob.gen_select_from_dedup_sql(
        "staged", ["run_id", "id"], ["run_id", "id", "value"])
    rows = staged.sql(select + " order by all").fetchall()
    assert rows == [("r1", "s1", "a"), ("r1", "s2", "b"), ("r2", "s1", "c"), ("r2", "s3", None)]

    # dlt's condition (a hard-delete filter) applies to the row kept for each key
    kept = KeyDedupMergeJob.gen_select_from_dedup_sql(
        "staged", ["run_id", "id"], ["run_id", "id"], condition="value is not null")
    assert staged.sql(kept + " order by all").fetchall() == [("r1", "s1"), ("r1", "s2"),
                                                            ("r2", "s1")]


def test_dedup_sort_and_skip_dedup_keep_dlts_sql(staged: duckdb.DuckDBPyConnection) -> None:
    by_value = KeyDedupMergeJob.gen_select_from_dedup_sql(
        "staged", ["run_id", "id"], ["run_id", "id", "value"], dedup_sort=("value", "desc"))
    assert "ROW_NUMBER()" in by_value
    assert ("r2", "s1", "d") in staged.sql(by_value).fetchall()  # the highest value stays

    everything = KeyDedupMergeJob.gen_select_from_dedup_sql(
        "staged", ["run_id", "id"], ["run_id", "id", "value"], skip_dedup=True)
    assert len(staged.sql(everything).fetchall()) == len(STAGED)


def _steps(rows: list[dict[str, Any]]) -> Any:
    @dlt.resource(**RUN_STEPS_TABLE)
    def run_steps() -> Iterator[list[dict[str, Any]]]:
        yield rows

    return run_steps()


def test_merge_keeps_one_row_per_key_and_replaces_runs(tmp_path: Path) -> None:
    database = tmp_path / "steps.duckdb"
    pipeline = dlt.pipeline("merge_test", pipelines_dir=str(tmp_path / "pipelines"),
                            destination=duckdb_destination(database), dataset_name="onepin")
    step = {"workflow_id": "w", "status": "completed"}
    pipeline.run(_steps([{**step, "run_id": "r1", "id": "s1"}, {**step, "run_id": "r1", "id": "s1"},
                         {**step, "run_id": "r1", "id": "s2"},
                         {**step, "run_id": "r2", "id": "s1"}]))
    # run r1 again, now with one step: the merge key replaces the run's steps as a unit
    pipeline.run(_steps([{**step, "run_id": "r1", "id": "s3", "status": "failed"}]))

    with duckdb.connect(str(database), read_only=True) as con:
        rows = con.sql("select run_id, id, status from onepin.run_steps order by all").fetchall()
    assert rows == [("r1", "s3", "failed"), ("r2", "s1", "completed")]
    # the same destination as dlt's to the pipeline's state, config sections and dlt.attach
    assert pipeline.state["destination_type"] == dlt.destinations.duckdb().destination_type
    assert pipeline.destination.destination_name == "duckdb"
    assert isinstance(pipeline.destination_client(), KeyDedupDuckDbClient)


def test_the_capabilities_are_resolved_once_and_each_caller_gets_a_copy(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """dlt asks ~36 times a package; each answer is dlt's own duckdb factory's, from one
    resolution of the configuration per destination (per load), and a caller that sets a field
    on its copy changes nobody else's."""
    destination = duckdb_destination(tmp_path / "x.duckdb")
    resolved: list[Any] = []
    resolve = type(destination).configuration

    def counted(self: Any, *args: Any, **kwargs: Any) -> Any:
        resolved.append(args)
        return resolve(self, *args, **kwargs)

    monkeypatch.setattr(type(destination), "configuration", counted)
    naming = dlt.Schema("onepin").naming
    first, again = destination.capabilities(), destination.capabilities()
    named = [destination.capabilities(naming=naming) for _ in range(3)]
    assert len(resolved) == 2  # once without a naming convention, once with the schema's
    plain = dlt.destinations.duckdb(credentials=str(tmp_path / "x.duckdb"))
    assert dict(first) == dict(again) == dict(plain.capabilities())
    assert dict(named[0]) == dict(plain.capabilities(naming=naming))
    assert first is not again and named[0] is not named[1]
    first.preferred_loader_file_format = "csv"
    assert destination.capabilities().preferred_loader_file_format == "insert_values"
    assert dict(duckdb_destination(tmp_path / "x.duckdb").capabilities()) == dict(again)
    assert len(resolved) == 3  # a new destination (the next load) resolves again
