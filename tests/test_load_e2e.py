"""End-to-end loads over real HTTP into real DuckDB and Parquet files, asserting exact data."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import duckdb

from onepin_sim import Simulator
from tests.helpers import (
    SMALL,
    TERMINAL,
    api_get,
    api_snapshot,
    assert_matches_api,
    ms_between,
    refetched_open_runs,
    rows_by_id,
    table,
    unsettled,
)


def test_first_load_equals_the_api(sim: Simulator, cli: Any, workdir: Path) -> None:
    result = cli("load")
    snap = api_snapshot(sim)
    assert f"Loaded {SMALL.workflows} workflows, {len(snap['runs'])} runs, " \
           f"{len(snap['steps'])} run_steps into onepin_etl.duckdb" in result.output
    db = workdir / "onepin_etl.duckdb"
    assert_matches_api(db, snap)


def test_result_payload_is_flattened_without_loss(sim: Simulator, cli: Any,
                                                  workdir: Path) -> None:
    cli("load")
    snap = api_snapshot(sim)
    db = workdir / "onepin_etl.duckdb"
    cols = ("result__records_processed, result__records_processed__v_text, "
            "result__source_file__name, result__metrics__wer, result__warnings, "
            "result__sample, result__model__name, length(result__transcript)")
    loaded = rows_by_id(db, "run_steps", cols)
    drifted = large = 0
    for step in snap["steps"].values():
        res = step["result"] or {}
        records = res.get("recordsProcessed")
        drifted += isinstance(records, str)
        large += "transcript" in res
        assert loaded[step["id"]] == (
            records if isinstance(records, int) else None,
            records if isinstance(records, str) else None,
            res.get("sourceFile", {}).get("name"),
            res.get("metrics", {}).get("wer"),
            json.dumps(res["warnings"], separators=(",", ":")) if "warnings" in res else None,
            res.get("sample"),
            res.get("model", {}).get("name"),
            len(res["transcript"]) if "transcript" in res else None,
        ), step["id"]
    assert drifted > 0 and large > 0, "the world must exercise drift and large payloads"
    child_tables = table(db, "select table_name from information_schema.tables "
                             "where table_schema = 'onepin' and table_name like '%\\_\\_%' "
                             "escape '\\'")
    assert child_tables == []


def test_incremental_reload_fetches_only_new_and_moved_runs(sim: Simulator, cli: Any,
                                                            workdir: Path) -> None:
    db = workdir / "onepin_etl.duckdb"
    cli("load")
    first = api_snapshot(sim)
    open_before = {i for i, r in first["runs"].items() if r["status"] not in TERMINAL}
    assert open_before
    # Upstream deletes one step of an open run: after the next load it must be gone here too.
    victim = next(s["id"] for s in first["steps"].values() if s["run_id"] in open_before)
    sim.world.hidden_steps.add(victim)
    sim.advance(6 * 3600)
    sim.stats.reset()
    cli("load")
    counts = sim.stats.snapshot()["requests"]
    snap = api_snapshot(sim)
    new_runs = set(snap["runs"]) - set(first["runs"])
    assert len(new_runs) == 6 * SMALL.workflows
    # Steps of new runs, and of open runs that moved or whose steps could move unseen
    assert counts["steps"] == len(new_runs) + len(refetched_open_runs(first, snap))
    # One runs page per workflow (the listing stopped early), and the open runs it did not
    # reach read in one open-runs listing or by id, whichever costs fewer requests
    assert SMALL.workflows <= counts["runs"] <= 2 * SMALL.workflows
    assert counts["runs"] - SMALL.workflows + counts.get("run", 0) <= len(open_before)
    assert_matches_api(db, snap)
    assert table(db, f"select count(*) from onepin.run_steps where id = '{victim}'") == [(0,)]

    open_now = {i for i, r in snap["runs"].items() if r["status"] not in TERMINAL}
    workflows_with_open = {snap["runs"][i]["workflow_id"] for i in open_now}
    sim.stats.reset()
    output = cli("load").output
    counts = sim.stats.snapshot()["requests"]
    # Unchanged: the workflow list, one request per workflow with open runs, and the steps of
    # open runs only where a pending step could have started unseen
    assert counts["workflows"] == 1
    assert counts.get("runs", 0) + counts.get("run", 0) == len(workflows_with_open)
    refetched = sum(unsettled(snap, i) for i in open_now)
    assert counts.get("steps", 0) == refetched
    # and only those runs' rows are loaded again: an open run (or a workflow) that is as it was
    # is not
    assert f"Loaded 0 workflows, {refetched} runs, " in output
    assert_matches_api(db, api_snapshot(sim))


def test_parquet_destination_appends_files_and_latest_version_matches(
        sim: Simulator, cli: Any, workdir: Path) -> None:
    cli("load", "--destination", "parquet", "--parquet-dir", "pq")
    sim.advance(6 * 3600)
    cli("load", "--destination", "parquet", "--parquet-dir", "pq")
    files = sorted((workdir / "pq" / "onepin" / "run_steps").glob("*.parquet"))
    assert len(files) == 2  # one file per load: append-only
    latest = duckdb.execute(f"""
        with steps as (select * from read_parquet('{workdir}/pq/onepin/run_steps/*.parquet',
                                                  union_by_name = true)),
             newest as (select run_id, max(_dlt_load_id) as load_id from steps group by run_id)
        select s.id, s.status, s.duration_ms from steps s
        join newest n on s.run_id = n.run_id and s._dlt_load_id = n.load_id""").fetchall()
    snap = api_snapshot(sim)
    assert {r[0]: r[1:] for r in latest} == {
        s["id"]: (s["status"], ms_between(s["started_at"], s["completed_at"]))
        for s in snap["steps"].values()}


def test_switching_to_a_new_duckdb_file_loads_everything(sim: Simulator, cli: Any,
                                                         workdir: Path) -> None:
    cli("load")
    cli("load", "--duckdb-path", "other.duckdb")
    assert_matches_api(workdir / "other.duckdb", api_snapshot(sim))


def test_workflow_and_run_selection(sim: Simulator, cli: Any, workdir: Path) -> None:
    snap = api_snapshot(sim)
    wf_a, wf_b = sorted(snap["workflows"])[:2]
    run_b = next(r for r in snap["runs"].values() if r["workflow_id"] == wf_b)
    cli("load", "--workflow", wf_a, "--run", f"{wf_b}/{run_b['id']}")
    db = workdir / "onepin_etl.duckdb"
    assert set(rows_by_id(db, "workflows", "name")) == {wf_a, wf_b}
    expected_runs = {i for i, r in snap["runs"].items() if r["workflow_id"] == wf_a}
    assert set(rows_by_id(db, "runs", "status")) == expected_runs | {run_b["id"]}
    assert set(rows_by_id(db, "run_steps", "status")) == {
        i for i, s in snap["steps"].items() if s["run_id"] in expected_runs | {run_b["id"]}}


def test_a_run_named_and_listed_is_loaded_once(sim: Simulator, cli: Any, workdir: Path) -> None:
    """A run that is both named and listed is fetched once per load, not twice."""
    snap = api_snapshot(sim)
    run = next(iter(snap["runs"].values()))
    workflow_id, ref = run["workflow_id"], f"{run['workflow_id']}/{run['id']}"
    runs = {i for i, r in snap["runs"].items() if r["workflow_id"] == workflow_id}
    sim.stats.reset()
    cli("load", "--workflow", workflow_id, "--run", ref, "--run", ref)
    assert sim.stats.snapshot()["requests"]["steps"] == len(runs)
    db = workdir / "onepin_etl.duckdb"
    (total, distinct), = table(db, "select count(*), count(distinct id) from onepin.run_steps")
    assert total == distinct == sum(1 for s in snap["steps"].values() if s["run_id"] in runs)


def test_since_limits_the_first_load(sim: Simulator, cli: Any, workdir: Path) -> None:
    snap = api_snapshot(sim)
    created = sorted(r["created_at"] for r in snap["runs"].values())
    since = created[len(created) // 2]
    cli("load", "--since", since)
    loaded = set(rows_by_id(workdir / "onepin_etl.duckdb", "runs", "status"))
    assert loaded == {i for i, r in snap["runs"].items() if r["created_at"] >= since}


def test_full_refresh_starts_over(sim: Simulator, cli: Any, workdir: Path) -> None:
    snap = api_snapshot(sim)
    since = sorted(r["created_at"] for r in snap["runs"].values())[-5]
    cli("load", "--since", since)
    sim.stats.reset()
    cli("load", "--full-refresh")
    assert sim.stats.snapshot()["requests"]["steps"] == len(snap["runs"])
    assert_matches_api(workdir / "onepin_etl.duckdb", snap)


def test_no_results_skips_payloads(sim: Simulator, cli: Any, workdir: Path) -> None:
    cli("load", "--no-results")
    columns = [r[0] for r in table(workdir / "onepin_etl.duckdb", "describe onepin.run_steps")]
    assert not [c for c in columns if c.startswith("result")]
    assert table(workdir / "onepin_etl.duckdb",
                 "select count(*) from onepin.run_steps where has_result") != [(0,)]


def test_wrong_key_exits_3_with_one_clear_line(sim: Simulator, cli: Any) -> None:
    result = cli("load", key="op_live_" + "x" * 32, expect=3)
    assert result.output.strip().startswith("error: Onepin API 401 INVALID_API_KEY on /workflows")
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1


def test_malformed_workflow_id_exits_2_before_any_request(sim: Simulator, cli: Any) -> None:
    result = cli("load", "--workflow", "not-a-uuid", expect=2)
    assert "workflow id 'not-a-uuid' is not a UUID" in result.output
    assert sim.stats.snapshot()["total"] == 0


def test_unknown_workflow_exits_2(sim: Simulator, cli: Any) -> None:
    result = cli("load", "--workflow", "3fa85f64-5717-4562-b3fc-2c963f66afa6", expect=2)
    assert "workflow 3fa85f64-5717-4562-b3fc-2c963f66afa6 not found (404)" in result.output


def test_key_appears_in_no_output_or_file(sim: Simulator, cli: Any, workdir: Path) -> None:
    outputs = [cli("load").output, cli("load", "--destination", "parquet").output,
               cli("load", "--workflow", "3fa85f64-5717-4562-b3fc-2c963f66afa6",
                   expect=2).output]
    sim.set_faults(share_5xx=1.0)
    outputs.append(cli("load", expect=4).output)
    key = sim.api_key.encode()
    assert not any(sim.api_key in o for o in outputs)
    hits = [p for p in workdir.rglob("*") if p.is_file() and key in p.read_bytes()]
    assert hits == []
    assert len(list(workdir.rglob("*"))) > 20  # the scan saw the pipeline folder and files


def test_dlt_pipeline_info_works(sim: Simulator, cli: Any, workdir: Path) -> None:
    cli("load")
    info = subprocess.run([sys.executable, "-m", "dlt.cli._dlt", "pipeline", "--pipelines-dir",
                           str(workdir / "pipelines"), "onepin", "info"],
                          capture_output=True, text=True, timeout=120)
    if info.returncode != 0 and "No module named" in info.stderr:
        info = subprocess.run([str(Path(sys.executable).parent / "dlt"), "pipeline",
                               "--pipelines-dir", str(workdir / "pipelines"), "onepin", "info"],
                              capture_output=True, text=True, timeout=120)
    assert info.returncode == 0, info.stderr
    assert "pipeline_name: onepin" in info.stdout
    assert "runs with 1 table(s) and 2 resource state slot(s)" in info.stdout


def test_api_snapshot_helper_reads_every_run(sim: Simulator) -> None:
    """The reference reader pages correctly (it is the yardstick of the tests above)."""
    snap = api_snapshot(sim)
    assert len(snap["runs"]) == SMALL.workflows * SMALL.runs
    wf = next(iter(snap["workflows"]))
    assert api_get(sim, f"/workflows/{wf}/runs").json()["pagination"]["total"] == SMALL.runs


def test_switching_files_back_and_forth_loses_nothing(sim: Simulator, cli: Any,
                                                      workdir: Path) -> None:
    cli("load", "--duckdb-path", "a.duckdb")
    sim.advance(4 * 3600)
    cli("load", "--duckdb-path", "b.duckdb")
    sim.advance(4 * 3600)
    cli("load", "--duckdb-path", "a.duckdb")
    snap = api_snapshot(sim)
    assert_matches_api(workdir / "a.duckdb", snap)
