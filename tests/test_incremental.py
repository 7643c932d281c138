"""Incremental loads cost what changed, and every kind of change is still caught: a new run, an
open run progressing, pausing, resuming and finishing, a late arrival inside the lookback, a new
workflow, a workflow whose runs all finished."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from onepin_sim import Simulator, WorldConfig
from onepin_source.fanout import interleave
from tests.helpers import TERMINAL, api_get, api_snapshot, assert_matches_api, invoke_cli


def requests_of(sim: Simulator) -> dict[str, int]:
    counts: dict[str, int] = sim.stats.snapshot()["requests"]
    sim.stats.reset()
    return counts


def test_an_open_run_is_followed_through_pause_resume_and_finish(workdir: Path) -> None:
    world = WorldConfig(seed=11, workflows=3, runs=24, nodes=8)
    with Simulator(world) as sim:
        wf, index = next((w, i) for w in range(world.workflows) for i in range(world.runs, 200)
                         if sim.world.plan(w, i).pause and sim.world.plan(w, i).final_status
                         == "completed")
        plan = sim.world.plan(wf, index)
        assert plan.pause is not None
        paused_at, resumed_at, _ = plan.pause
        cli = invoke_cli(sim, workdir)
        stages = {"running": (plan.started_ms + paused_at) // 2, "paused": paused_at + 1000,
                  "paused later": (paused_at + resumed_at) // 2, "resumed": resumed_at + 1000,
                  "finished": plan.end_ms + 1000}
        seen = []
        for stage, moment in stages.items():
            sim.clock.set(moment)
            cli("load")
            run = api_get(sim, f"/workflows/{sim.world.workflow_id(wf)}/runs/{plan.run_id}"
                          ).json()["data"]
            seen.append((stage, run["status"]))
            assert_matches_api(workdir / "onepin_etl.duckdb", api_snapshot(sim))
        assert seen == [("running", "running"), ("paused", "paused"),
                        ("paused later", "paused"), ("resumed", "running"),
                        ("finished", "completed")]


def test_a_late_run_inside_the_lookback_is_loaded(workdir: Path) -> None:
    # Every 3rd run shows up 5 minutes after its created_at; runs come every 2 minutes, so a
    # late run is older than the newest run loaded (the mark) when it appears.
    world = WorldConfig(seed=4, workflows=2, runs=30, nodes=5, run_interval_s=120,
                        late_run_every=3, late_by_s=300)
    with Simulator(world) as sim:
        cli = invoke_cli(sim, workdir)
        created = sim.world.run_created_ms(0, 32)  # a late run of workflow 0 (index % 3 == 2)
        assert sim.world.is_late(32)
        sim.clock.set(created + 200_000)  # run 33 exists, run 32 not yet
        cli("load")
        late = sim.world.plan(0, 32).run_id
        assert late not in api_snapshot(sim)["runs"]
        sim.clock.set(created + 400_000)
        requests_of(sim)
        cli("load")
        snap = api_snapshot(sim)
        assert late in snap["runs"]
        assert_matches_api(workdir / "onepin_etl.duckdb", snap)


def test_a_new_workflow_is_loaded_and_a_finished_one_costs_nothing(workdir: Path) -> None:
    world = WorldConfig(seed=8, workflows=2, runs=6, nodes=5, run_interval_s=6 * 3600,
                        new_workflow_every_s=4 * 3600)
    with Simulator(world) as sim:
        cli = invoke_cli(sim, workdir)
        sim.advance(3600)
        cli("load")
        sim.advance(5 * 3600)  # a new workflow (with a run), and the others' runs finish
        cli("load")
        snap = api_snapshot(sim)
        assert len(snap["workflows"]) == 3
        assert_matches_api(workdir / "onepin_etl.duckdb", snap)
        assert all(r["status"] in TERMINAL for r in snap["runs"].values()
                   if r["workflow_id"] != sim.world.workflow_id(2))
        # Nothing can have changed in the finished workflows: no request for them
        requests_of(sim)
        sim.advance(60)
        cli("load")
        counts = requests_of(sim)
        open_in_new = [r for r in api_snapshot(sim)["runs"].values()
                       if r["workflow_id"] == sim.world.workflow_id(2)
                       and r["status"] not in TERMINAL]
        assert counts.get("runs", 0) + counts.get("run", 0) == (1 if open_in_new else 0)
        assert counts["workflows"] == 1
        assert_matches_api(workdir / "onepin_etl.duckdb", api_snapshot(sim))


def test_interleave_yields_every_item_and_raises_the_first_error() -> None:
    def job(n: int, fail: bool = False) -> Any:
        def run() -> Iterator[int]:
            for i in range(n):
                time.sleep(0.001)
                yield i
            if fail:
                raise ValueError("boom")
        return run

    items = list(interleave([job(5), job(3), job(4)], threads=2, buffer=2))
    assert sorted(items) == sorted([*range(5), *range(3), *range(4)])
    with pytest.raises(ValueError, match="boom"):
        list(interleave([job(50), job(2, fail=True)], threads=2))
    assert list(interleave([], threads=4)) == []
    assert not [t for t in threading.enumerate() if t.name.startswith("onepin-runs")]
