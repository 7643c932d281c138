"""``onepin-etl check``: thresholds, freshness, regressions and duplicates, on data whose answers
this file computes on its own."""

from __future__ import annotations

import json
import math
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pytest
from click.testing import CliRunner

from onepin_etl import analysis, health
from onepin_etl.cli import main

AS_OF = datetime(2026, 3, 1, tzinfo=UTC)
WORKFLOW = ("wf-1", "Podcast dubbing")
# node id -> (node type, (baseline steps, failed), (recent steps, failed), recent slowdown)
NODES: dict[str, tuple[str, tuple[int, int], tuple[int, int], float]] = {
    "n-stable": ("operator_normalizer", (400, 20), (100, 6), 1.0),
    "n-fail": ("validator_noise", (400, 20), (100, 25), 1.0),
    "n-slow": ("operator_generator", (400, 0), (100, 0), 3.0),
    "n-tiny": ("sink_preview", (3, 0), (3, 2), 1.0),
}


RUN_COLUMNS = ("id", "workflow_id", "run_number", "status", "created_at")
STEP_COLUMNS = ("id", "workflow_id", "run_id", "node_id", "node_type", "node_display_name",
                "iteration", "status", "started_at", "completed_at", "duration_ms", "error")


def two_proportion_p(x1: int, n1: int, x0: int, n0: int) -> float:
    """The one-sided pooled z-test, written out here again on purpose."""
    p = (x1 + x0) / (n1 + n0)
    z = (x1 / n1 - x0 / n0) / math.sqrt(p * (1 - p) * (1 / n1 + 1 / n0))
    return 0.5 * math.erfc(z / math.sqrt(2))


def binomial_tail(k: int, n: int, p: float) -> float:
    return sum(math.comb(n, i) * p ** i * (1 - p) ** (n - i) for i in range(k, n + 1))


def make_db(path: Path, *, duplicate: bool = False) -> dict[str, list[float]]:
    """Steps of four nodes over 8 days; returns each node's completed durations per window."""
    rng = random.Random(5)
    steps, runs = [], []
    durations: dict[str, list[float]] = {}
    for node_id, (node_type, before, recent, slowdown) in NODES.items():
        for window, (count, failed), start, span, factor in (
                ("baseline", before, AS_OF - timedelta(days=8), 7 * 86400, 1.0),
                ("recent", recent, AS_OF - timedelta(hours=23), 22 * 3600, slowdown)):
            for i in range(count):
                started = start + timedelta(seconds=span * i / count)
                status = "failed" if i < failed else "completed"
                duration = round(rng.uniform(1000, 2000) * factor)
                if status == "completed":
                    durations.setdefault(f"{node_id}/{window}", []).append(duration)
                run_id = f"r-{node_id}-{window}-{i}"
                runs.append((run_id, WORKFLOW[0], i + 1, status, started))
                steps.append((f"s-{i}", WORKFLOW[0], run_id, node_id, node_type, node_id.upper(),
                              1, status, started, started + timedelta(milliseconds=duration),
                              duration, "Boom" if status == "failed" else None))
    if duplicate:
        steps.append(steps[0])
    with duckdb.connect(str(path)) as con:
        con.execute("create schema onepin")
        con.execute("create table onepin.workflows (id text, name text)")
        con.execute("insert into onepin.workflows values (?, ?)", list(WORKFLOW))
        run_rows = pa.Table.from_pylist([dict(zip(RUN_COLUMNS, r, strict=True)) for r in runs])
        step_rows = pa.Table.from_pylist([dict(zip(STEP_COLUMNS, r, strict=True))
                                          for r in steps])
        con.register("run_rows", run_rows)
        con.register("step_rows", step_rows)
        con.execute("create table onepin.runs as select *, 1000 as active_duration_ms "
                    "from run_rows")
        con.execute("create table onepin.run_steps as select * from step_rows")
    return durations


def check(db: Path, **options: Any) -> health.HealthReport:
    with analysis.connect(duckdb_path=db) as con:
        return health.run_checks(con, health.CheckConfig(as_of=AS_OF, **options))


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "health.duckdb"
    make_db(path)
    return path


def test_regressions_found_are_exactly_the_injected_ones(tmp_path: Path) -> None:
    path = tmp_path / "health.duckdb"
    durations = make_db(path)
    report = check(path)
    found = {(f.node, f.metric): f for f in report.findings}
    assert set(found) == {("N-FAIL", "failure_rate"), ("N-SLOW", "p95_seconds")}
    failing = found[("N-FAIL", "failure_rate")]
    assert (failing.check, failing.workflow) == ("regression", "Podcast dubbing")
    assert (failing.value, failing.limit) == (25 / 100, 20 / 400)
    assert f"p={two_proportion_p(25, 100, 20, 400):.2g}" in failing.detail
    # three nodes have enough steps in both windows for both tests (n-tiny has not)
    assert failing.detail.endswith(f"< {0.01 / 6:.2g} (Bonferroni over 6 tests)")
    # The stable node is not flagged, and its p-value shows why
    assert two_proportion_p(6, 100, 20, 400) > 0.01
    slow = found[("N-SLOW", "p95_seconds")]
    before = sorted(durations["n-slow/baseline"])
    recent = durations["n-slow/recent"]
    base_p95 = before[379] + (before[380] - before[379]) * 0.05  # 0.95 * 399 = 379.05
    slower = sum(d > base_p95 for d in recent)
    assert slow.limit == pytest.approx(base_p95 / 1000)
    assert f"{slower}/100 completed steps slower" in slow.detail
    assert f"p={binomial_tail(slower, 100, 0.05):.2g}" in slow.detail
    assert report.groups_checked == 4


def test_small_samples_page_nobody(db: Path) -> None:
    report = check(db, max_failure_rate=0.2, regressions=False)
    assert [(f.check, f.node, f.metric, f.value) for f in report.findings] == [
        ("threshold", "N-FAIL", "failure_rate", 0.25)]  # n-tiny: 2 of 3 failed, below 20 steps


def test_p95_threshold_and_node_types(db: Path) -> None:
    report = check(db, max_p95_seconds=4.0, regressions=False, by="node_type")
    assert [(f.node, f.metric) for f in report.findings] == [
        ("operator_generator", "p95_seconds")]
    assert report.findings[0].workflow is None


def test_freshness(db: Path) -> None:
    newest = max(r for (r,) in duckdb.connect(str(db), read_only=True).execute(
        "select created_at from onepin.runs").fetchall())
    age_h = (AS_OF - newest).total_seconds() / 3600
    stale = check(db, max_age=timedelta(minutes=30), regressions=False)
    assert [(f.check, f.value, f.limit) for f in stale.findings] == [
        ("freshness", pytest.approx(age_h), 0.5)]
    assert check(db, max_age=timedelta(hours=2), regressions=False).healthy


def test_duplicates_are_found(tmp_path: Path) -> None:
    path = tmp_path / "dup.duckdb"
    make_db(path, duplicate=True)
    report = check(path, regressions=False)
    assert [(f.check, f.value) for f in report.findings] == [("duplicates", 1.0)]


def test_cli_prints_one_line_per_failure_and_exits_6(db: Path) -> None:
    args = ["check", "--duckdb-path", str(db), "--as-of", "2026-03-01T00:00:00Z"]
    failing = CliRunner().invoke(main, args)
    assert failing.exit_code == 6, failing.output
    lines = failing.output.strip().splitlines()
    assert lines[0].startswith("regression: Podcast dubbing / N-FAIL: failure_rate 0.25 "
                               "(baseline 0.05; 25/100 failed vs 20/400;")
    assert lines[1].startswith("regression: Podcast dubbing / N-SLOW: p95_seconds ")
    assert lines[2].startswith("2 check(s) failed: 4 nodes with steps in the last 24h, "
                               "303 recent and 1203 baseline steps")
    assert lines[3] == "error: 2 health check(s) failed"
    as_json = CliRunner().invoke(main, [*args, "--format", "json", "--no-regressions"])
    assert as_json.exit_code == 0, as_json.output
    data = json.loads(as_json.output)
    assert data["healthy"] is True and data["findings"] == [] and data["groups_checked"] == 4


def test_cli_rejects_bad_durations_and_missing_data(tmp_path: Path) -> None:
    bad = CliRunner().invoke(main, ["check", "--window", "soon"])
    assert bad.exit_code == 2, bad.output
    assert "duration 'soon' is not a number with a unit" in bad.output
    missing = CliRunner().invoke(main, ["check", "--duckdb-path", str(tmp_path / "no.duckdb")])
    assert missing.exit_code == 2 and "no.duckdb does not exist: check --duckdb-path" in \
        missing.output


def test_statistics_helpers_agree_with_the_formulas() -> None:
    assert health.two_proportion_p_value(25, 100, 20, 400) == pytest.approx(
        two_proportion_p(25, 100, 20, 400))
    assert health.binomial_tail(12, 100, 0.05) == pytest.approx(binomial_tail(12, 100, 0.05))
    assert health.binomial_tail(0, 10, 0.05) == 1.0
    assert health.two_proportion_p_value(0, 50, 0, 50) == 1.0
