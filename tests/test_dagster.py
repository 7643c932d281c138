"""Dagster: assets materialize the tables exactly through the one load path (the second
materialization fetches only new and open runs), shard partitions together give one load's
tables, checks judge."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import requests

from onepin_etl.dagster_defs import AssetChecks, build_definitions
from onepin_etl.destinations import Target
from onepin_etl.pipeline import load
from onepin_sim import Simulator
from onepin_source.errors import ConfigError
from tests.helpers import (
    ROOT,
    SMALL,
    api_snapshot,
    assert_matches_api,
    refetched_open_runs,
    table,
)

# Our definitions use no API that Dagster marks beta, preview or superseded (#22: they printed
# a SupersessionWarning and a BetaWarning): any such warning fails these tests.
pytestmark = [pytest.mark.filterwarnings(f"error::dagster.{name}")
              for name in ("BetaWarning", "PreviewWarning", "SupersessionWarning")]


@pytest.fixture
def env(sim: Simulator, workdir: Path, monkeypatch: pytest.MonkeyPatch) -> Simulator:
    monkeypatch.setenv("ONEPIN_API_KEY", sim.api_key)
    monkeypatch.setenv("ONEPIN_BASE_URL", sim.base_url)
    monkeypatch.setenv("DAGSTER_HOME", str(workdir / "dagster"))
    (workdir / "dagster").mkdir()
    return sim


def sim_now(sim: Simulator) -> datetime:
    return datetime.fromtimestamp(sim.clock.now_ms / 1000, tz=UTC)


def materialize(defs: dg.Definitions) -> dg.ExecuteInProcessResult:
    assets = [a for a in defs.assets or [] if isinstance(a, dg.AssetsDefinition)]
    checks = list(defs.asset_checks or [])
    return dg.materialize([*assets, *checks], resources=defs.resources)


def check_results(result: dg.ExecuteInProcessResult) -> dict[str, bool]:
    return {e.check_name: e.passed for e in result.get_asset_check_evaluations()}


def load_definitions_file() -> Any:
    """``pipelines/dagster_onepin.py``'s ``defs``, built from the environment."""
    path = ROOT / "pipelines" / "dagster_onepin.py"
    spec = importlib.util.spec_from_file_location("dagster_onepin_under_test", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dlt's signature reflection needs the module registered
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[spec.name]
    return module.defs


def test_materializations_are_exact_and_incremental(env: Simulator, workdir: Path) -> None:
    sim = env
    target = Target(duckdb_path=str(workdir / "dagster.duckdb"),
                    pipelines_dir=str(workdir / "pipelines"))
    defs = build_definitions(target, checks=AssetChecks(max_age=timedelta(hours=6),
                                                        as_of=lambda: sim_now(sim)))
    first = materialize(defs)
    assert first.success
    keys = {event.asset_key.to_user_string() for event in first.get_asset_materialization_events()
            if event.asset_key is not None}
    assert keys == {"dlt_onepin_workflows", "dlt_onepin_runs", "dlt_onepin_run_steps",
                    "onepin_health_page"}
    page = (workdir / "onepin_health.html").read_text(encoding="utf-8")
    assert "<h1>Onepin health</h1>" in page and page.count('class="chart"') == 4
    assert check_results(first) == {"fresh": True, "failure_rates": True,
                                    "no_duplicate_steps": True}
    snap = api_snapshot(sim)
    assert_matches_api(target.duckdb_path, snap)

    sim.advance(6 * 3600)
    sim.stats.reset()
    second = materialize(defs)
    assert second.success
    requests = sim.stats.snapshot()["requests"]
    now = api_snapshot(sim)
    new_runs = set(now["runs"]) - set(snap["runs"])
    assert len(new_runs) == 6 * SMALL.workflows
    # the load path kept the incremental marks: only new and open runs were fetched
    assert SMALL.workflows <= requests["runs"] <= 2 * SMALL.workflows  # stopped at the mark
    assert requests["steps"] == len(new_runs) + len(refetched_open_runs(snap, now))
    assert_matches_api(target.duckdb_path, now)
    assert check_results(second) == {"fresh": True, "failure_rates": True,
                                     "no_duplicate_steps": True}


def test_asset_checks_fail_on_a_crafted_threshold(env: Simulator, workdir: Path) -> None:
    target = Target(duckdb_path=str(workdir / "dagster.duckdb"),
                    pipelines_dir=str(workdir / "pipelines"))
    strict = AssetChecks(max_age=timedelta(minutes=1), max_failure_rate=0.0, min_executions=1,
                         window=timedelta(days=30), as_of=lambda: sim_now(env) + timedelta(hours=1))
    result = materialize(build_definitions(target, checks=strict))
    assert result.success  # a failed check reports; it does not fail the load
    assert check_results(result) == {"fresh": False, "failure_rates": False,
                                     "no_duplicate_steps": True}
    evaluation = next(e for e in result.get_asset_check_evaluations()
                      if e.check_name == "failure_rates")
    findings = evaluation.metadata["findings"].value
    assert isinstance(findings, str) and findings.startswith("threshold: ")
    assert "failure_rate" in findings


def test_the_definitions_file_loads_with_a_schedule(env: Simulator, workdir: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ONEPIN_DUCKDB_PATH", str(workdir / "scheduled.duckdb"))
    monkeypatch.setenv("ONEPIN_PIPELINES_DIR", str(workdir / "pipelines"))
    monkeypatch.setenv("ONEPIN_SCHEDULE_CRON", "0 * * * *")
    defs = load_definitions_file()
    schedule = defs.resolve_schedule_def("onepin_schedule")
    assert schedule.cron_schedule == "0 * * * *"
    assert schedule.job_name == "onepin_load"
    assert {c.name for c in defs.asset_checks for c in c.check_specs} == {
        "fresh", "failure_rates", "no_duplicate_steps"}


def without_load_columns(db: Path, name: str) -> list[tuple[Any, ...]]:
    """A table's rows, sorted, without dlt's per-load columns (load ids and row ids differ)."""
    columns = [c for (c,) in table(db, f"select column_name from information_schema.columns "
                                       f"where table_schema = 'onepin' and table_name = '{name}' "
                                       "and column_name not like '_dlt%' order by column_name")]
    return table(db, f"select {', '.join(columns)} from onepin.{name} order by all")


def test_shard_partitions_together_give_one_unsharded_load(env: Simulator, workdir: Path) -> None:
    target = Target(duckdb_path=str(workdir / "sharded.duckdb"),
                    pipelines_dir=str(workdir / "pipelines"))
    defs = build_definitions(target, shards=3, checks=AssetChecks(
        max_age=timedelta(hours=6), as_of=lambda: sim_now(env)))
    load_job = defs.resolve_job_def("onepin_load")
    assert load_job.partitions_def is not None
    assert load_job.partitions_def.get_partition_keys() == ["1of3", "2of3", "3of3"]
    assert defs.resolve_job_def("onepin_health").partitions_def is None
    for key in ("1of3", "2of3", "3of3"):
        assert load_job.execute_in_process(partition_key=key).success
    names = table(target.duckdb_path, "select distinct pipeline_name from "
                                      "onepin._dlt_pipeline_state order by 1")
    assert names == [(f"onepin_shard{k}of3",) for k in (1, 2, 3)]
    health = defs.resolve_job_def("onepin_health").execute_in_process()
    assert health.success
    assert check_results(health) == {"fresh": True, "failure_rates": True,
                                     "no_duplicate_steps": True}
    assert (workdir / "onepin_health.html").is_file()

    load(Target(duckdb_path=str(workdir / "whole.duckdb"),
                pipelines_dir=str(workdir / "pipelines")))
    for name in ("workflows", "runs", "run_steps"):
        assert without_load_columns(workdir / "sharded.duckdb", name) == \
            without_load_columns(workdir / "whole.duckdb", name)
    assert_matches_api(target.duckdb_path, api_snapshot(env))


def test_the_definitions_file_partitions_by_onepin_shards(env: Simulator, workdir: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ONEPIN_SHARDS", "4")
    defs = load_definitions_file()
    assert defs.resolve_job_def("onepin_load").partitions_def.get_partition_keys() == [
        "1of4", "2of4", "3of4", "4of4"]
    schedule = defs.resolve_schedule_def("onepin_every_15_minutes")
    assert schedule.job_name == "onepin_load"
    assert defs.resolve_sensor_def("onepin_after_load").job_name == "onepin_health"


def test_a_malformed_onepin_shards_is_one_line(env: Simulator, monkeypatch: pytest.MonkeyPatch
                                               ) -> None:
    monkeypatch.setenv("ONEPIN_SHARDS", "two")
    with pytest.raises(ConfigError) as raised:
        load_definitions_file()
    assert str(raised.value) == "ONEPIN_SHARDS must be a whole number of shards, 1 or more, " \
                                "not 'two'"


@contextmanager
def dagster_command(workdir: Path, log: str, *args: str) -> Iterator[subprocess.Popen[str]]:
    """``dagster ARGS`` in a process group of its own, its output in ``workdir / log``; the
    whole group (the command's run and step processes too) is ended when the block ends."""
    with (workdir / log).open("w", encoding="utf-8") as out:
        process = subprocess.Popen([str(Path(sys.executable).parent / "dagster"), *args],
                                   env=dict(os.environ), cwd=workdir, text=True,
                                   stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            yield process
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def test_shard_partitions_at_once_in_processes_of_their_own(env: Simulator, workdir: Path,
                                                            monkeypatch: pytest.MonkeyPatch
                                                            ) -> None:
    """As Dagster's run launcher and the multiprocess executor run them: every shard partition
    at once, each a process of its own (``dagster asset materialize``) whose assets run in
    processes of their own, into one DuckDB file. They queue on the file's lock; each exits 0,
    and together they give the API's tables exactly. (The health page and the checks are the
    ``onepin_health`` job's when there are shards, after the loads.)"""
    monkeypatch.setenv("ONEPIN_SHARDS", "2")
    monkeypatch.setenv("ONEPIN_DUCKDB_PATH", str(workdir / "shards.duckdb"))
    monkeypatch.setenv("ONEPIN_PIPELINES_DIR", str(workdir / "pipelines"))
    # The instance's storage first, as `dagster dev` creates it: processes creating a new
    # DAGSTER_HOME's SQLite storage at once fail in Dagster's own migrations (alembic: "more
    # than one head").
    with dagster_command(workdir, "migrate.log", "instance", "migrate") as migrate:
        assert migrate.wait(timeout=120) == 0, (workdir / "migrate.log").read_text()
    loads = "dlt_onepin_workflows,dlt_onepin_runs,dlt_onepin_run_steps"
    definitions = str(ROOT / "pipelines" / "dagster_onepin.py")
    with dagster_command(workdir, "1of2.log", "asset", "materialize", "-f", definitions,
                         "--select", loads, "--partition", "1of2") as first, \
            dagster_command(workdir, "2of2.log", "asset", "materialize", "-f", definitions,
                            "--select", loads, "--partition", "2of2") as second:
        codes = [first.wait(timeout=300), second.wait(timeout=300)]
    outputs = [(workdir / f"{key}.log").read_text() for key in ("1of2", "2of2")]
    # The whole of each log that holds a traceback (a list's repr would be cut short), else
    # the end of both.
    assert codes == [0, 0], "\n\n".join(
        [output for output in outputs if "Traceback" in output]
        or [output[-3000:] for output in outputs])
    assert all("RUN_SUCCESS" in output for output in outputs)
    names = table(workdir / "shards.duckdb", "select distinct pipeline_name from "
                                             "onepin._dlt_pipeline_state order by 1")
    assert names == [("onepin_shard1of2",), ("onepin_shard2of2",)]
    assert_matches_api(workdir / "shards.duckdb", api_snapshot(env))


def test_dagster_dev_serves_the_definitions_file(env: Simulator, workdir: Path) -> None:
    """The command docs/scheduling.md gives, ``dagster dev -f pipelines/dagster_onepin.py``,
    starts Dagster's UI (``dagster-webserver``, in the ``dagster`` extra) with the load job,
    the three tables' assets, the health page's and the schedule."""
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    query = ("{ repositoriesOrError { ... on RepositoryConnection { nodes { "
             "jobs { name } schedules { name cronSchedule } assetNodes { assetKey { path } } "
             "} } } }")
    with dagster_command(workdir, "dev.log", "dev", "-f",
                         str(ROOT / "pipelines" / "dagster_onepin.py"),
                         "-h", "127.0.0.1", "-p", str(port)) as dev:
        deadline = time.monotonic() + 180
        repositories: list[dict[str, Any]] = []
        while not repositories:  # the UI answers before the definitions file has loaded
            assert dev.poll() is None, (workdir / "dev.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "dagster dev served no definitions in 180 s"
            time.sleep(0.5)
            try:
                answer = requests.post(f"http://127.0.0.1:{port}/graphql",
                                       json={"query": query}, timeout=30).json()
            except (requests.RequestException, ValueError):
                continue
            repositories = (answer.get("data") or {}).get("repositoriesOrError", {}).get(
                "nodes") or []
    [repository] = repositories
    assert "onepin_load" in {job["name"] for job in repository["jobs"]}
    assert sorted(node["assetKey"]["path"] for node in repository["assetNodes"]) == [
        ["dlt_onepin_run_steps"], ["dlt_onepin_runs"], ["dlt_onepin_workflows"],
        ["onepin_health_page"]]
    assert repository["schedules"] == [{"name": "onepin_every_15_minutes",
                                        "cronSchedule": "*/15 * * * *"}]
