"""The analysis views, report and demo, checked against numbers computed here from the API."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pytest
from click.testing import CliRunner
from rich.console import Console

from onepin_etl import analysis
from onepin_etl.cli import main
from onepin_etl.demo import run_demo
from onepin_sim import Simulator, WorldConfig
from tests.helpers import api_get, api_snapshot, ms_between


def quantile(values: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def expected_node_stats(snap: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for step in snap["steps"].values():
        groups[(step["workflow_id"], step["node_id"])].append(step)
    stats = {}
    for key, steps in groups.items():
        status = Counter(s["status"] for s in steps)
        durations = [ms_between(s["started_at"], s["completed_at"]) for s in steps
                     if s["status"] == "completed"]
        by_run: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for s in steps:
            by_run[s["run_id"]].append(s)
        flaky = sum(
            1 for run_steps in by_run.values()
            if any(f["status"] == "failed" and any(c["status"] == "completed"
                                                   and c["iteration"] > f["iteration"]
                                                   for c in run_steps) for f in run_steps))
        errors = Counter(s["error"] for s in steps if s["error"])
        decided = status["completed"] + status["failed"]
        stats[key] = {
            "executions": len(steps), "completed": status["completed"],
            "failed": status["failed"], "cancelled": status["cancelled"],
            "failure_rate": status["failed"] / decided if decided else None,
            "p50_ms": quantile(durations, 0.5) if durations else None,  # type: ignore[arg-type]
            "p95_ms": quantile(durations, 0.95) if durations else None,  # type: ignore[arg-type]
            "p99_ms": quantile(durations, 0.99) if durations else None,  # type: ignore[arg-type]
            "max_ms": max(durations) if durations else None,  # type: ignore[type-var]
            "retries": sum(1 for s in steps if (s["iteration"] or 1) > 1),
            "flaky": flaky,
            "top_error": min(errors, key=lambda e: (-errors[e], e)) if errors else None,
        }
    return stats


@pytest.fixture
def loaded(sim: Simulator, cli: Any, workdir: Path) -> Path:
    """Two incremental loads into DuckDB (the clock moves 6 hours between them)."""
    cli("load")
    sim.advance(6 * 3600)
    cli("load")
    return workdir / "onepin_etl.duckdb"


def test_node_stats_match_an_independent_computation(sim: Simulator, loaded: Path) -> None:
    expected = expected_node_stats(api_snapshot(sim))
    columns = list(next(iter(expected.values())))
    frame = analysis.query(f"select workflow_id, node_id, {', '.join(columns)} from node_stats",
                           duckdb_path=loaded)
    got = {(r["workflow_id"], r["node_id"]): {c: None if pd.isna(r[c]) else r[c] for c in columns}
           for r in frame.to_dict("records")}
    assert got.keys() == expected.keys()
    for key, values in expected.items():
        for column, value in values.items():
            if isinstance(value, float):
                assert got[key][column] == pytest.approx(value), (key, column)
            else:
                assert got[key][column] == value, (key, column)
    assert sum(v["flaky"] for v in expected.values()) > 0
    assert sum(v["retries"] for v in expected.values()) > 0


def test_node_type_stats_add_up(sim: Simulator, loaded: Path) -> None:
    snap = api_snapshot(sim)
    by_type = Counter(s["node_type"] for s in snap["steps"].values())
    failed = Counter(s["node_type"] for s in snap["steps"].values() if s["status"] == "failed")
    frame = analysis.node_type_failures(duckdb_path=loaded)
    assert dict(zip(frame.node_type, frame.executions, strict=True)) == dict(by_type)
    assert dict(zip(frame.node_type, frame.failed, strict=True)) == {t: failed[t] for t in by_type}


def test_pass_rate_and_duration_equal_the_api_runs_summary(sim: Simulator, loaded: Path) -> None:
    frame = analysis.workflow_summary(duckdb_path=loaded)
    assert len(frame) == 3
    for row in frame.to_dict("records"):
        api = api_get(sim, f"/workflows/{row['workflow_id']}/runs/summary").json()["data"]
        assert row["total_runs"] == api["total_runs"]
        assert row["pass_rate"] == pytest.approx(api["pass_rate"])
        assert row["average_duration_seconds"] == pytest.approx(api["average_duration_seconds"])


def test_daily_pass_rates(sim: Simulator, loaded: Path) -> None:
    snap = api_snapshot(sim)
    days: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
    for run in snap["runs"].values():
        days[(run["workflow_id"], run["created_at"][:10])][run["status"]] += 1
    frame = analysis.daily_trend(duckdb_path=loaded)
    got = {(r["workflow_id"], str(r["day"])[:10]): (r["runs"], r["pass_rate"])
           for r in frame.to_dict("records")}
    assert got.keys() == days.keys()
    for key, count in days.items():
        decided = count["completed"] + count["failed"]
        assert got[key][0] == sum(count.values())
        assert got[key][1] == pytest.approx(count["completed"] / decided)


def test_views_are_persisted_in_the_duckdb_dataset(loaded: Path) -> None:
    import duckdb

    with duckdb.connect(str(loaded), read_only=True) as con:
        views = {r[0] for r in con.execute("select view_name from duckdb_views() "
                                           "where schema_name = 'onepin'").fetchall()}
        assert {"step_durations", "node_stats", "node_type_stats", "workflow_daily",
                "workflow_summary"} <= views
        assert con.execute("select count(*) from onepin.step_durations").fetchall()[0][0] > 0


def test_duckdb_and_parquet_give_identical_views(sim: Simulator, cli: Any,
                                                 workdir: Path) -> None:
    for _ in range(3):
        cli("load")
        cli("load", "--destination", "parquet", "--parquet-dir", "pq")
        sim.advance(5 * 3600)
    for view, order in (("node_stats", "workflow_id, node_id"), ("node_type_stats", "node_type"),
                        ("workflow_daily", "workflow_id, day"),
                        ("workflow_summary", "workflow_id"),
                        ("step_durations", "step_id")):
        sql = f"select * from {view} order by {order}"
        from_duckdb = analysis.query(sql, duckdb_path=workdir / "onepin_etl.duckdb")
        from_parquet = analysis.query(sql, parquet_dir=workdir / "pq")
        assert len(from_duckdb) > 0
        assert from_duckdb.to_dict("records") == from_parquet.to_dict("records"), view


def test_report_formats(cli: Any, loaded: Path) -> None:
    as_json = cli("report", "--format", "json", "--top", "3")
    data = json.loads(as_json.output)
    assert set(data) == {"workflows", "slowest_nodes", "failing_nodes", "failing_node_types",
                         "retries", "errors"}
    assert len(data["workflows"]) == 3 and len(data["slowest_nodes"]) == 3
    p95 = [r["p95_s"] for r in data["slowest_nodes"]]
    assert p95 == sorted(p95, reverse=True)
    as_csv = cli("report", "--format", "csv").output
    assert as_csv.startswith("# workflows\nworkflow,runs,completed,failed,cancelled,open,")
    as_md = cli("report", "--format", "markdown").output
    assert "## Runs per workflow\n\n| workflow | runs |" in as_md
    table = cli("report").output
    assert "Slowest nodes (p95 of completed steps)" in table and "Retries and flaky" in table


def test_report_filters(sim: Simulator, cli: Any, loaded: Path) -> None:
    wf = api_get(sim, "/workflows").json()["data"][0]
    data = json.loads(cli("report", "--format", "json", "--workflow", wf["id"]).output)
    assert [r["workflow"] for r in data["workflows"]] == [wf["name"]]
    empty = cli("report", "--since", "2030-01-01T00:00:00Z")
    assert "Nothing to report: no runs match" in empty.output


def test_report_without_data_is_friendly(cli: Any, workdir: Path) -> None:
    result = cli("report", "--duckdb-path", "missing.duckdb", expect=2)
    assert result.output == ("error: missing.duckdb does not exist: check --duckdb-path, or "
                             "load it first with 'onepin-etl load'\n")
    duckdb.connect(str(workdir / "empty.duckdb")).close()
    empty = cli("report", "--duckdb-path", "empty.duckdb")
    assert "Nothing to report yet: empty.duckdb has no loaded Onepin data" in empty.output


def test_demo_runs_end_to_end_and_again(workdir: Path) -> None:
    console = Console(record=True, width=120)
    world = WorldConfig(seed=3, workflows=2, runs=10, nodes=6)
    for _ in range(2):  # re-running the demo works
        db = run_demo(workdir / "demo", console, world=world, top=3)
    text = console.export_text()
    assert text.count("First load: 1 workflow list page, 2 run list pages, 0 open-run "
                      "re-reads, 20 steps requests.") == 2
    assert (workdir / "demo" / "onepin_health.html").read_text().count('class="chart"') == 4
    assert "24 new runs" in text and "Runs per workflow" in text
    assert f"onepin-etl sql --duckdb-path {db} " in text.replace("\n", "")
    frame = analysis.workflow_summary(duckdb_path=db)
    assert frame.total_runs.sum() == 2 * (10 + 12)
    # The command the demo suggests works after it, and reads the persisted views
    hint = CliRunner().invoke(main, ["sql", "--duckdb-path", str(db), "--format", "csv",
                                     "select count(*) as n from node_stats"])
    assert hint.exit_code == 0, hint.output
    assert hint.output == f"n\n{frame.workflow_id.size * 6}\n"


def test_report_rejects_a_naive_since(cli: Any, loaded: Path) -> None:
    result = cli("report", "--since", "2026-01-01", expect=2)
    assert "is not an ISO-8601 datetime with a UTC offset" in result.output
