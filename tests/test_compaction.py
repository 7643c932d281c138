"""``onepin-etl compact``: a Parquet folder rewritten to one file per table gives the same
answers, later loads still win, and a running load keeps it out."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from onepin_etl import analysis, lock
from onepin_sim import Simulator
from tests.helpers import SMALL

VIEWS = (("node_stats", "workflow_id, node_id"), ("node_type_stats", "node_type"),
         ("workflow_daily", "workflow_id, day"), ("workflow_summary", "workflow_id"),
         ("step_durations", "step_id"))


def answers(**where: Any) -> dict[str, list[dict[Any, Any]]]:
    return {view: analysis.query(f"select * from {view} order by {order}", **where)
            .to_dict("records") for view, order in VIEWS}


def parquet_files(workdir: Path, table: str) -> list[Path]:
    return sorted((workdir / "pq" / "onepin" / table).glob("*.parquet"))


def test_compaction_keeps_every_answer_and_later_loads_win(sim: Simulator, cli: Any,
                                                          workdir: Path) -> None:
    parquet = ("--destination", "parquet", "--parquet-dir", "pq")
    for _ in range(3):
        cli("load", *parquet)
        cli("load")
        sim.advance(5 * 3600)
    assert len(parquet_files(workdir, "run_steps")) == 3
    before = answers(parquet_dir=workdir / "pq")
    result = cli("compact", "--parquet-dir", "pq", "--pipelines-dir", "pipelines")
    runs = sum(r["total_runs"] for r in before["workflow_summary"])
    assert result.output.splitlines() == [
        f"workflows: 3 files -> 1 ({SMALL.workflows} rows)",
        f"runs: 3 files -> 1 ({runs} rows)",
        f"run_steps: 3 files -> 1 ({len(before['step_durations'])} rows)"]
    assert all(len(parquet_files(workdir, t)) == 1 for t in ("workflows", "runs", "run_steps"))
    assert answers(parquet_dir=workdir / "pq") == before
    # A load after the compaction: its newer versions win, as they did before
    cli("load", *parquet)
    cli("load")
    assert answers(parquet_dir=workdir / "pq") == answers(
        duckdb_path=workdir / "onepin_etl.duckdb")


def test_compaction_waits_for_a_running_load(cli: Any, workdir: Path) -> None:
    cli("load", "--destination", "parquet", "--parquet-dir", "pq")
    paths = lock.lock_paths(workdir / "pipelines", "onepin_parquet", workdir / "pq")
    with lock.held(paths, "onepin_parquet"):
        busy = cli("compact", "--parquet-dir", "pq", "--pipelines-dir", "pipelines", expect=7)
    assert "pipeline 'onepin_parquet' is being loaded by process" in busy.output
    assert len(parquet_files(workdir, "run_steps")) == 1  # untouched


def test_compaction_needs_a_local_parquet_folder(cli: Any) -> None:
    result = cli("compact", "--parquet-dir", "s3://bucket/onepin", expect=2)
    assert result.output == "error: compaction works on a local Parquet folder, not a bucket\n"
