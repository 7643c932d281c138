"""One measured job per process, so each gets its own peak RSS: ``python -m bench.jobs JOB ...``.

Every job prints one JSON line last: ``{"wall_s", "peak_rss_mb", "rows", ...}``.

- ``project``: this project's load (the same code as ``onepin-etl load``) from the simulator;
  ``--fixed-concurrency N`` holds N requests in flight throughout instead of the congestion
  limit (a bench-only setting: the baseline the limit is measured against).
- ``fetch``: the simplest honest baseline, a plain 32-thread ``requests`` fetch of a list of
  request paths (what a load sent, recorded by the simulator).
- ``rest_api``: the naive reference, dlt's declarative ``rest_api`` source (rest_api_baseline.py).
- ``throughput``: no network: recorded API step pages, replayed N times with new ids, shaped and
  loaded by this project's code (``step_rows`` + Arrow or dict rows) into DuckDB.
- ``raw_insert``: the loading lower bound: the same rows as one Arrow table, inserted N times
  into DuckDB with plain pyarrow + duckdb (no dlt).
"""

from __future__ import annotations

import gc
import itertools
import json
import os
import pickle
import resource
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click


def _report(started: float, **extra: Any) -> None:
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"wall_s": round(time.perf_counter() - started, 3),
                      "peak_rss_mb": round(peak_mb, 1), **extra}))


@click.group()
def jobs() -> None:
    os.environ.setdefault("RUNTIME__DLT_TELEMETRY", "false")


class _FixedLimit:
    """A congestion limit that never moves: ``cap`` in flight from the first request."""

    def __init__(self, cap: int, **_: Any) -> None:
        self.limit = cap
        self.probes = self.lowered = 0

    def answered(self, *_: Any, **__: Any) -> None:
        pass

    def backed_off(self, *_: Any, **__: Any) -> bool:
        return False

    def pace(self, answered: int) -> None:
        return None  # nothing for the next load to start from

    def restore(self, pace: Any) -> None:
        pass


@jobs.command()
@click.argument("duckdb_file")
@click.argument("pipelines_dir")
@click.option("--concurrency", type=int, required=True)
@click.option("--fixed-concurrency", is_flag=True,
              help="Hold --concurrency in flight throughout (no congestion limit).")
@click.option("--legacy", is_flag=True,
              help="The earlier incremental algorithm (detect_changes=False), to compare with.")
@click.option("--max-requests-per-minute", type=int)
@click.option("--progress-file", type=click.Path(dir_okay=False),
              help="Write each piece's elapsed seconds and progress line here (JSON lines).")
def project(duckdb_file: str, pipelines_dir: str, concurrency: int, fixed_concurrency: bool,
            legacy: bool, max_requests_per_minute: int | None, progress_file: str | None) -> None:
    """``onepin-etl load``'s code, ``onepin_etl.load`` (ONEPIN_BASE_URL / ONEPIN_API_KEY from the
    environment)."""
    from onepin_etl import Target, load

    if fixed_concurrency:
        from onepin_source import throttle

        throttle.CongestionLimit = _FixedLimit  # type: ignore[assignment,misc]
    options: dict[str, Any] = {"max_requests_per_minute": max_requests_per_minute} \
        if max_requests_per_minute else {}
    started = time.perf_counter()
    pieces: list[dict[str, Any]] = []
    if progress_file:
        options["on_piece"] = lambda info, plan: pieces.append(
            {"elapsed_s": round(time.perf_counter() - started, 3), "line": plan.describe()})
    load(Target(duckdb_path=duckdb_file, pipelines_dir=pipelines_dir), concurrency=concurrency,
         detect_changes=not legacy, **options)
    if progress_file:
        Path(progress_file).write_text("".join(json.dumps(p) + "\n" for p in pieces))
    _report(started, rows=_counts(duckdb_file), packages=_packages(pipelines_dir))


def _packages(pipelines_dir: str) -> int:
    """Load packages the pipelines folder holds as loaded (all of this folder's loads)."""
    return sum(1 for _ in Path(pipelines_dir).glob("*/load/loaded/*"))


@jobs.command()
@click.argument("paths_file")
@click.option("--threads", type=int, default=32, show_default=True)
def fetch(paths_file: str, threads: int) -> None:
    """GET every path of ``paths_file`` (a JSON list) from ONEPIN_BASE_URL with ``threads``
    threads, a keep-alive session each, reading each body: what the requests cost alone."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    import requests

    paths: list[str] = json.loads(Path(paths_file).read_text())
    base, key = os.environ["ONEPIN_BASE_URL"], os.environ["ONEPIN_API_KEY"]
    local = threading.local()

    def get(path: str) -> int:
        session = getattr(local, "session", None)
        if session is None:
            session = local.session = requests.Session()
            session.headers["Authorization"] = f"Bearer {key}"
        return len(session.get(base + path, timeout=60).content)

    started = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        size = sum(pool.map(get, paths))
    _report(started, requests=len(paths), bytes=size)


@jobs.command("rest_api")
@click.argument("duckdb_file")
@click.argument("pipelines_dir")
def rest_api(duckdb_file: str, pipelines_dir: str) -> None:
    """dlt's declarative rest_api source over the same endpoints."""
    from bench.rest_api_baseline import main

    started = time.perf_counter()
    main(os.environ["ONEPIN_BASE_URL"], duckdb_file, pipelines_dir)
    _report(started, rows=_counts(duckdb_file))


Pool = list[tuple[str, str, list[dict[str, Any]]]]


def _load_pool(pool_file: str) -> Pool:
    with open(pool_file, "rb") as f:
        pool: Pool = pickle.load(f)
    # The recorded pages are static input held for the whole job; freezing them keeps Python's
    # cyclic GC from rescanning them at every collection (the source holds no such pool).
    gc.freeze()
    return pool


def _replayed_pages(pool: Pool, rows: int) -> Iterator[list[dict[str, Any]]]:
    """Step rows in batches of up to RUNS_PER_BATCH runs, shaped by the source's own
    ``step_rows`` (as it hands them to dlt), from the recorded pages replayed with new step and
    run ids until at least ``rows`` are made. The ids are set in place: copying every step would
    count the harness's work as the project's. Runs are whole: a run's steps are replaced as a
    unit, so a cut run would lose steps when loaded again."""
    from onepin_source.batches import step_rows
    from onepin_source.settings import RUNS_PER_BATCH

    recorded_ids = [[s["id"] for s in steps] for _, _, steps in pool]
    produced = 0
    runs: list[tuple[str, str, list[dict[str, Any]]]] = []
    for replay in itertools.count():
        for (workflow_id, run_id, steps), step_ids in zip(pool, recorded_ids, strict=True):
            for step, step_id in zip(steps, step_ids, strict=True):
                step["id"] = f"{step_id}:{replay}"  # shaped into new rows before the next replay
            runs.append((workflow_id, f"{run_id}:{replay}", steps))
            produced += len(steps)
            if len(runs) == RUNS_PER_BATCH or produced >= rows:
                yield step_rows(runs)
                runs = []
                if produced >= rows:
                    return
        if runs:  # the next replay gives these steps new ids: shape them first
            yield step_rows(runs)
            runs = []


@jobs.command()
@click.argument("pool_file")
@click.argument("duckdb_file")
@click.argument("pipelines_dir")
@click.option("--rows", type=int, required=True)
@click.option("--row-format", type=click.Choice(["arrow", "dicts"]), required=True)
def throughput(pool_file: str, duckdb_file: str, pipelines_dir: str, rows: int,
               row_format: str) -> None:
    """Shape + normalize + load ``rows`` steps with no network (the source's own code)."""
    import dlt

    from onepin_etl.destinations import duckdb_destination
    from onepin_etl.pipeline import configure_dlt, fewer_gc_passes
    from onepin_source.batches import RowBatches
    from onepin_source.hints import RUN_STEPS_TABLE

    configure_dlt()
    batches = RowBatches(row_format)
    pool = _load_pool(pool_file)

    @dlt.resource(**RUN_STEPS_TABLE)
    def run_steps() -> Iterator[Any]:
        for page in _replayed_pages(pool, rows):
            yield batches.steps(page)

    pipeline = dlt.pipeline("bench_throughput", pipelines_dir=pipelines_dir,
                            destination=duckdb_destination(duckdb_file), dataset_name="onepin")
    started = time.perf_counter()
    with fewer_gc_passes():  # as onepin-etl load does
        pipeline.run(run_steps())
    _report(started, rows=_counts(duckdb_file, ("run_steps",)))


@jobs.command("raw_insert")
@click.argument("pool_file")
@click.argument("duckdb_file")
@click.option("--rows", type=int, required=True)
def raw_insert(pool_file: str, duckdb_file: str, rows: int) -> None:
    """The same rows as Arrow, inserted with duckdb directly: the floor for loading."""
    import dlt
    import duckdb
    import pyarrow as pa

    from onepin_source.arrow_rows import ArrowRows
    from onepin_source.hints import STEP_HINTS

    shaper = ArrowRows("run_steps", STEP_HINTS)
    shaper._bind(dlt.Schema("onepin"))  # no pipeline here: start from the hints alone
    items = [shaper.table(page) for page in _replayed_pages(_load_pool(pool_file),
                                                            min(rows, 50_000))]
    tables = [getattr(item, "data", item) for item in items]  # hints are dlt's business
    batch = pa.concat_tables(tables, promote_options="default")
    repeats = max(1, rows // batch.num_rows)
    with duckdb.connect(duckdb_file) as con:
        started = time.perf_counter()
        con.execute("create table run_steps as select * from batch limit 0")
        for _ in range(repeats):
            con.execute("insert into run_steps select * from batch")
        (loaded,), = con.sql("select count(*) from run_steps").fetchall()
    _report(started, rows={"run_steps": loaded})


def _counts(duckdb_file: str, tables: tuple[str, ...] = ("workflows", "runs", "run_steps")
            ) -> dict[str, int]:
    import duckdb

    if not Path(duckdb_file).exists():
        return {}
    with duckdb.connect(duckdb_file, read_only=True) as con:
        return {t: con.sql(f"select count(*) from onepin.{t}").fetchall()[0][0] for t in tables}


if __name__ == "__main__":
    sys.exit(jobs())
