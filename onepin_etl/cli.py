"""``onepin-etl``: load, report, check, status, compact, sql, schema, demo and sim. Output is
formatted here and only here, and so are the names of the flags: the library's messages name a
parameter (``since``), this module turns it into the flag (``--since``, :func:`flags`).

Exit codes (``errors.EXIT_CODES``): 0 ok, 2 usage/config, 3 authentication/authorization, 4 API
or network failure after retries, 5 destination failure, 6 a health check failed, 7 another load
of the pipeline is running. User errors print one line, no traceback (``--debug`` shows it).
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import wraps
from typing import TYPE_CHECKING, Any, TypeVar

import click
from rich.console import Console
from rich.markup import escape

from onepin_etl.errors import NoDataError, exit_code
from onepin_etl.settings import (
    DEFAULT_DATASET,
    DEFAULT_DUCKDB_PATH,
    DEFAULT_PARQUET_DIR,
    DEFAULT_PIPELINE_NAME,
    DOCTOR_MAX_REQUESTS,
)
from onepin_sim.latency import DEFAULT_CAPACITY, PROFILES
from onepin_source.errors import ConfigError, OnepinError
from onepin_source.settings import DEFAULT_CONCURRENCY, DEFAULT_LOOKBACK_MINUTES, MAX_CONCURRENCY

if TYPE_CHECKING:
    from onepin_etl.destinations import Target

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
            # escaped: "[sources.onepin]" in a message is text, not rich markup
            err.print(f"[bold red]error:[/] {escape(said(exc))}", markup=True, soft_wrap=True)
            sys.exit(exit_code(exc))

    return wrapper  # type: ignore[return-value]


def said(exc: OnepinError) -> str:
    """The error's line, with what to do on the command line when nothing is loaded yet."""
    if isinstance(exc, NoDataError):
        return f"{exc}: run 'onepin-etl load' first (or pass --duckdb-path, --parquet-dir or " \
               "--destination)"
    return str(exc)


@contextmanager
def flags() -> Iterator[None]:
    """Library errors about one value start with its parameter's name (``as_of 'x' is not …``);
    on the command line they name the flag instead (``--as-of 'x' is not …``)."""
    try:
        yield
    except ConfigError as exc:
        name, _, rest = str(exc).partition(" ")
        raise ConfigError(f"--{name.replace('_', '-')} {rest}") from None


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Show tracebacks and debug logs.")
def main(debug: bool) -> None:
    """Load Onepin workflow runs and run steps into DuckDB, Parquet, a DuckLake or PostgreSQL,
    and report on them."""
    logging.basicConfig(level=logging.DEBUG if debug else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    dlt_log = logging.getLogger("dlt")
    if not debug and not any(isinstance(f, _LoadJobTracebacks) for f in dlt_log.filters):
        dlt_log.addFilter(_LoadJobTracebacks())


class _LoadJobTracebacks(logging.Filter):
    """Drops dlt's ERROR records of failed load jobs: each carries a traceback (one constraint
    error made ~500 lines), and the command's one-line error names the same cause (``--debug``
    keeps them)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.levelno >= logging.ERROR and record.filename == "load.py")


_DESTINATION_HELP = ("duckdb, parquet, ducklake or postgres (shared destinations are configured "
                     "in .dlt/secrets.toml or DESTINATION__* variables)")


def load_target_options(func: F) -> F:
    """Where ``load`` writes: the readers' choices, and any other dlt destination."""
    return _target_options(func, f"{_DESTINATION_HELP}, or any dlt destination name.")


def target_options(func: F) -> F:
    """Where a reader (report, check, sql, status) finds the data."""
    return _target_options(func, f"{_DESTINATION_HELP}.")


def _target_options(func: F, destination_help: str) -> F:
    for option in reversed([
        click.option("--destination", default="duckdb", show_default=True,
                     help=destination_help),
        click.option("--duckdb-path", default=DEFAULT_DUCKDB_PATH, show_default=True,
                     help="DuckDB file (destination duckdb)."),
        click.option("--parquet-dir", default=DEFAULT_PARQUET_DIR, show_default=True,
                     help="Folder or bucket URL (destination parquet)."),
        click.option("--dataset", default=DEFAULT_DATASET, show_default=True,
                     help="Dataset (schema) name."),
    ]):
        func = option(func)
    return func


def shard_option(func: F) -> F:
    return click.option(
        "--shard", metavar="K/N",
        help="Load only shard K of N: the workflows whose id hashes to K. Each shard has its "
             "own pipeline (<name>_shardKofN) and state; N loaders may run at once into "
             "ducklake or postgres.")(func)


def status_shard_option(func: F) -> F:
    return click.option("--shard", metavar="K/N",
                        help="Show shard K of N's pipeline (<name>_shardKofN), as loaded with "
                             "load --shard K/N.")(func)


PIPELINES_DIR_HELP = ("dlt's working folder (default: dlt's, ~/.dlt/pipelines, or "
                      "/var/dlt/pipelines when run as root)")


@main.command()
@load_target_options
@click.option("--workflow", "workflows", multiple=True, metavar="ID",
              help="Workflow to load (repeatable); default: every workflow the key can see.")
@click.option("--run", "runs", multiple=True, metavar="WORKFLOW_ID/RUN_ID",
              help="Run to fetch by id on every load (repeatable).")
@click.option("--since", metavar="ISO8601", help="Lower bound on run created_at (first load).")
@click.option("--no-results", is_flag=True, help="Do not fetch step result payloads.")
@click.option("--full-refresh", is_flag=True, help="Drop this source's tables and state first.")
@click.option("--drop-pending", is_flag=True,
              help="First drop the load packages an earlier run left pending (status lists "
                   "them); their data is fetched again.")
@click.option("--lookback-minutes", type=int, default=DEFAULT_LOOKBACK_MINUTES,
              show_default=True, help="Re-list runs created this long before the mark.")
@click.option("--concurrency", type=click.IntRange(1, MAX_CONCURRENCY),
              default=DEFAULT_CONCURRENCY, show_default=True,
              help="Requests in flight at most, a hard cap (the limiter starts at 8, rises "
                   "while answers stay fast, and falls on 429s or slower answers).")
@click.option("--max-requests-per-minute", type=click.IntRange(min=1), metavar="N",
              help="Never more than N requests in any 60 s (a key shared with other users; "
                   "also max_requests_per_minute in [sources.onepin]).")
@click.option("--row-format", type=click.Choice(["arrow", "dicts"]), default="arrow",
              show_default=True, help="arrow: fast path; dicts: dlt's plain rows (same tables).")
@click.option("--progress", type=click.Choice(["log", "tqdm", "enlighten", "alive_progress"]),
              help="Show dlt's progress while loading.")
@click.option("--pipeline-name",
              help=f"dlt pipeline name (default {DEFAULT_PIPELINE_NAME}, or "
                   f"{DEFAULT_PIPELINE_NAME}_<destination> for other destinations).")
@click.option("--pipelines-dir", type=click.Path(file_okay=False), help=f"{PIPELINES_DIR_HELP}.")
@click.option("--wait", "wait_s", type=click.FloatRange(min=0), default=0, show_default=True,
              metavar="SECONDS",
              help="If another load of this pipeline is running, wait this long for it, then "
                   "exit 7.")
@click.option("--max-duration", type=click.FloatRange(min=0, min_open=True), metavar="SECONDS",
              help="Start no new work after this long: commit what was fetched, exit 0; the "
                   "next load continues (config: max_duration).")
@shard_option
@user_errors
def load(destination: str, duckdb_path: str, parquet_dir: str, dataset: str,
         workflows: tuple[str, ...], runs: tuple[str, ...], since: str | None,
         no_results: bool, full_refresh: bool, drop_pending: bool, lookback_minutes: int,
         concurrency: int, max_requests_per_minute: int | None, row_format: str,
         progress: str | None, pipeline_name: str | None, pipelines_dir: str | None,
         wait_s: float, max_duration: float | None, shard: str | None) -> None:
    """Load workflows, runs and run steps incrementally, committed in pieces."""
    from collections import Counter

    from onepin_etl.destinations import Target
    from onepin_etl.pipeline import load as run
    from onepin_source.pieces import Pieces

    _check_shard(shard)
    target = Target(destination, duckdb_path, parquet_dir, dataset, pipeline_name, pipelines_dir,
                    shard)
    counts: Counter[str] = Counter()  # rows per table, summed over the load's pieces
    packages: list[str] = []
    plans: list[Pieces] = []

    def piece_done(info: Any, plan: Pieces) -> None:
        trace = info.pipeline.last_trace
        normalized = trace.last_normalize_info if trace else None
        counts.update(normalized.row_counts if normalized else {})
        packages.extend(info.loads_ids)
        plans[:] = [plan]
        if not plan.finished and not plan.time_is_up():
            err.out(f"committed {plan.describe()}", highlight=False)

    options: dict[str, Any] = {}  # else [sources.onepin]'s, if set
    if max_duration is not None:
        options["max_duration"] = max_duration
    if max_requests_per_minute:
        options["max_requests_per_minute"] = max_requests_per_minute
    run(target, full_refresh=full_refresh, progress=progress, wait_s=wait_s,
        drop_pending=drop_pending, on_piece=piece_done, workflow_ids=list(workflows) or None,
        runs=list(runs) or None, since=since, include_result=not no_results,
        lookback_minutes=lookback_minutes, concurrency=concurrency, row_format=row_format,
        **options)
    rows = ", ".join(f"{counts.get(t, 0)} {t}" for t in ("workflows", "runs", "run_steps"))
    of_shard = f" (shard {shard})" if shard else ""
    out.print(f"Loaded {rows}{of_shard} into {target.location} (dataset {dataset}); "
              f"{len(packages)} load package(s).")
    if plans and not plans[0].finished:
        workflows_left, runs_left = plans[0].left()
        out.print(f"Time is up after {plans[0].elapsed_s():.0f} s: {workflows_left} workflows "
                  f"(~{runs_left} runs) remaining; the next load continues.")


@main.command()
@target_options
@click.option("--workflow", "workflows", multiple=True, metavar="ID",
              help="Only these workflows (repeatable).")
@click.option("--since", metavar="ISO8601", help="Only runs created at or after this time.")
@click.option("--top", type=click.IntRange(1, 1000), default=10, show_default=True,
              help="Rows per ranking.")
@click.option("--format", "fmt",
              type=click.Choice(["table", "csv", "json", "markdown", "html"]),
              default="table", show_default=True,
              help="html: a self-contained page with charts (write it with --output).")
@click.option("--output", type=click.Path(dir_okay=False),
              help="Write the report to this file instead of the terminal.")
@click.option("--as-of", metavar="ISO8601",
              help="html: judge the checks as of this time (default: now).")
@user_errors
def report(destination: str, duckdb_path: str, parquet_dir: str, dataset: str,
           workflows: tuple[str, ...], since: str | None, top: int, fmt: str,
           output: str | None, as_of: str | None) -> None:
    """Pass rates, run durations, slowest and most failing nodes, retries and flaky nodes."""
    from onepin_etl import report as reporting
    from onepin_etl.analysis import Filters, NoDataError
    from onepin_source.config import parse_since, validate_uuid

    with flags():  # the options first: a typo in one is the thing to fix
        parse_since(since)
        as_of_time = parse_since(as_of, "as_of")
    filters = Filters(tuple(validate_uuid(w, "workflow id") for w in workflows), since)
    target = _readable(destination, duckdb_path, parquet_dir, dataset)
    if fmt == "html":
        _html_report(target, filters, top, output, as_of_time)
        return
    try:
        sections = reporting.build(target, top, filters=filters)
    except NoDataError as exc:
        out.print(f"Nothing to report yet: {said(exc)}")
        return
    if reporting.is_empty(sections):
        out.print("Nothing to report: no runs match (check --workflow and --since).")
        return
    if output:
        with open(output, "w", encoding="utf-8") as file:
            reporting.render(sections, fmt, Console(file=file, width=160, soft_wrap=True))
        out.print(f"Wrote the report to {output}.")
        return
    reporting.render(sections, fmt, out)


def _html_report(target: Target, filters: Any, top: int, output: str | None,
                 as_of: Any) -> None:
    from datetime import UTC, datetime

    from onepin_etl import health, html_report

    checks = health.CheckConfig(as_of=as_of or datetime.now(UTC))
    page = html_report.build_page(target, top=top, filters=filters, checks=checks)
    if output:
        html_report.write_page(output, page)
        out.print(f"Wrote the health page to {output}.")
    else:
        out.out(page, highlight=False)


@main.command()
@target_options
@click.option("--workflow", "workflows", multiple=True, metavar="ID",
              help="Only these workflows (repeatable).")
@click.option("--by", type=click.Choice(["node", "node_type"]), default="node",
              show_default=True, help="Check each node of each workflow, or each node type.")
@click.option("--window", default="24h", show_default=True,
              help="The recent window (s, m, h, d).")
@click.option("--baseline", default="7d", show_default=True,
              help="The baseline window, just before the recent one, for regressions.")
@click.option("--max-failure-rate", type=click.FloatRange(0, 1),
              help="Fail when a failure rate over the window is above this (0-1).")
@click.option("--max-p95-seconds", type=click.FloatRange(min=0),
              help="Fail when a p95 step duration over the window is above this.")
@click.option("--max-age", help="Fail when the newest loaded run is older than this (e.g. 2h).")
@click.option("--min-executions", type=click.IntRange(min=1), default=20, show_default=True,
              help="Steps a node needs in a window before it is judged.")
@click.option("--min-failures", type=click.IntRange(min=1), default=5, show_default=True,
              help="Recent failures a failure-rate regression needs.")
@click.option("--confidence", type=float, default=0.99, show_default=True,
              help="Confidence of the regression tests.")
@click.option("--p95-factor", type=click.FloatRange(min=1), default=1.5, show_default=True,
              help="How much slower a recent p95 must be to count as a regression.")
@click.option("--no-regressions", is_flag=True, help="Skip the regression rules.")
@click.option("--allow-empty", is_flag=True,
              help="Healthy even with no steps in the window (default: exit 6, nothing to "
                   "judge).")
@click.option("--as-of", metavar="ISO8601", help="Judge as of this time (default: now).")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table",
              show_default=True)
@click.option("--notify", "notify_url", metavar="URL",
              help="Webhook to POST to when the verdict changes (or ONEPIN_NOTIFY_URL, or "
                   "[notify] url in .dlt/secrets.toml); never printed.")
@click.option("--notify-always", is_flag=True,
              help="Post on every failing check, not only on a change.")
@click.option("--notify-timeout", type=click.FloatRange(min=0.1), default=10.0,
              show_default=True, metavar="SECONDS",
              help="How long the 3 attempts of a post may wait for the webhook, together.")
@click.option("--pipeline-name", help="dlt pipeline name (where the last verdict is kept).")
@click.option("--pipelines-dir", type=click.Path(file_okay=False),
              help="dlt's working folder (where the last verdict is kept).")
@user_errors
def check(destination: str, duckdb_path: str, parquet_dir: str, dataset: str,
          workflows: tuple[str, ...], by: str, window: str, baseline: str,
          max_failure_rate: float | None, max_p95_seconds: float | None, max_age: str | None,
          min_executions: int, min_failures: int, confidence: float, p95_factor: float,
          no_regressions: bool, allow_empty: bool, as_of: str | None, fmt: str,
          notify_url: str | None, notify_always: bool, notify_timeout: float,
          pipeline_name: str | None, pipelines_dir: str | None) -> None:
    """Health checks after a load: thresholds, freshness, regressions. Exit 6 on a failure."""
    from datetime import UTC, datetime

    from onepin_etl import analysis, health, notify
    from onepin_etl.errors import CheckFailedError
    from onepin_source.config import parse_since, validate_uuid

    webhook = notify.resolve_url(notify_url)
    recent, before = health.parse_duration(window), health.parse_duration(baseline)
    oldest = health.parse_duration(max_age) if max_age else None
    with flags():
        config = health.CheckConfig(
            as_of=parse_since(as_of, "as_of") or datetime.now(UTC), window=recent,
            baseline=before, by=by, max_failure_rate=max_failure_rate,
            max_p95_seconds=max_p95_seconds, max_age=oldest, min_executions=min_executions,
            min_failures=min_failures, confidence=confidence, p95_factor=p95_factor,
            regressions=not no_regressions, allow_empty=allow_empty)
    filters = analysis.Filters(tuple(validate_uuid(w, "workflow id") for w in workflows))
    with analysis.connect(_readable(destination, duckdb_path, parquet_dir, dataset),
                          filters=filters) as con:
        result = health.run_checks(con, config)
    if fmt == "json":
        out.out(json.dumps({"healthy": result.healthy,
                            "findings": [f.as_dict() for f in result.findings],
                            "groups_checked": result.groups_checked,
                            "steps_recent": result.steps_recent,
                            "steps_baseline": result.steps_baseline,
                            "newest_run_at": result.newest_run_at.isoformat()
                            if result.newest_run_at else None}, indent=2), highlight=False)
    else:
        for finding in result.findings:
            out.out(finding.line(), highlight=False)
        newest = result.newest_run_at.isoformat() if result.newest_run_at else "none"
        verdict = "healthy" if result.healthy else f"{len(result.findings)} check(s) failed"
        out.out(f"{verdict}: {result.groups_checked} {by}s with steps in the last {window}, "
                f"{result.steps_recent} recent and {result.steps_baseline} baseline steps; "
                f"newest run {newest}", highlight=False)
    if webhook:
        from onepin_etl.destinations import Target

        target = Target(destination, duckdb_path, parquet_dir, dataset, pipeline_name,
                        pipelines_dir)
        sent = notify.send_if_changed(webhook, target, result, as_of=config.as_of,
                                      always=notify_always, timeout_s=notify_timeout)
        if sent:
            err.out(sent, highlight=False)
    if not result.healthy:
        raise CheckFailedError(f"{len(result.findings)} health check(s) failed")


def _check_shard(shard: str | None) -> None:
    """A malformed ``--shard`` is a usage error, named by its flag, before any request."""
    from onepin_source.shards import Shard

    if shard:
        with flags():
            Shard.parse(shard)


def _readable(destination: str, duckdb_path: str, parquet_dir: str, dataset: str) -> Target:
    """Where a reader (report, check, sql) finds the data; refused before anything else when
    readers cannot open that kind of destination."""
    from onepin_etl.destinations import Target

    target = Target(destination, duckdb_path, parquet_dir, dataset)
    target.check_readable()
    _require_local_files(target)
    return target


def _require_local_files(target: Target) -> None:
    """A reader pointed at a DuckDB file or Parquet folder that does not exist is a usage error
    (a typo, most often), not an empty result: exit 2 saying so."""
    path = target.local_files
    if path is not None and not path.exists():
        option = f"--{(target.kind.location_param or 'destination').replace('_', '-')}"
        raise ConfigError(f"{path} does not exist: check {option}, or load it first with "
                          f"'onepin-etl load'")


@main.command()
@target_options
@click.option("--pipeline-name", help="dlt pipeline name (as given to load).")
@click.option("--pipelines-dir", type=click.Path(file_okay=False),
              help=f"{PIPELINES_DIR_HELP}; as given to load.")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table",
              show_default=True)
@status_shard_option
@user_errors
def status(destination: str, duckdb_path: str, parquet_dir: str, dataset: str,
           pipeline_name: str | None, pipelines_dir: str | None, fmt: str,
           shard: str | None) -> None:
    """The last loads, data freshness, open runs tracked, pending packages, a lock held."""
    from onepin_etl.destinations import Target
    from onepin_etl.status import collect

    _check_shard(shard)
    target = Target(destination, duckdb_path, parquet_dir, dataset, pipeline_name, pipelines_dir,
                    shard)
    target.check_readable()
    found = collect(target)  # first: "no pipeline" says more than "no file" on a first day
    _require_local_files(target)
    if fmt == "json":
        out.out(json.dumps(found.as_dict(), indent=2), highlight=False)
        return
    run, rows = found.last_run, found.last_load_rows
    lines = [
        ("pipeline", f"{found.pipeline} -> {found.location} (dataset {dataset})"),
        ("last completed load", f"{found.last_load_at:%Y-%m-%d %H:%M:%S} UTC "
         f"(load {found.last_load_id}; {found.loads} in all)" if found.last_load_at else "none"),
        ("its rows", ", ".join(f"{n} {t}" for t, n in sorted(rows.items())) if rows is not None
         else "not in this folder's trace"),
        ("last run", "none recorded" if run is None else
         f"{run.started_at:%Y-%m-%d %H:%M:%S} UTC, {run.seconds or 0:.1f} s, "
         + (f"failed in {run.failed_step}: {run.error}" if run.failed_step else "succeeded")),
        ("newest run loaded", f"{found.newest_run_at:%Y-%m-%d %H:%M:%S} UTC"
         if found.newest_run_at else "none"),
        ("open runs tracked", f"{found.open_runs} in {found.workflows_tracked} workflows"),
        ("last checkpoint", _checkpoint(found.checkpoint, found.lock_holder is not None)),
        ("pending packages", ", ".join(found.pending_packages) or "none"),
        ("lock", f"held by {found.lock_holder.describe()} (a load in progress)"
         if found.lock_holder else "free"),
    ]
    for label, value in lines:
        out.out(f"{label:>20}: {value}", highlight=False)


def _checkpoint(checkpoint: dict[str, Any] | None, running: bool) -> str:
    """The last piece a load committed (extracted, when its package is still pending)."""
    if not checkpoint:
        return "none"
    left = checkpoint["workflows_left"]
    line = f"piece {checkpoint['piece']} of the {'current' if running else 'last'} load; "
    if not left:
        return line + "nothing left"
    return line + (f"{left} workflows (~{checkpoint['runs_left']} runs) left"
                   + ("" if running else "; the next load continues"))


@main.command()
@target_options
@click.option("--pipeline-name", help="dlt pipeline name (as given to load).")
@click.option("--pipelines-dir", type=click.Path(file_okay=False),
              help="dlt's working folder (as given to load).")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text",
              show_default=True, help="json: the stable schema of docs/doctor.md.")
@click.option("--max-requests", type=click.IntRange(min=1), default=DOCTOR_MAX_REQUESTS,
              show_default=True,
              help="API requests at most (none is retried).")
@user_errors
def doctor(destination: str, duckdb_path: str, parquet_dir: str, dataset: str,
           pipeline_name: str | None, pipelines_dir: str | None, fmt: str,
           max_requests: int) -> None:
    """Check configuration, API, API contract and destination in one read-only pass. Exit 0 when
    a load can start, else 2 configuration, 3 authentication, 4 API, 5 destination."""
    from onepin_etl import doctor as checkup
    from onepin_etl.destinations import Target
    from onepin_etl.doctor.render import lines

    found = checkup.run(Target(destination, duckdb_path, parquet_dir, dataset, pipeline_name,
                               pipelines_dir), max_requests=max_requests)
    if fmt == "json":
        out.out(json.dumps(found.as_dict(), indent=2, ensure_ascii=False), highlight=False)
    else:
        for line in lines(found):
            out.out(line, highlight=False)
    sys.exit(found.exit_code)


@main.command()
@click.option("--parquet-dir", default=DEFAULT_PARQUET_DIR, show_default=True,
              help="The Parquet folder to compact.")
@click.option("--dataset", default=DEFAULT_DATASET, show_default=True)
@click.option("--pipeline-name", help="dlt pipeline name that loads the folder (for its lock).")
@click.option("--pipelines-dir", type=click.Path(file_okay=False),
              help=f"{PIPELINES_DIR_HELP}; for the lock.")
@click.option("--wait", "wait_s", type=click.FloatRange(min=0), default=0, show_default=True,
              metavar="SECONDS", help="If a load is running, wait this long, then exit 7.")
@user_errors
def compact(parquet_dir: str, dataset: str, pipeline_name: str | None,
            pipelines_dir: str | None, wait_s: float) -> None:
    """Rewrite a Parquet folder to the latest version of each row: one file per table."""
    from onepin_etl.destinations import Target
    from onepin_etl.pipeline import pipeline_lock

    target = Target("parquet", parquet_dir=parquet_dir, dataset=dataset,
                    pipeline_name=pipeline_name, pipelines_dir=pipelines_dir)
    with pipeline_lock(target, wait_s=wait_s):
        for done in target.compact():
            if done.rows < 0:
                out.out(f"{done.table}: {done.files_before} file(s), nothing to do",
                        highlight=False)
            else:
                out.out(f"{done.table}: {done.files_before} files -> 1 ({done.rows} rows)",
                        highlight=False)


@main.command()
@target_options
@click.argument("query")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json", "markdown"]),
              default="table", show_default=True)
@user_errors
def sql(destination: str, duckdb_path: str, parquet_dir: str, dataset: str, query: str,
        fmt: str) -> None:
    """Run a read-only SQL QUERY over the tables and analysis views (e.g. "select * from
    node_stats limit 5")."""
    import duckdb

    from onepin_etl import analysis
    from onepin_etl import report as reporting
    from onepin_source.errors import ConfigError

    target = _readable(destination, duckdb_path, parquet_dir, dataset)
    try:
        frame = analysis.query(query, target=target)
    except duckdb.Error as exc:
        raise ConfigError(f"the query failed: {str(exc).splitlines()[0]}") from None
    reporting.render({"query": frame}, fmt, out)


@main.command()
@target_options
@click.option("--format", "fmt", type=click.Choice(["markdown", "json"]), default="markdown",
              show_default=True)
@user_errors
def schema(destination: str, duckdb_path: str, parquet_dir: str, dataset: str,
           fmt: str) -> None:
    """The data dictionary of the loaded data: each table and view, each column, its type and
    what it means (docs/data-dictionary.md)."""
    from onepin_etl import analysis
    from onepin_etl import schema as dictionary

    with analysis.connect(_readable(destination, duckdb_path, parquet_dir, dataset)) as con:
        relations = dictionary.read(con, dataset)
    click.echo(dictionary.to_json(relations) if fmt == "json"
               else dictionary.to_markdown(relations, dataset))


@main.command()
@click.option("--out-dir", type=click.Path(file_okay=False), default="demo_output",
              show_default=True, help="Where the demo's DuckDB file and dlt state go.")
@user_errors
def demo(out_dir: str) -> None:
    """Simulator + load into DuckDB + incremental load + report, in a few seconds."""
    from pathlib import Path

    from onepin_etl.demo import run_demo

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
@click.option("--latency-ms", type=float, default=0.0, show_default=True,
              help="The median answer time (the profile spreads the others around it).")
@click.option("--latency-profile", type=click.Choice(PROFILES), default="constant",
              show_default=True, help="How answer times vary (docs/simulator.md).")
@click.option("--capacity", type=click.IntRange(min=1), default=DEFAULT_CAPACITY,
              show_default=True,
              help="saturating: requests served at once; the others queue.")
@click.option("--jitter-ms", type=float, default=0.0, show_default=True,
              help="constant: a uniform 0..N ms added to every answer.")
@click.option("--share-429", type=float, default=0.0, show_default=True)
@click.option("--retry-after", type=int, default=1, show_default=True)
@click.option("--rate-limit", type=int, default=0, show_default=True,
              help="Requests per key per window (0 = unlimited).")
@click.option("--rate-window", type=int, default=60, show_default=True,
              help="Length of the rate-limit window in seconds.")
@click.option("--rate-sliding", is_flag=True,
              help="A sliding rate-limit window (any --rate-window seconds), not a fixed one.")
@click.option("--rate-limit-headers", is_flag=True,
              help="Send X-RateLimit-* and RateLimit/RateLimit-Policy headers with the quota.")
@click.option("--share-5xx", type=float, default=0.0, show_default=True)
@click.option("--share-malformed", type=float, default=0.0, show_default=True)
@click.option("--share-dropped", type=float, default=0.0, show_default=True)
@click.option("--odd-steps", type=float, default=0.0, show_default=True,
              help="Share of steps served in undocumented shapes (missing fields, wrong types…).")
@click.option("--fault-seed", type=int, default=0, show_default=True)
def sim(host: str, port: int, seed: int, workflows: int, runs: int, nodes: int,
        run_interval: int, latency_ms: float, latency_profile: str, capacity: int,
        jitter_ms: float, share_429: float,
        retry_after: int, rate_limit: int, rate_window: int, rate_sliding: bool,
        rate_limit_headers: bool, share_5xx: float,
        share_malformed: float, share_dropped: float, odd_steps: float,
        fault_seed: int) -> None:
    """Serve the Onepin API simulator until interrupted."""
    from onepin_sim import FaultConfig, Simulator, WorldConfig

    faults = FaultConfig(latency_ms=latency_ms, jitter_ms=jitter_ms,
                         latency_profile=latency_profile, capacity=capacity, share_429=share_429,
                         retry_after_s=retry_after, rate_limit_per_min=rate_limit,
                         rate_window_s=rate_window, rate_sliding=rate_sliding,
                         rate_limit_headers=rate_limit_headers,
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
