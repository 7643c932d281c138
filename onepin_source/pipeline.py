"""Building the dlt pipeline for a destination and running a load safely.

What this adds to ``pipeline.run``: DuckDB file names that cannot collide with the dataset,
pending packages finished *before* new data is extracted (dlt's default would load only the
pending package and skip new data), bounded retries of a load blocked by a DuckDB lock, and
exceptions mapped to the CLI's exit codes.
"""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dlt
from dlt.common.pipeline import LoadInfo
from dlt.pipeline.exceptions import PipelineStepFailed

from onepin_source.analysis import persist_views
from onepin_source.duckdb_merge import KeyDedupDuckDb
from onepin_source.errors import ConfigError, DestinationError, OnepinError
from onepin_source.settings import (
    DEFAULT_DATASET,
    DEFAULT_DUCKDB_PATH,
    DEFAULT_PARQUET_DIR,
    DEFAULT_PIPELINE_NAME,
    DUCKDB_MEMORY_LIMIT,
)

log = logging.getLogger(__name__)
LOCK_RETRIES = 3  # a reader (a notebook) usually lets go of the DuckDB file within seconds
LOCK_RETRY_WAIT_S = 2.0
# Python's cyclic GC scans the young objects every 700 allocations; a batch of steps keeps ~100k
# dicts and lists alive until it is written, so they are scanned again and again: 1.6 s of a
# 1M-step load. Every 20,000 allocations: 0.07 s; every 100,000: 0.03 s (README Performance).
LOAD_GC_THRESHOLD = 50_000


@dataclass(frozen=True)
class Target:
    """Where a load goes. ``destination`` is ``duckdb``, ``parquet`` or any dlt destination."""

    destination: str = "duckdb"
    duckdb_path: str = DEFAULT_DUCKDB_PATH
    parquet_dir: str = DEFAULT_PARQUET_DIR
    dataset: str = DEFAULT_DATASET
    pipeline_name: str | None = None  # default: "onepin" for duckdb, "onepin_<destination>"
    pipelines_dir: str | None = None

    @property
    def name(self) -> str:
        if self.pipeline_name:
            return self.pipeline_name
        if self.destination == "duckdb":
            return DEFAULT_PIPELINE_NAME
        return f"{DEFAULT_PIPELINE_NAME}_{self.destination}"

    @property
    def key(self) -> str:
        """Where the data goes. The source's incremental state is only valid for this place:
        a pipeline pointed at another file or folder starts its marks over."""
        if self.destination == "duckdb":
            location = str(Path(self.duckdb_path).absolute())
        elif self.destination == "parquet":
            location = self.parquet_dir if "://" in self.parquet_dir else \
                str(Path(self.parquet_dir).absolute())
        else:
            location = ""
        return f"{self.destination}|{location}|{self.dataset}"

    def check(self) -> None:
        """Refuse a DuckDB file whose stem equals the dataset name (DuckDB cannot tell them
        apart: "Ambiguous reference to catalog or schema")."""
        if self.destination == "duckdb" and Path(self.duckdb_path).stem == self.dataset:
            raise ConfigError(f"DuckDB file {self.duckdb_path!r} has the same name as the dataset "
                              f"{self.dataset!r}, which DuckDB cannot tell apart; choose another "
                              "--duckdb-path or --dataset")

    def dlt_destination(self) -> Any:
        if self.destination == "duckdb":
            return duckdb_destination(self.duckdb_path)
        if self.destination == "parquet":
            url = self.parquet_dir
            if "://" not in url:
                url = str(Path(url).absolute())
            return dlt.destinations.filesystem(bucket_url=url)
        return self.destination

    @property
    def file_format(self) -> str | None:
        """Parquet files for the parquet destination (dlt's filesystem default is JSONL)."""
        return "parquet" if self.destination == "parquet" else None

    def pipeline(self, *, progress: str | None = None) -> dlt.Pipeline:
        self.check()
        kwargs: dict[str, Any] = {}
        if self.pipelines_dir:
            kwargs["pipelines_dir"] = self.pipelines_dir
        if progress:
            kwargs["progress"] = progress
        pipeline: dlt.Pipeline = dlt.pipeline(
            pipeline_name=self.name, destination=self.dlt_destination(),
            dataset_name=self.dataset, **kwargs)
        return pipeline


def duckdb_destination(path: str | Path) -> Any:
    """dlt's DuckDB destination for ``path``, with a memory cap (DuckDB spills past it) and a
    cheaper de-duplication of staged rows in merges (``duckdb_merge``)."""
    return KeyDedupDuckDb(credentials={
        "database": str(Path(path).absolute()),
        # Rows of a table have no order (SQL gives one with ORDER BY only); letting DuckDB
        # insert them in any order makes loads about 1 s per 1M steps faster.
        "global_config": {"memory_limit": DUCKDB_MEMORY_LIMIT,
                          "preserve_insertion_order": False},
    })


def run_load(pipeline: dlt.Pipeline, source: Any, *, full_refresh: bool = False,
             file_format: str | None = None) -> LoadInfo:
    """Finish any pending package, then extract, normalize and load ``source``."""
    options: dict[str, Any] = {"loader_file_format": file_format}
    if full_refresh:
        options["refresh"] = "drop_sources"
    try:
        with fewer_gc_passes():
            return _run(pipeline, source, options)
    except PipelineStepFailed as exc:
        raise _translate(exc) from None


def _run(pipeline: dlt.Pipeline, source: Any, options: dict[str, Any]) -> LoadInfo:
    if pipeline.has_pending_data:
        log.warning("finishing a load package left pending by an earlier run")
        _with_lock_retries(pipeline, lambda: (pipeline.normalize(), pipeline.load()))
    info: LoadInfo = _with_lock_retries(
        pipeline, lambda: pipeline.run(source, **options), resume=lambda: pipeline.load())
    if pipeline.destination.destination_type.endswith("duckdb"):
        with pipeline.sql_client() as client:
            persist_views(client.native_connection, pipeline.dataset_name)
    return info


@contextmanager
def fewer_gc_passes() -> Iterator[None]:
    """Run the cyclic garbage collector less often for a while (``LOAD_GC_THRESHOLD``)."""
    threshold = gc.get_threshold()
    gc.set_threshold(LOAD_GC_THRESHOLD, *threshold[1:])
    try:
        yield
    finally:
        gc.set_threshold(*threshold)


_DESTINATION_STEPS = ("sync", "load")  # the steps that open the destination


def _with_lock_retries(pipeline: dlt.Pipeline, action: Any, resume: Any = None) -> Any:
    """Run ``action``; if the destination refuses (a lock), wait and try again a few times.

    A failed sync (nothing extracted yet) repeats ``action``; a failed load repeats only the
    load of the package already normalized (``resume``).
    """
    try:
        return action()
    except PipelineStepFailed as exc:
        if exc.step not in _DESTINATION_STEPS or _user_error(exc) is not None:
            raise
        last = exc
    for attempt in range(1, LOCK_RETRIES + 1):
        log.warning("destination not writable (%s); retry %d of %d in %.0f s", _root(last),
                    attempt, LOCK_RETRIES, LOCK_RETRY_WAIT_S)
        time.sleep(LOCK_RETRY_WAIT_S)
        try:
            return (action if last.step == "sync" else resume or pipeline.load)()
        except PipelineStepFailed as exc:
            if exc.step not in _DESTINATION_STEPS:
                raise
            last = exc
    raise last


def _causes(exc: BaseException) -> list[BaseException]:
    """``exc`` and what caused it, outermost first (dlt wraps step errors in ``.exception``)."""
    chain = [exc]
    while len(chain) < 20:
        inner = getattr(chain[-1], "exception", None) or chain[-1].__cause__ \
            or chain[-1].__context__
        if inner is None or inner in chain:
            break
        chain.append(inner)
    return chain


def _root(exc: BaseException) -> BaseException:
    return _causes(exc)[-1]


def _user_error(exc: BaseException) -> OnepinError | None:
    return next((e for e in _causes(exc) if isinstance(e, OnepinError)), None)


def _translate(exc: PipelineStepFailed) -> OnepinError:
    found = _user_error(exc)
    if found is not None:
        return found
    root = _root(exc)
    if exc.step in _DESTINATION_STEPS:
        return DestinationError(f"could not write to the destination: {_one_line(root)}; if "
                                "another program (a notebook, the duckdb CLI) holds the file, "
                                "close it and run the load again: nothing is lost, the pending "
                                "data is loaded first")
    return DestinationError(f"{exc.step} step failed: {_one_line(root)}")


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"
