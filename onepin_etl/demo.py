"""``onepin-etl demo``: simulator -> DuckDB -> clock moves on -> incremental load -> report."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import duckdb
from rich.console import Console

from onepin_etl import health, html_report, report
from onepin_etl.destinations import Target
from onepin_etl.pipeline import load as run_load
from onepin_sim import Simulator, WorldConfig
from onepin_source.settings import TERMINAL_RUN_STATUSES

DEMO_WORLD = WorldConfig(seed=2026, workflows=8, runs=72, nodes=9)
ADVANCE_HOURS = 12


def _runs_by_id(path: Path) -> dict[str, str]:
    with duckdb.connect(str(path), read_only=True) as con:
        return dict(con.execute("select id, status from onepin.runs").fetchall())


def run_demo(out_dir: Path, console: Console, *, world: WorldConfig = DEMO_WORLD,
             top: int = 5) -> Path:
    """Run the whole story; returns the DuckDB file it wrote."""
    out_dir.mkdir(parents=True, exist_ok=True)
    db = out_dir / "onepin_demo.duckdb"
    db.unlink(missing_ok=True)  # a re-run starts from the simulator's first day again
    shutil.rmtree(out_dir / "pipelines", ignore_errors=True)
    target = Target(duckdb_path=str(db), pipelines_dir=str(out_dir / "pipelines"),
                    pipeline_name="onepin_demo")
    with Simulator(world) as sim:
        console.print(f"[bold]1.[/] Onepin simulator at {sim.base_url}: {world.workflows} "
                      f"workflows, {world.runs} runs each so far.")

        def load(label: str) -> None:
            sim.stats.reset()
            with console.status(f"{label}: extracting, normalizing and loading into {db} …"):
                run_load(target, api_key=sim.api_key, base_url=sim.base_url)
            requests = sim.stats.snapshot()["requests"]
            console.print(f"   {label}: {_n(requests.get('workflows', 0), 'workflow list page')}, "
                          f"{_n(requests.get('runs', 0), 'run list page')}, "
                          f"{_n(requests.get('run', 0), 'open-run re-read')}, "
                          f"{_n(requests.get('steps', 0), 'steps request')}.")

        load("First load")
        before = _runs_by_id(db)
        console.print(f"   Loaded {len(before)} runs; "
                      f"{sum(s not in TERMINAL_RUN_STATUSES for s in before.values())} still open.")
        sim.advance(ADVANCE_HOURS * 3600)
        console.print(f"[bold]2.[/] {ADVANCE_HOURS} simulated hours later, loading again "
                      "incrementally.")
        load("Incremental load")
        after = _runs_by_id(db)
        finished = sum(1 for i, s in before.items()
                       if s not in TERMINAL_RUN_STATUSES and after.get(i) in TERMINAL_RUN_STATUSES)
        ended = "run that was open has" if finished == 1 else "runs that were open have"
        console.print(f"   {_n(len(after) - len(before), 'new run')}; {finished} {ended} "
                      "finished; their steps were replaced.")
        as_of = datetime.fromtimestamp(sim.clock.now_ms / 1000, tz=UTC)
    console.print("[bold]3.[/] Report")
    report.render(report.build(target, top), "table", console)
    page = html_report.write_page(out_dir / "onepin_health.html", html_report.build_page(
        target, top=top, checks=health.CheckConfig(as_of=as_of)))
    console.print(f"\nThe health page (open it in a browser): {page}")
    _tell_how_to_query(db, console.print)
    return db


def _n(count: int, thing: str) -> str:
    """``1 new run``, ``2 new runs``."""
    return f"{count} {thing}{'' if count == 1 else 's'}"


def _tell_how_to_query(db: Path, say: Callable[[str], None]) -> None:
    say(f"\nQuery it yourself:\n"
        f"  .venv/bin/onepin-etl sql --duckdb-path {db} "
        f"\"select * from node_stats order by p95_ms desc limit 10\"\n"
        f"  .venv/bin/python -c \"from onepin_etl import analysis; "
        f"print(analysis.slowest_nodes(duckdb_path='{db}'))\"\n"
        f"  .venv/bin/jupyter lab notebooks/step_analysis.ipynb")
