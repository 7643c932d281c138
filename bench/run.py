"""The benchmark: ``python -m bench.run`` (or ``make bench``); ``--quick`` for a smoke run.

Starts the simulator in its own process with the given latency and size, then measures side by
side in one run, each job in its own process (bench/jobs.py):

1. this project's full load, an unchanged re-load, and a full load with 5% 429s + 5% 5xx;
2. the naive alternative, dlt's declarative ``rest_api`` source (bench/rest_api_baseline.py);
3. the lower bound: requests x latency / concurrency for fetching, plus a raw pyarrow -> DuckDB
   insert of the same rows for loading;

and, with no network, shaping + normalize + load throughput (Arrow and dict rows) against the
raw insert. Prints a table with ratios, writes everything as JSON (``--out``) with its Markdown
beside it, and puts that Markdown between the bench markers of docs/performance.md (``--page``).
"""

from __future__ import annotations

import json
import multiprocessing
import os
import pickle
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import click
import requests
from rich.console import Console
from rich.table import Table

from onepin_sim import FaultConfig, Simulator, World, WorldConfig
from onepin_sim.latency import LatencySpec
from onepin_sim.world import TERMINAL
from onepin_source.settings import DEFAULT_CONCURRENCY

console = Console()
F = TypeVar("F", bound=Callable[..., Any])
# The requests-per-change table: what changed, then the requests by endpoint kind.
CHANGE_COLUMNS = ("change", "advanced_s", "new_runs", "runs_ended", "open_runs_with_steps_moved",
                  "requests", "workflows", "runs", "run", "steps")
# docs/performance.md: the benchmark writes its table between these markers
PAGE = Path(__file__).resolve().parents[1] / "docs" / "performance.md"
BENCH_START, BENCH_END = "<!-- bench:start -->", "<!-- bench:end -->"
FAULTS = {"share_429": 0.05, "retry_after_s": 1, "share_5xx": 0.05, "seed": 42}
# The full load measured against dlt's rest_api, and the incremental loads' world (bench.limits
# loads both again with nothing limiting, beside the earlier fixed concurrency)
FULL_LOAD = WorldConfig(seed=2026, workflows=50, runs=100, nodes=10)
FULL_LOAD_LATENCY_MS = 25.0
# Every benchmark's simulator answers with a heavy-tailed latency around its median unless a
# row says otherwise: no real API answers in constant time (docs/simulator.md)
LATENCY_PROFILE = "lognormal"
INCREMENTAL_WORKFLOWS = 1000
INCREMENTAL_LATENCY_MS = 50.0


def incremental_world(workflows: int) -> WorldConfig:
    return WorldConfig(seed=77, workflows=workflows, runs=3, nodes=8)


@dataclass
class Measure:
    name: str
    wall_s: float
    peak_rss_mb: float
    rows: dict[str, int] = field(default_factory=dict)
    requests: int | None = None
    requests_by_kind: dict[str, int] = field(default_factory=dict)
    loads_steps: bool = True  # False for a re-load that finds nothing new: no steps/s
    process_s: float = 0.0  # the whole process: start, imports and exit included
    packages: int | None = None  # load packages in the pipelines folder after it
    most_in_flight: int | None = None  # the simulator's most requests handled at once
    answer_ms: dict[str, Any] = field(default_factory=dict)  # the simulator's p50 and p95


    @property
    def step_rows(self) -> int:
        return self.rows.get("run_steps", 0)

    @property
    def rows_per_s(self) -> float:
        return self.step_rows / self.wall_s if self.wall_s and self.loads_steps else 0.0


# ---- the simulator in its own process (its CPU must not share our GIL) ----------------------
def _serve(world: dict[str, Any], faults: dict[str, Any], ready: Any) -> None:
    simulator = Simulator(WorldConfig(**world), FaultConfig(**faults))
    ready.put((simulator.base_url, simulator.api_key))
    simulator.serve_forever()


@contextmanager
def simulator_process(world: WorldConfig, latency_ms: float,
                      faults: dict[str, Any] | None = None, *,
                      profile: str = LATENCY_PROFILE) -> Iterator[tuple[str, str]]:
    """The simulator in a process of its own, its answer times spread by ``profile`` around
    ``latency_ms`` (``onepin_sim.latency``); ``faults`` are its other knobs."""
    ctx = multiprocessing.get_context("spawn")
    ready = ctx.Queue()
    knobs = {"latency_ms": latency_ms, "latency_profile": profile, **(faults or {})}
    process = ctx.Process(target=_serve, args=(asdict(world), knobs, ready), daemon=True)
    process.start()
    try:
        yield ready.get(timeout=60)
    finally:
        process.terminate()
        process.join(10)


def _admin(base_url: str, path: str, body: dict[str, Any] | None = None) -> Any:
    url = f"{base_url}/_sim/{path}"
    response = requests.post(url, json=body, timeout=10) if body is not None or \
        path.endswith("reset") else requests.get(url, timeout=10)
    response.raise_for_status()
    return response.json()


# ---- jobs ------------------------------------------------------------------------------------
def run_job(name: str, args: list[str], env: dict[str, str], base_url: str | None = None,
            loads_steps: bool = True) -> Measure:
    if base_url:
        _admin(base_url, "stats/reset")
    began = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "bench.jobs", *args], env=env,
                          capture_output=True, text=True, check=False)
    process_s = time.perf_counter() - began
    if done.returncode != 0:
        raise click.ClickException(f"{name} failed (exit {done.returncode}):\n"
                                   f"{done.stdout[-2000:]}\n{done.stderr[-4000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    measure = Measure(name, result["wall_s"], result["peak_rss_mb"], result.get("rows", {}),
                      loads_steps=loads_steps, process_s=round(process_s, 3),
                      packages=result.get("packages"))
    if base_url:
        stats = _admin(base_url, "stats")
        measure.requests = stats["total"]
        measure.requests_by_kind = stats["requests"]
        measure.most_in_flight = stats.get("most_in_flight")
        measure.answer_ms = stats.get("answer_ms", {})
    console.print(f"  {name}: {measure.wall_s:.1f} s, {measure.step_rows} steps, "
                  f"{measure.requests if measure.requests is not None else '-'} requests, "
                  f"peak {measure.peak_rss_mb:.0f} MB")
    return measure


def record_pool(world: WorldConfig, runs: int, pool_file: Path) -> int:
    """Record real API step pages (no latency) to replay in the throughput jobs."""
    with Simulator(world) as sim:
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {sim.api_key}"
        api = f"{sim.base_url}/api/v1"
        pool: list[tuple[str, str, list[dict[str, Any]]]] = []
        workflows = session.get(f"{api}/workflows", params={"limit": 100}, timeout=30).json()
        for workflow in workflows["data"]:
            listed = session.get(f"{api}/workflows/{workflow['id']}/runs",
                                 params={"limit": 100}, timeout=30).json()["data"]
            for run in listed:
                steps = session.get(f"{api}/workflows/{workflow['id']}/runs/{run['id']}/steps",
                                    params={"include_result": "true"}, timeout=30).json()["data"]
                pool.append((workflow["id"], run["id"], steps))
                if len(pool) >= runs:
                    break
            if len(pool) >= runs:
                break
    pool_file.write_bytes(pickle.dumps(pool))
    return sum(len(steps) for _, _, steps in pool)


def tables_digest(duckdb_file: Path) -> dict[str, Any]:
    """Per table: columns with types and an order-independent hash of every value."""
    import duckdb

    digest: dict[str, Any] = {}
    with duckdb.connect(str(duckdb_file), read_only=True) as con:
        for table in ("workflows", "runs", "run_steps"):
            columns = con.sql("select column_name, data_type from information_schema.columns "
                              f"where table_schema = 'onepin' and table_name = '{table}' "
                              "and column_name not like '\\_dlt%' escape '\\' "
                              "order by column_name").fetchall()
            names = ", ".join(f'"{c}"' for c, _ in columns)
            (count, hashed), = con.sql(f"select count(*), sum(hash(row({names})))::varchar "
                                       f"from onepin.{table}").fetchall()
            digest[table] = {"columns": columns, "rows": count, "hash": hashed}
    return digest


def help_s(times: int = 5) -> float:
    """``onepin-etl --help`` as a whole process, the median of ``times``."""
    command = [str(Path(sys.executable).with_name("onepin-etl")), "--help"]
    walls = []
    for _ in range(times):
        began = time.perf_counter()
        subprocess.run(command, capture_output=True, check=True)
        walls.append(time.perf_counter() - began)
    return round(sorted(walls)[times // 2], 3)


def measured(results: dict[str, Any], detail: str) -> str:
    """The line under a benchmark's table: when, on what, and ``detail``."""
    mach = results["machine"]
    return (f"Measured {results['started']} UTC on {mach['cores']} cores, Python "
            f"{mach['python']}, dlt {mach['dlt']}, duckdb {mach['duckdb']}; {detail}")


def save(results: dict[str, Any], text: str, out: str,
         markers: tuple[str, str] | None = None) -> None:
    """Print ``text``, write the JSON to ``out`` with the Markdown beside it, and put the
    Markdown between ``markers`` of docs/performance.md when given."""
    console.print(text)
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(json.dumps(results, indent=2) + "\n")
    Path(out).with_suffix(".md").write_text(text)
    if markers:
        write_into_page(text, PAGE, markers)


def results_options(name: str) -> Callable[[F], F]:
    """``--out`` (``bench/results/<name>.json``) and ``--page/--no-page``, for a benchmark's
    command."""
    def decorate(func: F) -> F:
        func = click.option("--page/--no-page", default=True, show_default=True,
                            help="Write the table into docs/performance.md.")(func)
        return click.option("--out", default=f"bench/results/{name}.json",
                            show_default=True)(func)

    return decorate


def started(results: dict[str, Any] | None = None) -> dict[str, Any]:
    """A benchmark's results so far: the machine and when it started."""
    return {"machine": machine(), "started": time.strftime("%Y-%m-%d %H:%M"), **(results or {})}


def machine() -> dict[str, Any]:
    import dlt
    import duckdb
    import pyarrow

    return {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
            "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
                                / 2**30, 1),
            "python": platform.python_version(), "os": platform.platform(terse=True),
            "dlt": dlt.__version__, "duckdb": duckdb.__version__, "pyarrow": pyarrow.__version__}


# ---- incremental loads: cost follows what changed -------------------------------------------
def next_event_ms(world: World, now_ms: int, kind: str) -> int:
    """When the next run is created (``new_run``) or the next open run ends (``run_finished``)."""
    if kind == "new_run":
        return min(world.run_created_ms(wf, world.created_run_count(wf, now_ms))
                   for wf in range(world.config.workflows))
    return min(run.plan.end_ms for wf in range(world.config.workflows)
               for run in world.runs_at(wf, now_ms) if run.status not in TERMINAL)


def changes_between(world: World, before_ms: int, after_ms: int) -> dict[str, int]:
    """What changed in the workspace: new runs, open runs that ended, open runs whose steps
    moved (a step started, ended or appeared)."""
    new = ended = moved = 0
    for wf in range(world.config.workflows):
        new += world.created_run_count(wf, after_ms) - world.created_run_count(wf, before_ms)
        for run in world.runs_at(wf, before_ms):
            if run.status in TERMINAL:
                continue
            later = world.run_at(wf, run.plan.index, after_ms)
            ended += later.status in TERMINAL
            moved += [s.status for s in run.steps] != [s.status for s in later.steps]
    return {"new_runs": new, "runs_ended": ended, "open_runs_with_steps_moved": moved}


def incremental(work: Path, latency_ms: float, concurrency: int, workflows: int
                ) -> tuple[dict[str, Measure], list[dict[str, Any]], dict[str, Any]]:
    """First and unchanged loads with change detection and with the earlier algorithm, side by
    side, then the requests a load makes for each kind of change."""
    world = incremental_world(workflows)
    local = World(world)
    measures: dict[str, Measure] = {}
    console.print(f"[bold]Incremental: {workflows} workflows x 3 runs, {latency_ms:g} ms latency, "
                  f"concurrency {concurrency}[/]")
    with simulator_process(world, latency_ms) as (base_url, api_key):
        env = {**os.environ, "ONEPIN_BASE_URL": base_url, "ONEPIN_API_KEY": api_key,
               "RUNTIME__DLT_TELEMETRY": "false"}
        jobs = {}
        for variant, flags in (("earlier", ["--legacy"]), ("changes", [])):
            jobs[variant] = ["project", str(work / f"inc_{variant}.duckdb"),
                             str(work / f"inc_{variant}_pipelines"), "--concurrency",
                             str(concurrency), *flags]
        label = {"earlier": "earlier algorithm", "changes": "change detection"}
        for variant in ("earlier", "changes"):
            measures[f"inc_first_{variant}"] = run_job(
                f"{workflows} × 3: first load, {label[variant]}", jobs[variant], env, base_url)
        for variant in ("earlier", "changes"):
            measures[f"inc_unchanged_{variant}"] = run_job(
                f"{workflows} × 3: unchanged re-load, {label[variant]}", jobs[variant], env,
                base_url, loads_steps=False)
        kinds = []
        for kind, text in (("nothing", "nothing"), ("new_run", "the next new run"),
                           ("run_finished", "the next open run ends")):
            now = _admin(base_url, "clock")["now_ms"]
            target = now if kind == "nothing" else next_event_ms(local, now, kind)
            if target > now:
                _admin(base_url, f"clock/advance?seconds={(target - now) / 1000}", {})
            measure = run_job(f"change: {text}", jobs["changes"], env, base_url,
                              loads_steps=False)
            kinds.append({"change": text, "advanced_s": round((target - now) / 1000, 1),
                          **changes_between(local, now, target),
                          "requests": measure.requests, **measure.requests_by_kind})
    first_speedup = measures["inc_first_earlier"].wall_s / measures["inc_first_changes"].wall_s
    unchanged = measures["inc_unchanged_changes"]
    figures = {
        "first_load_speedup": round(first_speedup, 2),
        "unchanged_speedup": round(measures["inc_unchanged_earlier"].wall_s / unchanged.wall_s,
                                   2),
        "unchanged_requests": unchanged.requests,
        "unchanged_requests_earlier": measures["inc_unchanged_earlier"].requests,
        "unchanged_process_s": unchanged.process_s,
        "first_load_s": measures["inc_first_changes"].wall_s,
        "first_load_floor_s": round((measures["inc_first_changes"].requests or 0)
                                    * LatencySpec(LATENCY_PROFILE, latency_ms).mean_ms / 1000
                                    / concurrency, 2),
    }
    return measures, kinds, figures


# ---- Parquet: reading after many loads, and after a compaction ------------------------------
def _query_s(parquet_dir: Path, repeats: int = 5) -> float:
    from onepin_etl import analysis

    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        analysis.failure_rates(parquet_dir=parquet_dir)
        times.append(time.perf_counter() - started)
    return sorted(times)[len(times) // 2]


def parquet_compaction(work: Path, loads: int) -> dict[str, Any]:
    """``analysis.failure_rates`` over a Parquet folder after 1 load, after ``loads`` loads one
    simulated hour apart, and after ``onepin-etl compact`` (median of 5 each)."""
    from onepin_etl import Target, load

    console.print(f"[bold]Parquet: 20 workflows, {loads} loads an hour apart, then compact[/]")
    target = Target("parquet", parquet_dir=str(work / "pq"), pipelines_dir=str(work / "pq_pl"))
    figures: dict[str, Any] = {"loads": loads}
    with Simulator(WorldConfig(seed=5, workflows=20, runs=24, nodes=8)) as sim:
        for n in range(1, loads + 1):
            load(target, api_key=sim.api_key, base_url=sim.base_url)
            if n == 1:
                figures["after_1_s"] = round(_query_s(work / "pq"), 3)
            sim.advance(3600)
    figures["files"] = len(list((work / "pq").rglob("*.parquet")))
    figures[f"after_{loads}_s"] = round(_query_s(work / "pq"), 3)
    target.compact()
    figures["after_compaction_s"] = round(_query_s(work / "pq"), 3)
    figures["compacted_vs_first"] = round(figures["after_compaction_s"] / figures["after_1_s"], 2)
    console.print(f"  {figures}")
    return figures


# ---- the run ---------------------------------------------------------------------------------
@click.command()
@click.option("--latency-ms", type=float, default=FULL_LOAD_LATENCY_MS, show_default=True)
@click.option("--workflows", type=int, default=FULL_LOAD.workflows, show_default=True)
@click.option("--runs", type=int, default=FULL_LOAD.runs, show_default=True,
              help="Runs per workflow.")
@click.option("--nodes", type=int, default=FULL_LOAD.nodes, show_default=True)
@click.option("--concurrency", type=int, default=DEFAULT_CONCURRENCY, show_default=True)
@click.option("--throughput-rows", type=int, default=1_000_000, show_default=True)
@click.option("--incremental-workflows", type=int, default=INCREMENTAL_WORKFLOWS,
              show_default=True, help="Workflows (3 runs each) of the incremental loads' world.")
@click.option("--incremental-latency-ms", type=float, default=INCREMENTAL_LATENCY_MS,
              show_default=True)
@click.option("--quick", is_flag=True, help="Small sizes: a smoke run of about a minute.")
@click.option("--out", type=click.Path(dir_okay=False), default="bench/results/latest.json",
              show_default=True)
@click.option("--page", type=click.Path(dir_okay=False, exists=True), default=str(PAGE),
              show_default=True,
              help="The page whose bench markers get the table (not with --quick: a smoke run's "
                   "figures are not the ones to publish).")
def main(latency_ms: float, workflows: int, runs: int, nodes: int, concurrency: int,
         throughput_rows: int, incremental_workflows: int, incremental_latency_ms: float,
         quick: bool, out: str, page: str) -> None:
    """Benchmark this project against dlt's rest_api source and the lower bound."""
    if quick:
        workflows, runs, throughput_rows, incremental_workflows = 5, 20, 20_000, 40
    world = WorldConfig(seed=FULL_LOAD.seed, workflows=workflows, runs=runs, nodes=nodes)
    work = Path(tempfile.mkdtemp(prefix="onepin-bench-"))
    results: dict[str, Any] = {"machine": machine(), "started": time.strftime("%Y-%m-%d %H:%M"),
                               "config": {"latency_ms": latency_ms, "concurrency": concurrency,
                                          "latency_profile": LATENCY_PROFILE,
                                          **asdict(world), "throughput_rows": throughput_rows,
                                          "faults": FAULTS,
                                          "incremental_workflows": incremental_workflows,
                                          "incremental_latency_ms": incremental_latency_ms}}
    measures: dict[str, Measure] = {}
    try:
        console.print(f"[bold]Network: {workflows} workflows x {runs} runs x {nodes} nodes, "
                      f"{LATENCY_PROFILE} latency, median {latency_ms:g} ms, concurrency "
                      f"{concurrency}[/]")
        with simulator_process(world, latency_ms) as (base_url, api_key):
            env = {**os.environ, "ONEPIN_BASE_URL": base_url, "ONEPIN_API_KEY": api_key,
                   "RUNTIME__DLT_TELEMETRY": "false"}
            project = ["project", str(work / "project.duckdb"), str(work / "pipelines"),
                       "--concurrency", str(concurrency)]
            measures["project"] = run_job("project full load", project, env, base_url)
            measures["reload"] = run_job("project unchanged re-load", project, env, base_url,
                                         loads_steps=False)
            measures["naive"] = run_job(
                "dlt rest_api (naive)",
                ["rest_api", str(work / "naive.duckdb"), str(work / "naive_pipelines")],
                env, base_url)
            _admin(base_url, "faults", FAULTS)
            measures["faults"] = run_job(
                "project, 5% 429 + 5% 5xx",
                ["project", str(work / "faults.duckdb"), str(work / "faults_pipelines"),
                 "--concurrency", str(concurrency)], env, base_url)
            _admin(base_url, "faults", {"share_429": 0, "share_5xx": 0})
        # The same full load on a server that answers in constant time, for comparison
        with simulator_process(world, latency_ms, profile="constant") as (base_url, api_key):
            env = {**os.environ, "ONEPIN_BASE_URL": base_url, "ONEPIN_API_KEY": api_key,
                   "RUNTIME__DLT_TELEMETRY": "false"}
            measures["constant"] = run_job(
                "project full load, constant latency",
                ["project", str(work / "constant.duckdb"), str(work / "constant_pipelines"),
                 "--concurrency", str(concurrency)], env, base_url)
        identical = tables_digest(work / "faults.duckdb") == tables_digest(work /
                                                                         "project.duckdb")
        results["faults_tables_identical"] = identical

        console.print(f"[bold]No network: {throughput_rows:,} steps[/]")
        pool = work / "pool.pickle"
        record_pool(world, min(workflows * runs, 2000), pool)
        measures["arrow"] = run_job("project, Arrow rows", [
            "throughput", str(pool), str(work / "arrow.duckdb"), str(work / "tp_pipelines"),
            "--rows", str(throughput_rows), "--row-format", "arrow"], env)
        # the same pipeline again: 5,000 steps of runs already loaded, replaced in the big table
        measures["arrow_again"] = run_job(f"project, 5,000 steps into the {throughput_rows:,}", [
            "throughput", str(pool), str(work / "arrow.duckdb"), str(work / "tp_pipelines"),
            "--rows", "5000", "--row-format", "arrow"], env, loads_steps=False)
        dict_rows = min(throughput_rows, 50_000)
        measures["dicts"] = run_job("project, dict rows", [
            "throughput", str(pool), str(work / "dicts.duckdb"), str(work / "tp_pipelines2"),
            "--rows", str(dict_rows), "--row-format", "dicts"], env)
        measures["raw"] = run_job("raw pyarrow -> DuckDB", [
            "raw_insert", str(pool), str(work / "raw.duckdb"), "--rows", str(throughput_rows)],
            env)
        inc_measures, results["changes"], results["incremental"] = incremental(
            work, incremental_latency_ms, concurrency, incremental_workflows)
        measures.update(inc_measures)
        results["compaction"] = parquet_compaction(work, 10 if quick else 60)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    results["measures"] = {k: {**asdict(m), "rows_per_s": round(m.rows_per_s)}
                           for k, m in measures.items()}
    results["figures"] = figures(measures, latency_ms, concurrency)
    results["figures"]["help_s"] = help_s()
    print_tables(results)
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(json.dumps(results, indent=2) + "\n")
    table = markdown(results)
    Path(out).with_suffix(".md").write_text(table)
    console.print(f"written {out} and {Path(out).with_suffix('.md')}")
    if not quick:
        write_into_page(table, Path(page))
        console.print(f"written the table into {page}")


def figures(m: dict[str, Measure], latency_ms: float, concurrency: int) -> dict[str, Any]:
    project, naive = m["project"], m["naive"]
    raw_rate = m["raw"].rows_per_s
    mean_ms = LatencySpec(LATENCY_PROFILE, latency_ms).mean_ms
    fetch_floor = (project.requests or 0) * mean_ms / 1000 / concurrency
    load_floor = project.step_rows / raw_rate if raw_rate else 0.0
    floor = fetch_floor + load_floor
    return {
        "lower_bound_s": round(floor, 2),
        "lower_bound_fetch_s": round(fetch_floor, 2),
        "lower_bound_load_s": round(load_floor, 3),
        "speedup_vs_naive": round(naive.wall_s / project.wall_s, 2),
        "constant_latency_s": m["constant"].wall_s if "constant" in m else None,
        "project_vs_lower_bound": round(project.wall_s / floor, 2) if floor else None,
        "reload_requests": m["reload"].requests,
        "reload_vs_full_time": round(m["reload"].wall_s / project.wall_s, 3),
        "fault_slowdown": round(m["faults"].wall_s / project.wall_s, 2),
        "arrow_rows_per_s": round(m["arrow"].rows_per_s),
        "arrow_vs_dicts": round(m["arrow"].rows_per_s / m["dicts"].rows_per_s, 2),
        "raw_vs_arrow": round(raw_rate / m["arrow"].rows_per_s, 2),
        "arrow_peak_rss_mb": m["arrow"].peak_rss_mb,
        "small_load_into_big_table_s": m["arrow_again"].wall_s,
    }


def _rate(rows_per_s: int) -> str:
    return f"{rows_per_s:,}" if rows_per_s else "–"


def _two_columns(header: tuple[str, str], rows: list[tuple[str, str]]) -> list[str]:
    """A blank line, then a two-column Markdown table (the value column right-aligned)."""
    return ["", f"| {header[0]} | {header[1]} |", "|---|---:|",
            *(f"| {name} | {value} |" for name, value in rows)]


def write_into_page(table: str, page: Path, markers: tuple[str, str] = (BENCH_START, BENCH_END)
                    ) -> None:
    """Replace what lies between the page's ``markers`` with ``table``, so the published
    figures are the last run's, never a hand copy; the prose around them stays as written."""
    begin, finish = markers
    text = page.read_text("utf-8")
    head, start, rest = text.partition(begin)
    _, end, tail = rest.partition(finish)
    if not (start and end):
        raise click.ClickException(f"{page} has no {begin} … {finish} markers; "
                                   "put them where the table goes")
    page.write_text(f"{head}{begin}\n{table.rstrip()}\n{finish}{tail}", "utf-8")


def markdown(results: dict[str, Any]) -> str:
    """The performance page's table: every job, then the figures, then the machine."""
    cfg = results["config"]
    lines = ["| job | wall s | steps in table | steps/s | requests | peak RSS MB |",
             "|---|---:|---:|---:|---:|---:|"]
    for m in results["measures"].values():
        requests_made = "–" if m["requests"] is None else str(m["requests"])
        lines.append(f"| {m['name']} | {m['wall_s']:.1f} | {m['rows'].get('run_steps', 0):,} | "
                     f"{_rate(m['rows_per_s'])} | {requests_made} | {m['peak_rss_mb']:.0f} |")
    f = results["figures"]
    lines += _two_columns(("figure", "value"), [
        (f"speed-up over dlt `rest_api` ({cfg['latency_profile']} latency)",
         f"{f['speedup_vs_naive']}×"),
        ("the same full load at a constant latency", f"{f['constant_latency_s']} s"),
        (f"full load ÷ lower bound ({f['lower_bound_fetch_s']} s fetching + "
         f"{f['lower_bound_load_s']} s raw insert)", f"{f['project_vs_lower_bound']}×"),
        ("unchanged re-load: requests, time ÷ full load",
         f"{f['reload_requests']}, {f['reload_vs_full_time']}"),
        (f"slow-down with 5% 429 + 5% 5xx (tables identical: "
         f"{results['faults_tables_identical']})", f"{f['fault_slowdown']}×"),
        ("Arrow rows, no network (shape + normalize + load)",
         f"{f['arrow_rows_per_s']:,} steps/s, peak {f['arrow_peak_rss_mb']:.0f} MB"),
        ("Arrow ÷ dict rows; raw insert ÷ Arrow", f"{f['arrow_vs_dicts']}×; {f['raw_vs_arrow']}×"),
        ("5,000 steps of loaded runs again, into the big table",
         f"{f['small_load_into_big_table_s']} s")])
    inc = results["incremental"]
    lines += _two_columns(("incremental loads, earlier algorithm → change detection", "value"), [
        ("first load: speed-up (fetching floor at this many requests)",
         f"{inc['first_load_speedup']}× ({inc['first_load_floor_s']} s)"),
        ("unchanged re-load: speed-up", f"{inc['unchanged_speedup']}×"),
        ("unchanged re-load: requests",
         f"{inc['unchanged_requests_earlier']} → {inc['unchanged_requests']}"),
        ("first load (in the process); unchanged re-load as a whole process",
         f"{inc['first_load_s']} s; {inc['unchanged_process_s']} s"),
        ("`onepin-etl --help` as a whole process (median of 5)", f"{f['help_s']} s")])
    lines += ["", "| change since the last load | new runs | runs ended | open runs whose "
              "steps moved | requests | workflows | runs lists | run reads | steps |",
              "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for c in results["changes"]:
        counts = " | ".join(str(c.get(k, 0)) for k in CHANGE_COLUMNS[2:])
        lines.append(f"| {c['change']} (+{c['advanced_s']} s) | {counts} |")
    comp = results["compaction"]
    n = comp["loads"]
    lines += _two_columns(("Parquet folder, `analysis.failure_rates` (median of 5)", "s"), [
        ("after 1 load", str(comp["after_1_s"])),
        (f"after {n} loads an hour apart ({comp['files']} files)", str(comp[f"after_{n}_s"])),
        (f"after `onepin-etl compact` (÷ after 1 load: {comp['compacted_vs_first']}×)",
         str(comp["after_compaction_s"]))])
    mach = results["machine"]
    lines += ["", f"Measured {results['started']} UTC on {mach['cores']} cores "
              f"({mach['cpu']}), {mach['memory_gib']} GiB, {mach['os']}, Python "
              f"{mach['python']}, dlt {mach['dlt']}, duckdb {mach['duckdb']}, pyarrow "
              f"{mach['pyarrow']}; {cfg['workflows']} workflows × {cfg['runs']} runs × "
              f"{cfg['nodes']} nodes, {cfg['latency_profile']} latency, median "
              f"{cfg['latency_ms']:g} ms (the constant row: always {cfg['latency_ms']:g} ms), "
              "concurrency "
              f"{cfg['concurrency']}, {cfg['throughput_rows']:,} steps without network; "
              f"incremental: {cfg['incremental_workflows']:,} workflows × 3 runs, "
              f"{cfg['latency_profile']} latency, median {cfg['incremental_latency_ms']:g} ms."]
    return "\n".join(lines) + "\n"


def print_tables(results: dict[str, Any]) -> None:
    table = Table(title="onepin-dlt benchmark")
    for column in ("job", "wall s", "steps in table", "steps/s", "requests", "peak RSS MB"):
        table.add_column(column, justify="left" if column == "job" else "right")
    for measure in results["measures"].values():
        table.add_row(measure["name"], f"{measure['wall_s']:.2f}",
                      f"{measure['rows'].get('run_steps', 0):,}",
                      _rate(measure["rows_per_s"]),
                      "-" if measure["requests"] is None else str(measure["requests"]),
                      f"{measure['peak_rss_mb']:.0f}")
    console.print(table)
    ratios = Table(title="figures")
    ratios.add_column("figure")
    ratios.add_column("value", justify="right")
    for name, value in results["figures"].items():
        ratios.add_row(name, str(value))
    ratios.add_row("faults_tables_identical", str(results["faults_tables_identical"]))
    for name, value in results["incremental"].items():
        ratios.add_row(f"incremental {name}", str(value))
    console.print(ratios)
    changes = Table(title="requests per kind of change (change detection)")
    for column in CHANGE_COLUMNS:
        changes.add_column(column)
    for change in results["changes"]:
        changes.add_row(*(str(change.get(c, 0)) for c in CHANGE_COLUMNS))
    console.print(changes)


if __name__ == "__main__":
    main()
