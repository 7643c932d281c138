"""Latency that varies: ``python -m bench.latency`` (part of ``make bench``).

Per latency profile of the simulator (``onepin_sim.latency``), side by side in one run, each
load a first load in a process of its own against the simulator in another:

- the default load (the congestion limit, capped at 32);
- fixed concurrency 8, 16 and 32 (``bench.jobs project --fixed-concurrency``);
- the simplest honest baseline: a plain 32-thread ``requests`` fetch of exactly the requests the
  default load sent (recorded by the simulator), the measured fetch floor.

The worlds: 20 workflows of 100 runs, and one workflow of 2,000 runs (the listing of one big
workflow is paged, the small ones are listed at once). The saturating server has 8 workers: it
answers at most 8 requests at once and queues the rest. Figures are whole-process wall times.

Writes ``bench/results/latency.json`` and ``latency.md`` (docs/performance.md).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import click

from bench.run import (
    Measure,
    measured,
    results_options,
    run_job,
    save,
    simulator_process,
    started,
)
from onepin_sim import WorldConfig

MEDIAN_MS = 30.0
SATURATING_CAPACITY = 8
PROFILES = ("constant", "uniform", "lognormal", "bimodal", "saturating")
WIDE = WorldConfig(seed=2027, workflows=20, runs=100, nodes=8)
TALL = WorldConfig(seed=2028, workflows=1, runs=2000, nodes=8)
FIXED = (8, 16, 32)


def _requests(base_url: str) -> list[str]:
    import requests

    paths: list[str] = requests.get(f"{base_url}/_sim/requests", timeout=30).json()
    return paths


def _load(label: str, base_url: str, env: dict[str, str], work: Path, *flags: str) -> Measure:
    place = Path(tempfile.mkdtemp(prefix="load-", dir=work))
    return run_job(label, ["project", str(place / "load.duckdb"), str(place / "pipelines"),
                           *flags], env, base_url)


def profile_row(profile: str, world: WorldConfig, work: Path, quick: bool) -> dict[str, Any]:
    faults: dict[str, Any] = {"latency_profile": profile, "record_requests": True,
                              "capacity": SATURATING_CAPACITY}
    name = f"{world.workflows} × {world.runs}, {profile}"
    with simulator_process(world, MEDIAN_MS, faults) as (base_url, api_key):
        env = {**os.environ, "ONEPIN_BASE_URL": base_url, "ONEPIN_API_KEY": api_key,
               "RUNTIME__DLT_TELEMETRY": "false"}
        default = _load(f"{name}: default", base_url, env, work, "--concurrency", "32")
        paths = work / f"paths-{profile}-{world.workflows}.json"
        paths.write_text(json.dumps(_requests(base_url)))
        fixed = {n: _load(f"{name}: fixed {n}", base_url, env, work, "--concurrency", str(n),
                          "--fixed-concurrency") for n in (FIXED[-1:] if quick else FIXED)}
        fetch = run_job(f"{name}: plain 32-thread fetch", ["fetch", str(paths)], env, base_url)
    best_n, best = min(fixed.items(), key=lambda item: item[1].process_s)
    floor_s = fetch.wall_s
    row = {
        "world": f"{world.workflows} × {world.runs}", "profile": profile,
        "requests": default.requests, "default_s": default.process_s,
        "default_most_in_flight": default.most_in_flight,
        "default_answer_ms": default.answer_ms,
        "fixed_s": {str(n): m.process_s for n, m in fixed.items()},
        "fixed_answer_ms": {str(n): m.answer_ms for n, m in fixed.items()},
        "best_fixed": best_n, "best_fixed_s": best.process_s,
        "vs_best_fixed": round(default.process_s / best.process_s, 3),
        "fetch_s": floor_s, "fetch_limit_s": round(2.5 * floor_s + 4, 2),
        "vs_fetch": round(default.process_s / floor_s, 2),
    }
    if profile == "saturating":
        row["p95_vs_median"] = round((default.answer_ms.get("p95") or 0) / MEDIAN_MS, 2)
        row["throughput_vs_best"] = round(best.process_s / default.process_s, 3)
    return row


def markdown(results: dict[str, Any]) -> str:
    lines = ["| world, latency (median 30 ms) | requests | default s | most in flight | "
             "fixed 8 / 16 / 32 s | default ÷ best fixed | plain 32-thread fetch s | "
             "default ÷ fetch | limit 2.5 × fetch + 4 s |",
             "|---|---:|---:|---:|---|---:|---:|---:|---:|"]
    for r in results["rows"]:
        fixed = " / ".join(f"{r['fixed_s'][str(n)]:.1f}" if str(n) in r["fixed_s"] else "–"
                           for n in FIXED)
        lines.append(f"| {r['world']}, {r['profile']} | {r['requests']:,} | "
                     f"{r['default_s']:.1f} | {r['default_most_in_flight']} | {fixed} | "
                     f"{r['vs_best_fixed']}× | {r['fetch_s']:.1f} | {r['vs_fetch']}× | "
                     f"{r['fetch_limit_s']:.1f} |")
    for r in results["rows"]:
        if r["profile"] == "saturating":
            p95 = r["default_answer_ms"].get("p95")
            fixed_p95 = ", ".join(f"fixed {n}: {a.get('p95')} ms"
                                  for n, a in r["fixed_answer_ms"].items())
            lines += ["", f"Saturating server ({SATURATING_CAPACITY} workers, {r['world']}): the "
                      f"default's throughput is {r['throughput_vs_best']}× the best fixed "
                      f"concurrency's (fixed {r['best_fixed']}); its answers took {p95} ms at the "
                      f"p95, {r['p95_vs_median']}× the unloaded median ({fixed_p95})."]
    lines += ["", measured(results, "whole processes, every load a first load into a new "
                                    "DuckDB file, the simulator in another process.")]
    return "\n".join(lines) + "\n"


@click.command()
@click.option("--quick", is_flag=True, help="A smoke run: small worlds, fixed 32 only (the "
              "table is not written into the page).")
@results_options("latency")
def main(quick: bool, out: str, page: bool) -> None:
    """Default load, fixed concurrency and a plain fetch, per latency profile."""
    work = Path(tempfile.mkdtemp(prefix="onepin-latency-"))
    results = started({"rows": []})
    wide = WorldConfig(seed=WIDE.seed, workflows=4, runs=20, nodes=4) if quick else WIDE
    for profile in PROFILES[2:4] if quick else PROFILES:
        results["rows"].append(profile_row(profile, wide, work, quick))
    if not quick:
        results["rows"].append(profile_row("lognormal", TALL, work, quick))
    save(results, markdown(results), out,
         ("<!-- latency:start -->", "<!-- latency:end -->") if page and not quick else None)


if __name__ == "__main__":
    main()
