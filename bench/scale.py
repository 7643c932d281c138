"""Cost that follows the change, at any size: ``python -m bench.scale`` (part of ``make bench``).

Per workspace size (1,000, 3,000 and 10,000 workflows of 10 runs, a 5 ms lognormal median
latency), each load a whole process against the simulator in another, into one DuckDB file:

1. the first load: wall time, requests, load packages, peak RSS, and how right the progress
   line's ETA was at each piece (its estimate ÷ the time the load really had left);
2. an unchanged re-load;
3. a re-load after the clock moved to the next new run (one run changed, and whatever open runs
   moved meanwhile).

Writes ``bench/results/scale.json`` and ``scale.md`` (docs/performance.md).
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any

import click

from bench.run import (
    _admin,
    changes_between,
    measured,
    next_event_ms,
    results_options,
    run_job,
    save,
    simulator_process,
    started,
)
from onepin_sim import World, WorldConfig

SIZES = (1000, 3000, 10000)
RUNS = 10
LATENCY_MS = 5.0
_ETA = re.compile(r"ETA (\d+(?:\.\d+)?) (s|min|h)\b")
_UNIT_S = {"s": 1.0, "min": 60.0, "h": 3600.0}


def eta_accuracy(progress_file: Path, total_s: float) -> dict[str, Any]:
    """Per piece, the ETA given ÷ the time the load had left then (None: it said unknown)."""
    ratios: list[float | None] = []
    for line in progress_file.read_text().splitlines():
        piece = json.loads(line)
        left = total_s - piece["elapsed_s"]
        found = _ETA.search(piece["line"])
        if "none left" in piece["line"] or left <= 1.0:
            continue  # the last piece: nothing to predict
        ratios.append(round(float(found.group(1)) * _UNIT_S[found.group(2)] / left, 2)
                      if found else None)
    known = [r for r in ratios if r is not None]
    worst = max((max(r, 1 / r) for r in known), default=None)
    return {"ratios": ratios, "worst_factor": round(worst, 2) if worst else None,
            "unknown": len(ratios) - len(known)}


def size_row(workflows: int, work: Path) -> dict[str, Any]:
    world = WorldConfig(seed=91, workflows=workflows, runs=RUNS, nodes=8)
    place = work / f"w{workflows}"
    place.mkdir()
    job = ["project", str(place / "load.duckdb"), str(place / "pipelines"), "--concurrency",
           "32"]
    progress = place / "progress.jsonl"
    row: dict[str, Any] = {"workflows": workflows, "runs": workflows * RUNS}
    with simulator_process(world, LATENCY_MS, {"latency_profile": "lognormal"}) as (
            base_url, api_key):
        env = {**os.environ, "ONEPIN_BASE_URL": base_url, "ONEPIN_API_KEY": api_key,
               "RUNTIME__DLT_TELEMETRY": "false"}
        first = run_job(f"{workflows:,} × {RUNS}: first load", [
            *job, "--progress-file", str(progress)], env, base_url)
        row["first"] = _figures(first, 0)
        row["first"]["eta"] = eta_accuracy(progress, first.wall_s)
        unchanged = run_job(f"{workflows:,} × {RUNS}: unchanged re-load", job, env, base_url,
                            loads_steps=False)
        row["unchanged"] = _figures(unchanged, first.packages or 0)
        now = _admin(base_url, "clock")["now_ms"]
        local = World(world)
        target = next_event_ms(local, now, "new_run")
        _admin(base_url, f"clock/advance?seconds={(target - now) / 1000}", {})
        changed = run_job(f"{workflows:,} × {RUNS}: re-load, the next new run", job, env,
                          base_url, loads_steps=False)
        row["one_changed"] = {**_figures(changed, unchanged.packages or 0),
                              **changes_between(local, now, target)}
    return row


def _figures(measure: Any, packages_before: int) -> dict[str, Any]:
    return {"process_s": measure.process_s, "requests": measure.requests,
            "packages": (measure.packages or 0) - packages_before,
            "peak_rss_mb": measure.peak_rss_mb,
            "requests_per_s": round((measure.requests or 0) / measure.process_s, 1)}


def markdown(results: dict[str, Any]) -> str:
    lines = ["| workflows × 10 runs | first load s | requests | s per 1,000 requests | packages "
             "| peak RSS MB | ETA: worst factor (unknown) | unchanged re-load s (packages, "
             "requests) | one run changed s (packages, requests) |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results["rows"]:
        f, u, c = r["first"], r["unchanged"], r["one_changed"]
        eta = f["eta"]
        lines.append(
            f"| {r['workflows']:,} | {f['process_s']:.1f} | {f['requests']:,} | "
            f"{1000 * f['process_s'] / f['requests']:.2f} | {f['packages']} | "
            f"{f['peak_rss_mb']:.0f} | {eta['worst_factor']}× ({eta['unknown']}) | "
            f"{u['process_s']:.1f} ({u['packages']}, {u['requests']:,}) | "
            f"{c['process_s']:.1f} ({c['packages']}, {c['requests']:,}) |")
    lines += ["", measured(results, f"lognormal latency, median {LATENCY_MS:g} ms; whole "
                                    "processes, one DuckDB file per size. The ETA factor: the "
                                    "worst, over the pieces, of the ETA given ÷ the time left "
                                    "(or its inverse); unknown: pieces whose progress line said "
                                    "it did not know.")]
    return "\n".join(lines) + "\n"


@click.command()
@click.option("--sizes", default=",".join(map(str, SIZES)), show_default=True,
              help="Workspace sizes in workflows, comma-separated.")
@results_options("scale")
def main(sizes: str, out: str, page: bool) -> None:
    """First loads and re-loads of workspaces of growing size."""
    work = Path(tempfile.mkdtemp(prefix="onepin-scale-"))
    results = started({"rows": [size_row(int(n), work) for n in sizes.split(",")]})
    save(results, markdown(results), out,
         ("<!-- scale:start -->", "<!-- scale:end -->") if page else None)


if __name__ == "__main__":
    main()
