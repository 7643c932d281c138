"""The resume benchmark: a first load SIGKILLed at 25%, 50%, 75% and 95% of its requests, then
the next load, against one clean first load, side by side in one run.

    .venv/bin/python -m bench.resume              # or: make bench (runs it after bench.run)

Each load is ``onepin-etl load`` in a process of its own into a fresh DuckDB file; the simulator
runs in its own process and counts the requests it answers (``/_sim/stats``). The kill comes
when the simulator has answered the given share of a clean load's requests. The figure is
(killed load's requests + resumed load's) ÷ clean load's: the target is ≤ 1.1. After each resume
the tables must equal the clean load's (every value hashed), or the benchmark fails. Writes
``bench/results/resume.json`` and ``resume.md``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import click

from bench.run import _admin, console, machine, simulator_process, tables_digest
from onepin_sim import WorldConfig

KILL_AT = (0.25, 0.5, 0.75, 0.95)
POLL_S = 0.01


def load(work: Path, name: str, env: dict[str, str], base_url: str,
         kill_after: int | None = None) -> tuple[int, float]:
    """``onepin-etl load`` into ``work/name.duckdb``: (requests answered, wall seconds); killed
    once the simulator has answered ``kill_after`` requests."""
    _admin(base_url, "stats/reset")
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "onepin_etl.cli", "load", "--duckdb-path", f"{name}.duckdb",
         "--pipelines-dir", str(work / f"{name}_pipelines")],
        env=env, cwd=work, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if kill_after is not None:
        while _admin(base_url, "stats")["total"] < kill_after:
            if process.poll() is not None:
                raise click.ClickException(f"{name}: the load ended before the kill")
            time.sleep(POLL_S)
        process.send_signal(signal.SIGKILL)
    _, err = process.communicate()
    wall = time.perf_counter() - started
    expected = -signal.SIGKILL if kill_after is not None else 0
    if process.returncode != expected:
        raise click.ClickException(f"{name} exited {process.returncode}:\n{err[-3000:]}")
    return int(_admin(base_url, "stats")["total"]), wall


@click.command()
@click.option("--workflows", default=300, show_default=True)
@click.option("--runs", default=3, show_default=True, help="Runs per workflow.")
@click.option("--nodes", default=8, show_default=True)
@click.option("--latency-ms", default=25.0, show_default=True)
@click.option("--out", default="bench/results/resume.json", show_default=True)
def main(workflows: int, runs: int, nodes: int, latency_ms: float, out: str) -> None:
    """A first load killed at 25/50/75/95% and resumed, against a clean one."""
    world = WorldConfig(seed=2026, workflows=workflows, runs=runs, nodes=nodes)
    work = Path(tempfile.mkdtemp(prefix="onepin-resume-"))
    console.print(f"[bold]Resume: {workflows} workflows x {runs} runs x {nodes} nodes, "
                  f"{latency_ms:g} ms latency[/]")
    rows: list[dict[str, Any]] = []
    with simulator_process(world, latency_ms) as (base_url, api_key):
        env = {**os.environ, "ONEPIN_BASE_URL": base_url, "ONEPIN_API_KEY": api_key,
               "RUNTIME__DLT_TELEMETRY": "false"}
        clean, clean_s = load(work, "clean", env, base_url)
        console.print(f"  clean first load: {clean} requests, {clean_s:.1f} s")
        for share in KILL_AT:
            name = f"killed_{round(share * 100)}"
            killed, killed_s = load(work, name, env, base_url, kill_after=round(share * clean))
            resumed, resumed_s = load(work, name, env, base_url)
            if tables_digest(work / f"{name}.duckdb") != tables_digest(work / "clean.duckdb"):
                raise click.ClickException(f"{name}: the resumed tables differ from the clean")
            rows.append({"killed_at": share, "killed_requests": killed,
                         "resumed_requests": resumed, "clean_requests": clean,
                         "ratio": round((killed + resumed) / clean, 3),
                         "killed_s": round(killed_s, 1), "resumed_s": round(resumed_s, 1),
                         "clean_s": round(clean_s, 1)})
            console.print(f"  {rows[-1]}")
    results = {"machine": machine(), "started": time.strftime("%Y-%m-%d %H:%M"),
               "config": {**asdict(world), "latency_ms": latency_ms}, "rows": rows}
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(json.dumps(results, indent=2) + "\n")
    Path(out).with_suffix(".md").write_text(markdown(results))
    console.print(markdown(results))


def markdown(results: dict[str, Any]) -> str:
    cfg, mach = results["config"], results["machine"]
    lines = ["| killed at | killed load's requests | resumed load's | clean load's | "
             "(killed + resumed) ÷ clean | resumed s | clean s |",
             "|---:|---:|---:|---:|---:|---:|---:|"]
    for row in results["rows"]:
        lines.append(f"| {row['killed_at']:.0%} | {row['killed_requests']:,} | "
                     f"{row['resumed_requests']:,} | {row['clean_requests']:,} | "
                     f"{row['ratio']}× | {row['resumed_s']} | {row['clean_s']} |")
    lines += ["", f"Measured {results['started']} UTC on {mach['cores']} cores, "
              f"duckdb {mach['duckdb']}, dlt {mach['dlt']}; a first load of "
              f"{cfg['workflows']} workflows × {cfg['runs']} runs × {cfg['nodes']} nodes, "
              f"{cfg['latency_ms']:g} ms latency, default settings; SIGKILL when the simulator "
              "had answered that share of a clean load's requests; the resumed tables equal the "
              "clean load's."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
