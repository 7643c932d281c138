"""The API's limits benchmark: ``python -m bench.limits`` (part of ``make bench``).

Side by side in one run, each load a process of its own against the simulator in a process of
its own (``bench.run``'s jobs), every load a first load into a fresh DuckDB file:

1. **Quota-bound first loads**: a fixed-window quota the load must learn, sending only
   ``Retry-After`` and then also rate-limit headers; and the quota that failed first loads
   before (40 requests per 2 s, ``Retry-After`` only, 303 workflows), each ``--repeat`` times
   (3 by default; the median is the figure); and once, the issue's 1,000 × 3 first load (4,010
   requests) at a quota of 1,000 a minute with time shrunk tenfold, where learning the quota
   weighs what it would on the real API. The figure is wall time ÷ (answered requests ÷
   quota): 1.0 is the quota's own floor.
2. **A budget**: ``--max-requests-per-minute N``; the simulator's most requests in any 60 s.
3. **Nothing limiting**: the default (the limit rises from 8 up to 32 in flight) beside the
   earlier fixed concurrency of 8 (``--concurrency 8``), on ``bench.run``'s full load (50 × 100
   runs at 25 ms, the one measured against dlt's ``rest_api``) and the 1,000 × 3 world at 50 ms;
   and the default with no latency at all (not a floor: the simulator then answers as fast as
   it can and takes the second core from the load). The default runs ``--repeat`` times (the
   median is the figure), the others once.

Writes ``bench/results/limits.json`` and ``limits.md`` (docs/performance.md).
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Any

import click

from bench.run import (
    FULL_LOAD,
    FULL_LOAD_LATENCY_MS,
    INCREMENTAL_LATENCY_MS,
    INCREMENTAL_WORKFLOWS,
    LATENCY_PROFILE,
    Measure,
    incremental_world,
    machine,
    measured,
    run_job,
    save,
    simulator_process,
)
from onepin_sim import WorldConfig

QUOTA_WORLD = WorldConfig(seed=31, workflows=200, runs=3, nodes=8)
FAILED_WORLD = WorldConfig(seed=32, workflows=303, runs=3, nodes=8)
# The first load (4,010 requests) at its quota, 1,000 a minute, with time shrunk tenfold
BIG_QUOTA_WORLD = WorldConfig(seed=35, workflows=1000, runs=3, nodes=8)
BUDGET_WORLD = WorldConfig(seed=33, workflows=100, runs=3, nodes=8)
# bench.run's full load (the one measured against dlt's rest_api) and its incremental world
FREE_WORLDS = {
    "50 × 100 runs, 25 ms": (FULL_LOAD, FULL_LOAD_LATENCY_MS),
    "1000 × 3 runs, 50 ms": (incremental_world(INCREMENTAL_WORKFLOWS), INCREMENTAL_LATENCY_MS)}


def _stats(base_url: str) -> dict[str, Any]:
    import requests

    return dict(requests.get(f"{base_url}/_sim/stats", params={"window": 60}, timeout=10).json())


def _load(name: str, world: WorldConfig, latency_ms: float, faults: dict[str, Any], work: Path,
          *flags: str) -> tuple[Measure, dict[str, Any]]:
    """One first load in a fresh simulator; the measure and the simulator's counts."""
    place = Path(tempfile.mkdtemp(prefix="load-", dir=work))  # a first load, every time
    with simulator_process(world, latency_ms, faults) as (base_url, api_key):
        env = {**os.environ, "ONEPIN_BASE_URL": base_url, "ONEPIN_API_KEY": api_key,
               "RUNTIME__DLT_TELEMETRY": "false"}
        measure = run_job(name, ["project", str(place / "load.duckdb"),
                                 str(place / "pipelines"), *flags], env, base_url)
        return measure, _stats(base_url)


def quota_rows(work: Path, quick: bool, repeat: int) -> list[dict[str, Any]]:
    """Each case ``repeat`` times (the median is the figure): the simulator's windows are
    fixed and aligned to the clock, so a load starts anywhere in one, and a single run's wall
    time moves by up to a window (12% at 6 s)."""
    rows = []
    cases = [("100 per 6 s, Retry-After only", QUOTA_WORLD, 100, 6, False, repeat),
             ("100 per 6 s, with headers", QUOTA_WORLD, 100, 6, True, repeat),
             ("40 per 2 s, Retry-After only (failed before)", FAILED_WORLD, 40, 2, False, repeat),
             ("100 per 6 s, Retry-After only, the issue's 1,000 × 3 first load", BIG_QUOTA_WORLD,
              100, 6, False, 1)]
    for label, world, limit, window, headers, times in cases[:1] if quick else cases:
        faults = {"rate_limit_per_min": limit, "rate_window_s": window,
                  "rate_limit_headers": headers}
        runs = []
        for _ in range(1 if quick else times):
            measure, stats = _load(f"quota {label}", world, 50, faults, work,
                                   "--concurrency", "32")
            throttled = int(stats["statuses"].get("429", 0))
            answered = stats["total"] - throttled
            floor = answered / (limit / window)
            runs.append({"wall_s": measure.wall_s, "answered": answered, "throttled": throttled,
                         "throttled_share": round(throttled / stats["total"], 4),
                         "quota_floor_s": round(floor, 1),
                         "vs_floor": round(measure.wall_s / floor, 3)})
        row = dict(sorted(runs, key=lambda r: r["vs_floor"])[len(runs) // 2])
        row["case"] = label
        row["runs"] = runs
        rows.append(row)
    return rows


def budget_row(work: Path, quick: bool) -> dict[str, Any]:
    world, budget = (WorldConfig(seed=33, workflows=20, runs=3, nodes=8), 50) if quick \
        else (BUDGET_WORLD, 300)
    measure, stats = _load(f"budget {budget}/min", world, 50, {}, work,
                           "--concurrency", "32", "--max-requests-per-minute", str(budget))
    return {"budget": budget, "wall_s": measure.wall_s, "requests": stats["total"],
            "most_in_any_60_s": stats["most_in_any_window"]["requests"]}


def free_rows(work: Path, quick: bool, repeat: int) -> list[dict[str, Any]]:
    """The default ``repeat`` times (the median is the figure: one load's wall time moves by a
    few percent from run to run on a shared machine), the others once."""
    rows = []
    for label, (world, latency) in FREE_WORLDS.items():
        if quick:
            world = WorldConfig(seed=world.seed, workflows=20, runs=3, nodes=8)
        measured: dict[str, list[Measure]] = {}
        # The same load with no latency at all: what latency adds (the simulator then takes the
        # second core, so on 2 cores this can be slower than with latency)
        for variant, concurrency, ms, times in (("default", "32", latency, repeat),
                                                ("fixed 8", "8", latency, 1),
                                                ("no latency", "32", 0, 1)):
            measured[variant] = [_load(f"{label}: {variant}", world, ms, {}, work,
                                       "--concurrency", concurrency)[0]
                                 for _ in range(1 if quick else times)]
        defaults = [m.wall_s for m in measured["default"]]  # in run order
        default_s = sorted(defaults)[len(defaults) // 2]
        rows.append({"world": label, "default_s": default_s, "default_runs_s": defaults,
                     "fixed_8_s": measured["fixed 8"][0].wall_s,
                     "no_latency_s": measured["no latency"][0].wall_s,
                     "requests": measured["default"][0].requests,
                     "speedup": round(measured["fixed 8"][0].wall_s / default_s, 2)})
    return rows


def markdown(results: dict[str, Any]) -> str:
    lines = ["| quota-bound first load | runs | wall s | answered | 429s (share) | quota's floor s "
             "| ÷ floor (median) | ÷ floor (range) | 429 share (range) |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results["quota"]:
        ratios = [x["vs_floor"] for x in r["runs"]]
        shares = [x["throttled_share"] for x in r["runs"]]
        lines.append(f"| {r['case']} | {len(r['runs'])} | {r['wall_s']:.1f} | {r['answered']:,} "
                     f"| {r['throttled']} ({r['throttled_share']:.1%}) | {r['quota_floor_s']} | "
                     f"{r['vs_floor']}× | {min(ratios)}–{max(ratios)}× | "
                     f"{min(shares):.1%}–{max(shares):.1%} |")
    b = results["budget"]
    lines += ["", "| `--max-requests-per-minute` | wall s | requests | most in any 60 s |",
              "|---:|---:|---:|---:|",
              f"| {b['budget']} | {b['wall_s']:.1f} | {b['requests']} | "
              f"{b['most_in_any_60_s']} |"]
    lines += ["", "| nothing limiting, first load | default (8 → 32 in flight) s, median | "
              "default s, range | fixed 8 s | requests | speed-up | default, no latency s |",
              "|---|---:|---:|---:|---:|---:|---:|"]
    for r in results["free"]:
        runs = r["default_runs_s"]
        lines.append(f"| {r['world']} | {r['default_s']:.1f} | {min(runs):.1f}–{max(runs):.1f} "
                     f"({len(runs)} runs) | {r['fixed_8_s']:.1f} | {r['requests']} | "
                     f"{r['speedup']}× | {r['no_latency_s']:.1f} |")
    lines += ["", measured(results, f"{LATENCY_PROFILE} latency, median 50 ms for the quota "
                                    "loads; concurrency cap 32; every load a first load, a "
                                    "process of its own, the simulator in another.")]
    return "\n".join(lines) + "\n"


@click.command()
@click.option("--quick", is_flag=True, help="A smoke run: one quota case, small worlds.")
@click.option("--repeat", type=click.IntRange(min=1), default=3, show_default=True,
              help="Runs of each quota case and of each default unlimited load (the median is "
                   "the figure).")
@click.option("--out", default="bench/results/limits.json", show_default=True)
def main(quick: bool, repeat: int, out: str) -> None:
    """Quota-bound, budgeted and unlimited first loads, side by side."""
    work = Path(tempfile.mkdtemp(prefix="onepin-limits-"))
    results: dict[str, Any] = {"machine": machine(), "started": time.strftime("%Y-%m-%d %H:%M")}
    results["quota"] = quota_rows(work, quick, repeat)
    results["budget"] = budget_row(work, quick)
    results["free"] = free_rows(work, quick, repeat)
    save(results, markdown(results), out,
         None if quick else ("<!-- limits:start -->", "<!-- limits:end -->"))


if __name__ == "__main__":
    main()
