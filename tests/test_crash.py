"""Crash safety: a load killed with SIGKILL in extract, normalize or load is finished by the next
run, which gives exactly the tables of an uninterrupted load and leaves the state right."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import pytest

from onepin_sim import Simulator
from tests.helpers import (
    TERMINAL,
    api_snapshot,
    assert_matches_api,
    kill_during_extract,
    open_runs,
    start_load,
    unsettled,
)


def crash_then_recover(sim: Simulator, cli: Any, workdir: Path, phase: str, *,
                       first_load_ok: bool, row_format: str = "arrow") -> None:
    db = workdir / "onepin_etl.duckdb"
    flags = ("--row-format", row_format)
    if first_load_ok:
        cli("load", *flags)
        sim.advance(6 * 3600)  # the crash hits an incremental load with state to protect
    sim.stats.reset()
    if phase == "extract":
        sim.set_faults(latency_ms=40)  # slow enough to be killed in the middle
        process = start_load(sim, workdir, "none", "--concurrency", "2", *flags)
        kill_during_extract(sim, process, after_steps=8)
    else:
        process = start_load(sim, workdir, phase, *flags)
    _, stderr = process.communicate(timeout=180)
    assert process.returncode == -signal.SIGKILL, stderr[-2000:]
    sim.set_faults(latency_ms=0)

    cli("load", *flags)
    assert_matches_api(db, api_snapshot(sim))  # exact tables: none lost, none duplicated

    # The state is right too: an unchanged re-load reads the workflow list, one request per
    # workflow with open runs, and the steps of open runs only where a pending step could have
    # started unseen; nothing else.
    snap = api_snapshot(sim)
    open_now = {i for i, r in snap["runs"].items() if r["status"] not in TERMINAL}
    assert len(open_now) == open_runs(db)
    sim.stats.reset()
    cli("load", *flags)
    requests = sim.stats.snapshot()["requests"]
    assert requests.get("steps", 0) == sum(unsettled(snap, i) for i in open_now)
    assert requests.get("runs", 0) + requests.get("run", 0) == len(
        {snap["runs"][i]["workflow_id"] for i in open_now})
    assert_matches_api(db, api_snapshot(sim))


def test_sigkill_during_load_is_finished_by_the_next_run(sim: Simulator, cli: Any,
                                                         workdir: Path) -> None:
    crash_then_recover(sim, cli, workdir, "load", first_load_ok=True)


@pytest.mark.slow
@pytest.mark.parametrize("row_format", ["arrow", "dicts"])
@pytest.mark.parametrize("first_load_ok", [True, False], ids=["incremental", "first"])
@pytest.mark.parametrize("phase", ["extract", "normalize", "load", "commit"])
def test_sigkill_matrix(sim: Simulator, cli: Any, workdir: Path, phase: str,
                        first_load_ok: bool, row_format: str) -> None:
    crash_then_recover(sim, cli, workdir, phase, first_load_ok=first_load_ok,
                       row_format=row_format)
