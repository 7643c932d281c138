"""The Arrow fast path gives the same tables as dlt's plain dict path, and concurrency changes
nothing: same rows, same columns and types, same incremental state."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dlt
import duckdb
import pyarrow as pa
import pytest

from onepin_etl.pipeline import configure_dlt
from onepin_sim import Simulator, WorldConfig
from onepin_source.arrow_rows import ArrowRows
from onepin_source.batches import RowBatches, RunRef, regroup, run_refs
from onepin_source.errors import ConfigError
from onepin_source.hints import RUN_STEPS_TABLE, STEP_HINTS
from onepin_source.shaping import step_row

WF, RUN = "wf-1", "run-1"


def _step(i: int, **fields: Any) -> dict[str, Any]:
    step = {"id": f"s{i:03d}", "node_id": f"n{i % 3}", "node_type": "operator_translator",
            "status": "completed", "iteration": 1,
            "started_at": "2026-01-05T00:00:00.000Z", "completed_at": "2026-01-05T00:00:01.500Z"}
    step.update(fields)
    return step


# Each batch is one dlt item. Later batches see the types the earlier ones fixed.
TRICKY_BATCHES: list[list[dict[str, Any]]] = [
    [
        _step(1, result={"recordsProcessed": 120, "model": {"name": "gpt-5", "v": 2},
                         "warnings": ["slow"], "score": 0.5, "passed": True}),
        _step(2, result={"recordsProcessed": "1.2k", "model": {"name": "gpt-5-mini"},
                         "warnings": [], "score": 1, "passed": False}),
        _step(3, result={"recordsProcessed": "77", "seenAt": "2026-01-05T10:00:00+02:00",
                         "sample": "안녕 🎧 nul"}),
        _step(4, status="mystery", iteration=None, started_at=None, completed_at=None,
              result=["a", "list", 1]),
        _step(5, result="just text", error="Provider timeout: \u00fcml\u00e4ut"),
        _step(6, started_at="2026-01-05T01:00:00+05:30", completed_at="2026-01-04T19:30:02Z",
              result={"empty": {}, "note": None}),
        # as many ints as strings: the first value's type wins in both paths
        _step(12, result={"recordsProcessed": 4}),
    ],
    [
        _step(7, iteration="2", result={"recordsProcessed": 5, "score": "high",
                                        "seenAt": "not a time", "passed": "yes"}),
        _step(8, started_at="yesterday", result={"records_processed": 9, "sample": 12}),
        _step(9, result={"recordsProcessed": 3.5, "big": 2**40, "model": "flat now"}),
        _step(10, result={"transcript": "x" * 1_000_000}),
    ],
    [
        _step(11, result={"brandNew": "2026-02-01T00:00:00Z", "recordsProcessed": "2.0k"}),
    ],
]


def _pipeline(tmp_path: Path, name: str) -> dlt.Pipeline:
    configure_dlt()  # Arrow rows get _dlt_load_id and _dlt_id, as in every load of the app
    return dlt.pipeline(pipeline_name=name, pipelines_dir=str(tmp_path / "pipelines"),
                        destination=dlt.destinations.duckdb(str(tmp_path / f"{name}.duckdb")),
                        dataset_name="onepin")


def _load_both(tmp_path: Path, batches: list[list[dict[str, Any]]],
               runs: int = 1) -> tuple[Path, Path]:
    """Load ``batches`` through the dict path and the Arrow path, ``runs`` times each."""
    for name in ("dicts", "arrow"):
        pipeline = _pipeline(tmp_path, name)
        for _ in range(runs):
            shaper = RowBatches(name)

            @dlt.resource(**RUN_STEPS_TABLE)
            def steps() -> Any:
                for batch in batches:
                    yield shaper.steps([step_row(s, WF, RUN) for s in batch])  # noqa: B023

            pipeline.run(steps())
    return tmp_path / "dicts.duckdb", tmp_path / "arrow.duckdb"


def _columns(db: Path, table: str) -> dict[str, str]:
    with duckdb.connect(str(db), read_only=True) as con:
        return dict(con.sql("select column_name, data_type from information_schema.columns "
                            f"where table_schema = 'onepin' and table_name = '{table}'"
                            ).fetchall())


def _rows(db: Path, table: str, columns: list[str]) -> list[tuple[Any, ...]]:
    with duckdb.connect(str(db), read_only=True) as con:
        return con.sql(f"select {', '.join(columns)} from onepin.{table} order by id").fetchall()


def assert_same_tables(plain: Path, fast: Path, tables: tuple[str, ...]) -> None:
    for table in tables:
        columns = _columns(plain, table)
        assert _columns(fast, table) == columns, f"{table}: columns or types differ"
        data = sorted(c for c in columns if c not in ("_dlt_id", "_dlt_load_id"))
        assert _rows(fast, table, data) == _rows(plain, table, data), f"{table}: values differ"
        for db in (plain, fast):
            with duckdb.connect(str(db), read_only=True) as con:
                (n, ids, loads), = con.sql("select count(*), count(distinct _dlt_id), "
                                           f"count(_dlt_load_id) from onepin.{table}").fetchall()
            assert n == ids == loads > 0, f"{db.name}: dlt's row and load ids on every row"


def test_tricky_rows_give_identical_tables_through_both_paths(tmp_path: Path) -> None:
    plain, fast = _load_both(tmp_path, TRICKY_BATCHES)
    assert_same_tables(plain, fast, ("run_steps",))
    columns = _columns(fast, "run_steps")
    # what the dict normalizer decided, and the fast path therefore too
    assert columns["result__records_processed"] == "BIGINT"
    assert columns["result__records_processed__v_text"] == "VARCHAR"  # "1.2k" kept as text
    assert columns["result__seen_at"] == "TIMESTAMP WITH TIME ZONE"  # dlt's iso detection
    assert columns["result__seen_at__v_text"] == "VARCHAR"
    assert columns["started_at__v_text"] == "VARCHAR"  # "yesterday": raw value preserved
    assert columns["result__warnings"] == "JSON" and columns["result"] == "JSON"
    assert columns["result__model"] == "VARCHAR"  # a dict that became a string later
    rows = {r[0]: r[1:] for r in _rows(fast, "run_steps", [
        "id", "result__records_processed", "result__records_processed__v_text",
        "result__score", "result__score__v_text", "status", "started_at__v_text",
        "length(result__transcript)", "result__sample"])}
    assert rows["s002"][:2] == (None, "1.2k") and rows["s003"][:2] == (77, None)
    assert rows["s001"][2] == 0.5 and rows["s002"][2] == 1.0 and rows["s007"][3] == "high"
    assert rows["s004"][4] == "mystery" and rows["s008"][5] == "yesterday"
    assert rows["s010"][6] == 1_000_000
    assert rows["s003"][7] == "안녕 🎧 nul" and rows["s008"][7] == "12"


def test_nul_characters_survive_the_fast_path_only(tmp_path: Path) -> None:
    """dlt's dict path writes DuckDB SQL literals, which cannot hold NUL: it drops them."""
    text = "before\x00after"
    plain, fast = _load_both(tmp_path, [[_step(1, error=text, result={"sample": text})]])
    assert _rows(fast, "run_steps", ["error", "result__sample"]) == [(text, text)]
    assert _rows(plain, "run_steps", ["error", "result__sample"]) == [("beforeafter",) * 2]


def test_second_load_keeps_the_types_of_the_first_in_both_paths(tmp_path: Path) -> None:
    plain, fast = _load_both(tmp_path, TRICKY_BATCHES, runs=2)
    assert_same_tables(plain, fast, ("run_steps",))
    assert len(_rows(fast, "run_steps", ["id"])) == sum(len(b) for b in TRICKY_BATCHES)


def test_text_first_column_takes_numbers_as_text_in_both_paths(tmp_path: Path) -> None:
    batches = [[_step(1, result={"recordsProcessed": "1.2k"}),
                _step(2, result={"recordsProcessed": 40})]]
    plain, fast = _load_both(tmp_path, batches)
    assert_same_tables(plain, fast, ("run_steps",))
    assert _rows(fast, "run_steps", ["result__records_processed"]) == [("1.2k",), ("40",)]


def test_a_new_column_takes_the_type_most_of_its_first_batch_has(tmp_path: Path) -> None:
    """The one difference from dlt's dict path, on purpose: dlt types a new column by its first
    value; the Arrow path by the type most values of the batch have, so loaders that see the
    rows in another order (shards, concurrent fetches) type the column alike."""
    batch = [_step(1, result={"recordsProcessed": "1.2k"}),
             _step(2, result={"recordsProcessed": 40}), _step(3, result={"recordsProcessed": 7})]
    plain, fast = _load_both(tmp_path, [batch])
    assert _columns(plain, "run_steps")["result__records_processed"] == "VARCHAR"
    assert _columns(fast, "run_steps")["result__records_processed"] == "BIGINT"
    assert _rows(fast, "run_steps", ["result__records_processed",
                                     "result__records_processed__v_text"]) == \
        [(None, "1.2k"), (40, None), (7, None)]
    for rows in (batch, batch[::-1]):
        shaper = ArrowRows("run_steps", STEP_HINTS)
        shaper._bind(dlt.Schema("onepin"))
        table = shaper.table([step_row(s, WF, RUN) for s in rows])
        assert table.meta.hints["columns"]["result__records_processed__v_text"]["variant"]
        assert table.data.schema.field("result__records_processed").type == pa.int64()


def test_arrow_rows_hint_json_and_variant_columns_once() -> None:
    shaper = ArrowRows("run_steps", STEP_HINTS)
    schema = dlt.Schema("onepin")
    shaper._bind(schema)
    first = shaper.table([{"id": "a", "result__tags": ["x"], "result__n": 1},
                          {"id": "b", "result__n": "lots"}])
    hints = first.meta.hints["columns"]
    assert hints["result__tags"]["data_type"] == "json"
    assert hints["result__n__v_text"]["variant"] is True
    assert first.data.column("result__n").to_pylist() == [1, None]
    again = shaper.table([{"id": "c", "result__tags": ["y"], "result__n": "more"}])
    assert isinstance(again, pa.Table), "hints go out with the first batch only"
    assert again.column_names == ["id", "result__tags", "result__n__v_text"]


def test_run_refs_read_every_batch_shape() -> None:
    rows = [{"workflow_id": "w", "id": "r1"}, {"workflow_id": "w", "id": "r2"}]
    refs = run_refs(rows)
    assert [(r.workflow_id, r.run_id) for r in refs] == [("w", "r1"), ("w", "r2")]
    assert run_refs(pa.Table.from_pylist(rows)) == refs  # same fingerprints from Arrow rows
    assert run_refs(rows[0]) == refs[:1]
    assert all(isinstance(r, RunRef) and r.open for r in refs)  # no status: may change


def test_regroup_makes_batches_of_at_least_the_size_and_keeps_order() -> None:
    assert list(regroup([[1, 2], [3], [4, 5, 6, 7], [8]], 3)) == [[1, 2, 3], [4, 5, 6, 7], [8]]
    assert list(regroup([], 3)) == [] and list(regroup([[1]], 3)) == [[1]]


def test_unknown_row_format_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="row_format must be one of arrow, dicts"):
        RowBatches("pandas")


DRIFT_WORLD = WorldConfig(seed=3, workflows=4, runs=30, nodes=9)


def _cli_load(cli: Any, workdir: Path, name: str, *extra: str) -> None:
    cli("load", "--duckdb-path", f"{name}.duckdb", "--pipeline-name", name, *extra)


@pytest.fixture
def drift_sim() -> Any:
    with Simulator(DRIFT_WORLD) as simulator:
        yield simulator


def test_both_paths_over_http_give_identical_tables_and_state(drift_sim: Simulator,
                                                              workdir: Path) -> None:
    from tests.helpers import invoke_cli

    cli = invoke_cli(drift_sim, workdir)
    variants = {"plain": ("--row-format", "dicts", "--concurrency", "1"),
                "fast": ("--row-format", "arrow"),
                "wide": ("--row-format", "arrow", "--concurrency", "32")}
    for name, flags in variants.items():
        _cli_load(cli, workdir, name, *flags)
    drift_sim.advance(6 * 3600)  # new runs, and open runs move on
    for name, flags in variants.items():
        _cli_load(cli, workdir, name, *flags)
    dbs = {name: workdir / f"{name}.duckdb" for name in variants}
    assert "result__records_processed__v_text" in _columns(dbs["fast"], "run_steps")
    for name in ("fast", "wide"):
        assert_same_tables(dbs["plain"], dbs[name], ("workflows", "runs", "run_steps"))
    states = {name: dlt.attach(name, pipelines_dir=str(workdir / "pipelines")).state
              ["sources"]["onepin"]["resources"]["runs"]["workflows"] for name in variants}
    # The same marks, each load's pass aside (named by when it began).
    states = {name: {w: {k: v for k, v in marks.items() if k != "pass"}
                     for w, marks in workflows.items()} for name, workflows in states.items()}
    assert states["plain"] == states["fast"] == states["wide"]
    assert len(states["fast"]) == DRIFT_WORLD.workflows
