"""``onepin-etl``: load, report, demo and sim. Output is formatted here and only here.

Exit codes (design.md): 0 ok, 2 usage/config, 3 authentication/authorization, 4 API or network
failure after retries, 5 destination failure. User errors print one line, no traceback
(``--debug`` shows it).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

import click
from rich.console import Console

from onepin_source.errors import OnepinError
from onepin_source.settings import (
    DEFAULT_CONCURRENCY,
    DEFAULT_DATASET,
    DEFAULT_DUCKDB_PATH,
    DEFAULT_LOOKBACK_MINUTES,
    DEFAULT_PARQUET_DIR,
    DEFAULT_PIPELINE_NAME,
    MAX_CONCURRENCY,
)

F = TypeVar("F", bound=Callable[..., Any])
err = Console(stderr=True, highlight=False, soft_wrap=True)
out = Console(highlight=False, soft_wrap=True)


def user_errors(func: F) -> F:
    """Turn an :class:`OnepinError` into its one-line message and exit code."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        debug = click.get_current_context().find_root().params.get("debug", False)
        try:
            return func(*args, **kwargs)
        except OnepinError as exc:
            if debug:
                err.print_exception()
            err.print(f"[bold red]error:[/] {exc}", markup=True, soft_wrap=True)
            sys.exit(exc.exit_code)

    return wrapper  # type: ignore[return-value]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Show tracebacks and debug logs.")
def main(debug: bool) -> None:
    """Load Onepin workflow runs and run steps into DuckDB or Parquet, and report on them."""
    logging.basicConfig(level=logging.DEBUG if debug else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")


def target_options(func: F) -> F:
    """Options naming where data lives: shared by load and report."""
    for option in reversed([
        click.option("--destination", default="duckdb", show_default=True,
                     help="duckdb, parquet, or any dlt destination name."),
        click.option("--duckdb-path", default=DEFAULT_DUCKDB_PATH, show_default=True,
                     help="DuckDB file (destination duckdb)."),
        click.option("--parquet-dir", default=DEFAULT_PARQUET_DIR, show_default=True,
                     help="Folder or bucket URL (destination parquet)."),
        click.option("--dataset", default=DEFAULT_DATASET, show_default=True,
                     help="Dataset (schema) name."),
    ]):
        func = option(func)
    return func


@main.command()
@target_options
@click.option("--workflow", "workflows", multiple=True, metavar="ID",
              help="Workflow to load (repeatable); default: every workflow the key can see.")
@click.option("--run", "runs", multiple=True, metavar="WORKFLOW_ID/RUN_ID",
              help="Run to fetch by id on every load (repeatable).")
@click.option("--since", metavar="ISO8601", help="Lower bound on run created_at (first load).")
@click.option("--no-results", is_flag=True, help="Do not fetch step result payloads.")
@click.option("--full-refresh", is_flag=True, help="Drop this source's tables and state first.")
@click.option("--lookback-minutes", type=int, default=DEFAULT_LOOKBACK_MINUTES,
              show_default=True, help="Re-list runs created this long before the mark.")
@click.option("--concurrency", type=click.IntRange(1, MAX_CONCURRENCY),
              default=DEFAULT_CONCURRENCY, show_default=True,
              help="Requests in flight at most (a 429 lowers it for every worker).")
@click.option("--row-format", type=click.Choice(["arrow", "dicts"]), default="arrow",
              show_default=True, help="arrow: fast path; dicts: dlt's plain rows (same tables).")
@click.option("--progress", type=click.Choice(["log", "tqdm", "enlighten", "alive_progress"]),
              help="Show dlt's progress while loading.")
@click.option("--pipeline-name",
              help=f"dlt pipeline name (default {DEFAULT_PIPELINE_NAME}, or "
                   f"{DEFAULT_PIPELINE_NAME}_<destination> for other destinations).")
@click.option("--pipelines-dir", type=click.Path(file_okay=False),
              help="dlt's working folder (default ~/.dlt/pipelines).")
@user_errors
def load(destination: str, duckdb_path: str, parquet_dir: str, dataset: str,
         workflows: tuple[str, ...], runs: tuple[str, ...], since: str | None,
         no_results: bool, full_refresh: bool, lookback_minutes: int, concurrency: int,
         row_format: str, progress: str | None, pipeline_name: str | None,
         pipelines_dir: str | None) -> None:
    """Load workflows, runs and run steps incrementally."""
    from onepin_source import onepin_source
    from onepin_source.pipeline import Target, run_load

    target = Target(destination, duckdb_path, parquet_dir, dataset, pipeline_name, pipelines_dir)
    target.check()
    source = onepin_source(workflow_ids=list(workflows) or None, runs=list(runs) or None,
                           since=since, include_result=not no_results,
                           lookback_minutes=lookback_minutes, concurrency=concurrency,
                           row_format=row_format, target_key=target.key)
    pipeline = target.pipeline(progress=progress)
    info = run_load(pipeline, source, full_refresh=full_refresh, file_format=target.file_format)
    normalized = pipeline.last_trace.last_normalize_info if pipeline.last_trace else None
    counts = normalized.row_counts if normalized else {}
    where = duckdb_path if destination == "duckdb" else \
        parquet_dir if destination == "parquet" else destination
    rows = ", ".join(f"{counts.get(t, 0)} {t}" for t in ("workflows", "runs", "run_steps"))
    out.print(f"Loaded {rows} into {where} (dataset {dataset}); "
              f"{len(info.loads_ids)} load package(s).")


@main.command()
@target_options
@click.option("--workflow", "workflows", multiple=True, metavar="ID",
              help="Only these workflows (repeatable).")
@click.option("--since", metavar="ISO8601", help="Only runs created at or after this time.")
@click.option("--top", type=click.IntRange(1, 1000), default=10, show_default=True,
              help="Rows per ranking.")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json", "markdown"]),
              default="table", show_default=True)
@user_errors
def report(destination: str, duckdb_path: str, parquet_dir: str, dataset: str,
           workflows: tuple[str, ...], since: str | None, top: int, fmt: str) -> None:
    """Pass rates, run durations, slowest and most failing nodes, retries and flaky nodes."""
    from onepin_source import report as reporting
    from onepin_source.analysis import Filters, NoDataError
    from onepin_source.config import validate_uuid
    from onepin_source.errors import ConfigError
    from onepin_source.shaping import parse_ts

    if destination not in ("duckdb", "parquet"):
        raise ConfigError("report reads --destination duckdb or parquet")
    if since and parse_ts(since) is None:
        raise ConfigError(f"--since {since!r} is not an ISO-8601 datetime with a UTC offset; "
                          "use e.g. 2026-01-31T00:00:00Z")
    filters = Filters(tuple(validate_uuid(w, "workflow id") for w in workflows), since)
    where = {"duckdb_path": duckdb_path} if destination == "duckdb" else \
        {"parquet_dir": parquet_dir}
    try:
        sections = reporting.build(top, dataset=dataset, filters=filters, **where)
    except NoDataError as exc:
        out.print(f"Nothing to report yet: {exc}")
        return
    if reporting.is_empty(sections):
        out.print("Nothing to report: no runs match (check --workflow and --since).")
        return
    reporting.render(sections, fmt, out)


@main.command()
@click.option("--out-dir", type=click.Path(file_okay=False), default="demo_output",
              show_default=True, help="Where the demo's DuckDB file and dlt state go.")
@user_errors
def demo(out_dir: str) -> None:
    """Simulator + load into DuckDB + incremental load + report, in about a minute."""
    from pathlib import Path

    from onepin_source.demo import run_demo

    run_demo(Path(out_dir), out)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=8765, show_default=True)
@click.option("--seed", type=int, default=7, show_default=True, help="Workspace seed.")
@click.option("--workflows", type=int, default=5, show_default=True)
@click.option("--runs", type=int, default=40, show_default=True,
              help="Runs per workflow at the initial clock.")
@click.option("--nodes", type=int, default=8, show_default=True, help="Nodes per workflow.")
@click.option("--run-interval", type=int, default=3600, show_default=True,
              help="Simulated seconds between two runs of a workflow.")
@click.option("--latency-ms", type=float, default=0.0, show_default=True)
@click.option("--jitter-ms", type=float, default=0.0, show_default=True)
@click.option("--share-429", type=float, default=0.0, show_default=True)
@click.option("--retry-after", type=int, default=1, show_default=True)
@click.option("--rate-limit", type=int, default=0, show_default=True,
              help="Requests per key per window (0 = unlimited).")
@click.option("--rate-window", type=int, default=60, show_default=True,
              help="Length of the rate-limit window in seconds.")
@click.option("--share-5xx", type=float, default=0.0, show_default=True)
@click.option("--share-malformed", type=float, default=0.0, show_default=True)
@click.option("--share-dropped", type=float, default=0.0, show_default=True)
@click.option("--odd-steps", type=float, default=0.0, show_default=True,
              help="Share of steps served in undocumented shapes (missing fields, wrong types…).")
@click.option("--fault-seed", type=int, default=0, show_default=True)
def sim(host: str, port: int, seed: int, workflows: int, runs: int, nodes: int,
        run_interval: int, latency_ms: float, jitter_ms: float, share_429: float,
        retry_after: int, rate_limit: int, rate_window: int, share_5xx: float,
        share_malformed: float, share_dropped: float, odd_steps: float,
        fault_seed: int) -> None:
    """Serve the Onepin API simulator until interrupted."""
    from onepin_sim import FaultConfig, Simulator, WorldConfig

    faults = FaultConfig(latency_ms=latency_ms, jitter_ms=jitter_ms, share_429=share_429,
                         retry_after_s=retry_after, rate_limit_per_min=rate_limit,
                         rate_window_s=rate_window,
                         share_5xx=share_5xx, share_malformed=share_malformed,
                         share_dropped=share_dropped, odd_steps=odd_steps, seed=fault_seed)
    simulator = Simulator(WorldConfig(seed, workflows, runs, nodes, run_interval), faults,
                          host=host, port=port)
    click.echo(f"Onepin simulator at {simulator.base_url}  (admin: {simulator.base_url}/_sim/)")
    click.echo(f"export ONEPIN_BASE_URL={simulator.base_url}")
    click.echo(f"export ONEPIN_API_KEY={simulator.api_key}  # the simulator's demo key")
    click.echo("Press Ctrl+C to stop.", nl=True)
    try:
        simulator.serve_forever()
    except KeyboardInterrupt:
        click.echo("stopped")


if __name__ == "__main__":
    main()
