"""Helpers shared by the tests: the API as a plain client reads it, the CLI in-process, and
exact comparisons of loaded tables with the API."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

import duckdb
import requests
from click.testing import CliRunner, Result

from onepin_etl import analysis
from onepin_etl.cli import main
from onepin_sim import Simulator, WorldConfig
from onepin_source.settings import TERMINAL_RUN_STATUSES

ROOT = Path(__file__).resolve().parents[1]
SMALL = WorldConfig(seed=11, workflows=3, runs=24, nodes=8)
TERMINAL = TERMINAL_RUN_STATUSES


class Cli(Protocol):
    def __call__(self, *args: str, expect: int | None = 0, key: str | None = None,
                 **env: str) -> Result: ...


def invoke_cli(sim: Simulator, workdir: Path) -> Cli:
    """``invoke(*args, expect=0, key=None, **env)``: run ``onepin-etl`` in-process against
    ``sim``; unless ``expect`` is None, assert the exit code and show the output if it differs."""

    def invoke(*args: str, expect: int | None = 0, key: str | None = None,
               **env: str) -> Result:
        environ = {"ONEPIN_API_KEY": key or sim.api_key, "ONEPIN_BASE_URL": sim.base_url, **env}
        command = list(args)
        if command and command[0] == "load" and "--pipelines-dir" not in command:
            command += ["--pipelines-dir", str(workdir / "pipelines")]
        result = CliRunner().invoke(main, command, env=environ, catch_exceptions=False)
        if expect is not None:
            assert result.exit_code == expect, (
                f"onepin-etl {' '.join(args)} exited {result.exit_code}, not {expect}:\n"
                f"{result.output}")
        return result

    return invoke


def api_get(sim: Simulator, path: str, **params: Any) -> requests.Response:
    return requests.get(f"{sim.base_url}/api/v1{path}", params=params,
                        headers={"Authorization": f"Bearer {sim.api_key}"}, timeout=10)


def api_snapshot(sim: Simulator) -> dict[str, Any]:
    """Everything the API shows now, read with plain requests (independent of the connector)."""
    workflows = api_get(sim, "/workflows", limit=100).json()["data"]
    runs: dict[str, dict[str, Any]] = {}
    steps: dict[str, dict[str, Any]] = {}
    for wf in workflows:
        offset = 0
        while True:
            page = api_get(sim, f"/workflows/{wf['id']}/runs", limit=100, offset=offset).json()
            for run in page["data"]:
                runs[run["id"]] = {**run, "workflow_id": wf["id"]}
                for step in api_get(sim, f"/workflows/{wf['id']}/runs/{run['id']}/steps",
                                    include_result="true").json()["data"]:
                    steps[step["id"]] = {**step, "workflow_id": wf["id"], "run_id": run["id"]}
            offset += 100
            if offset >= page["pagination"]["total"]:
                break
    return {"workflows": {w["id"]: w for w in workflows}, "runs": runs, "steps": steps}


def ms_between(start: str | None, end: str | None) -> int | None:
    if not start or not end:
        return None
    delta = datetime.fromisoformat(end) - datetime.fromisoformat(start)
    return round(delta.total_seconds() * 1000)


# A DuckDB file, or where a reader finds a dataset (analysis.connect's arguments, e.g.
# {"destination": "postgres", "dataset": "onepin"}): either way "onepin.runs" names a table.
Db = Path | str | dict[str, Any]


def table(db: Db, sql: str) -> list[tuple[Any, ...]]:
    if isinstance(db, dict):
        with analysis.connect(**db) as con:
            return con.sql(sql).fetchall()
    with duckdb.connect(str(db), read_only=True) as con:
        return con.sql(sql).fetchall()


def rows_by_id(db: Db, name: str, columns: str) -> dict[str, tuple[Any, ...]]:
    return {r[0]: r[1:] for r in table(db, f"select id, {columns} from onepin.{name}")}


def assert_matches_api(db: Db, snap: dict[str, Any]) -> None:
    """Tables equal what the API shows: ids, values, derived columns; no duplicates."""
    for name in ("workflows", "runs", "run_steps"):
        (total, distinct), = table(db, f"select count(*), count(distinct id) from onepin.{name}")
        assert total == distinct, f"duplicates in {name}"
    workflows = rows_by_id(db, "workflows", "name, runs_count")
    assert workflows == {w["id"]: (w["name"], w["runs_count"]) for w in snap["workflows"].values()}
    runs = rows_by_id(db, "runs", "workflow_id, status, run_number, duration_ms, "
                                  "active_duration_ms, triggered_by__user_name, paused_ms, "
                                  "total_steps, finished_steps")
    expected_runs = {}
    for r in snap["runs"].values():
        total = ms_between(r["started_at"], r["completed_at"])
        active = total - (r["paused_ms"] or 0) if total is not None else None
        expected_runs[r["id"]] = (r["workflow_id"], r["status"], r["run_number"], total, active,
                                  r["triggered_by"]["user_name"], r["paused_ms"],
                                  r["total_steps"], r["finished_steps"])
    assert runs == expected_runs
    steps = rows_by_id(db, "run_steps", "workflow_id, run_id, node_id, status, iteration, "
                                        "duration_ms, error")
    assert steps == {s["id"]: (s["workflow_id"], s["run_id"], s["node_id"], s["status"],
                               s["iteration"], ms_between(s["started_at"], s["completed_at"]),
                               s["error"]) for s in snap["steps"].values()}


MOVES_WITH_STEPS = ("status", "total_steps", "finished_steps", "finished_nodes", "started_at",
                    "paused_at", "completed_at")
SETTLED = {"completed", "failed", "cancelled", "skipped", "running"}


def moved(before: dict[str, Any], after: dict[str, Any]) -> bool:
    """A run's list item changed in a field that moves when its steps do."""
    return any(before[f] != after[f] for f in MOVES_WITH_STEPS)


def unsettled(snap: dict[str, Any], run_id: str) -> bool:
    """The run's steps include one that may change with nothing in its run's item moving."""
    return any(s["status"] not in SETTLED for s in snap["steps"].values() if s["run_id"] == run_id)


def refetched_open_runs(before: dict[str, Any], after: dict[str, Any]) -> set[str]:
    """Runs open in snapshot ``before`` whose steps a load at ``after`` must fetch again."""
    return {i for i, r in before["runs"].items() if r["status"] not in TERMINAL
            and (moved(r, after["runs"][i]) or unsettled(before, i))}


def start_load(sim: Simulator, workdir: Path, phase: str, *args: str) -> subprocess.Popen[str]:
    """``onepin-etl load`` in a process of its own, SIGKILLed at ``phase`` (tests/crash_runner)."""
    env = {**os.environ, "ONEPIN_API_KEY": sim.api_key, "ONEPIN_BASE_URL": sim.base_url,
           "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-m", "tests.crash_runner", phase, "load",
         "--pipelines-dir", str(workdir / "pipelines"), *args],
        cwd=workdir, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def kill_during_extract(sim: Simulator, process: subprocess.Popen[str], after_steps: int) -> None:
    """SIGKILL once the simulator has answered ``after_steps`` steps requests (mid-extract)."""
    deadline = time.monotonic() + 60
    while sim.stats.snapshot()["requests"].get("steps", 0) < after_steps:
        assert process.poll() is None, "the load ended before the kill: " + \
            (process.stderr.read() if process.stderr else "")
        assert time.monotonic() < deadline, "the load never got going"
        time.sleep(0.005)
    process.send_signal(signal.SIGKILL)


NOTEBOOK = ROOT / "notebooks" / "step_analysis.ipynb"
NOTEBOOK_FIGURES = ["durations_by_node_type.png", "failure_rate_by_node_type.png",
                    "p95_over_time.png", "pass_rate_trend.png", "run_timeline.png"]


def execute_notebook(workdir: Path, monkeypatch: Any, **env: str) -> Any:
    """Run the notebook top to bottom with ``env`` (``ONEPIN_…`` parameters) set; it saves its
    charts under ``workdir/figures``. Returns the executed notebook."""
    import nbformat
    from nbclient import NotebookClient

    for name, value in {**env, "ONEPIN_FIGURE_DIR": str(workdir / "figures"),
                        "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")
                        }.items():
        monkeypatch.setenv(name, value)
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(notebook, timeout=120, kernel_name="python3",
                   resources={"metadata": {"path": str(NOTEBOOK.parent)}}).execute()
    return notebook


def open_runs(db: Path) -> int:
    with duckdb.connect(str(db), read_only=True) as con:
        (n,), = con.execute("select count(*) from onepin.runs where status not in "
                            "('completed', 'failed', 'cancelled')").fetchall()
    return int(n)


@contextmanager
def duckdb_held(db: Path) -> Iterator[None]:
    """Another program (a notebook, the duckdb CLI) holds ``db`` open meanwhile."""
    holder = subprocess.Popen(
        [sys.executable, "-c", "import duckdb, sys, time; c = duckdb.connect(sys.argv[1], "
         "read_only=True); print('ready', flush=True); time.sleep(60)", str(db)],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
        yield
    finally:
        holder.kill()
        holder.wait()


def waiting(limiter: Any, count: int) -> None:
    """Until ``count`` requests wait in ``limiter`` (a ``RequestLimiter``, in its
    ``Condition.wait``)."""
    deadline = time.monotonic() + 10
    while len(limiter._cond._waiters) < count:
        assert time.monotonic() < deadline, "the requests never waited"
        time.sleep(0.005)
