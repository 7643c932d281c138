"""Building the dlt pipeline for a destination and running a load safely: the one way to load.

    from onepin_etl import Target, load
    load(Target(duckdb_path="onepin_etl.duckdb"), workflow_ids=["<uuid>"])

What this adds to ``pipeline.run(onepin())``: dlt settings the source needs applied once per
process, DuckDB file names checked before any request, the project's DuckDB destination
(``destinations.duckdb_destination``), pending packages finished *before* new data is extracted
(dlt's default would load only the pending package and skip new data), bounded retries of a load
blocked by a DuckDB lock, the analysis views after a DuckDB load, and dlt's step errors turned
into the application's one-line errors.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import dlt
import duckdb
from dlt.common.pipeline import LoadInfo
from dlt.pipeline.exceptions import PipelineStepFailed

from onepin_etl import lock, recovery
from onepin_etl.analysis import persist_views
from onepin_etl.destinations import Target
from onepin_etl.errors import DestinationError
from onepin_etl.remote import first_line, scrub
from onepin_etl.settings import LOAD_GC_THRESHOLD, LOCK_RETRIES, LOCK_RETRY_WAIT_S
from onepin_source import onepin
from onepin_source.dlt_internals import ARROW_ROW_IDS_CONFIG
from onepin_source.errors import OnepinError
from onepin_source.pieces import Pieces, pieces_of

log = logging.getLogger(__name__)
_configured = threading.Event()


PieceDone = Callable[[LoadInfo, Pieces], None]


def load(target: Target | None = None, *, full_refresh: bool = False, progress: str | None = None,
         wait_s: float = 0.0, drop_pending: bool = False, on_piece: PieceDone | None = None,
         **source_options: Any) -> LoadInfo:
    """Load Onepin into ``target`` (default: ``onepin_etl.duckdb``) incrementally.

    One load per pipeline at a time: if another holds the pipeline's lock, wait up to
    ``wait_s`` seconds, then raise :class:`~onepin_etl.errors.LoadLockedError`.
    ``drop_pending`` first drops the load packages an earlier run left pending (dlt's
    ``abort_packages``: the local state goes back to before them, so their data is fetched
    again). ``source_options`` are :func:`onepin_source.onepin`'s (``workflow_ids``, ``runs``,
    ``since``, ``concurrency``, ``max_duration``, ...); the key and base URL come from dlt's
    config or the environment. The load commits in pieces (:func:`run_load`); ``on_piece``
    hears of each.
    """
    target = target or Target()
    target.check()
    source = onepin(target_key=target.key, shard=target.shard, **source_options)
    if target.destination == "parquet":
        # Files cannot merge: every load appends, and readers take each row's latest version
        # (analysis.latest_sql). Saying so spares dlt's "Falling back to 'append'" warnings.
        for resource in source.resources.values():
            resource.apply_hints(write_disposition="append")
    with pipeline_lock(target, wait_s=wait_s), recovery.no_empty_file_left(target):
        pipeline = build_pipeline(target, progress=progress)
        if drop_pending:
            recovery.drop_pending_packages(pipeline)
        return run_load(pipeline, source, full_refresh=full_refresh,
                        file_format=target.file_format, location=target.location,
                        on_piece=on_piece)


def pipeline_lock(target: Target, *, wait_s: float = 0.0) -> AbstractContextManager[None]:
    """The lock every writer of ``target`` holds (:mod:`onepin_etl.lock`)."""
    return lock.held(lock.lock_paths(target.working_dir, target.name, target.local_files),
                     target.name, wait_s=wait_s)


def build_pipeline(target: Target, *, progress: str | None = None) -> dlt.Pipeline:
    """The dlt pipeline for ``target``, with the dlt settings the source relies on."""
    target.check()
    configure_dlt()
    kwargs: dict[str, Any] = {}
    if target.pipelines_dir:
        kwargs["pipelines_dir"] = target.pipelines_dir
    if progress:
        kwargs["progress"] = progress
    pipeline: dlt.Pipeline = dlt.pipeline(
        pipeline_name=target.name, destination=target.dlt_destination(),
        dataset_name=target.dataset, **kwargs)
    return pipeline


def configure_dlt() -> None:
    """Process-wide dlt settings, applied once: Arrow rows get ``_dlt_load_id`` and ``_dlt_id``
    like dict rows do."""
    if _configured.is_set():
        return
    for key in ARROW_ROW_IDS_CONFIG:
        dlt.config[key] = True
    _configured.set()


def run_load(pipeline: dlt.Pipeline, source: Any, *, full_refresh: bool = False,
             file_format: str | None = None, location: str | None = None,
             on_piece: PieceDone | None = None) -> LoadInfo:
    """Finish any pending package, then extract, normalize and load ``source``. ``location``
    names the destination in errors (never a secret: :attr:`Target.location`).

    An ``onepin`` source is run piece after piece (:mod:`onepin_source.pieces`), each piece a
    package with its state, until no workflow is left or its time box is up; ``on_piece`` is
    called after each. The returned :class:`LoadInfo` is the last piece's."""
    options: dict[str, Any] = {"loader_file_format": file_format}
    if full_refresh:
        options["refresh"] = "drop_sources"
    try:
        with fewer_gc_passes():
            return _run(pipeline, source, options, on_piece)
    except PipelineStepFailed as exc:
        raise _translate(exc, _kind(pipeline), location) from None


def _run(pipeline: dlt.Pipeline, source: Any, options: dict[str, Any],
         on_piece: PieceDone | None) -> LoadInfo:
    if pipeline.has_pending_data:
        _finish_pending(pipeline)
    plan = pieces_of(source)
    if plan is not None:
        plan.checkpoints = True
    while True:
        info: LoadInfo = _with_lock_retries(
            pipeline, lambda: pipeline.run(source, **options), resume=lambda: pipeline.load())
        if plan is None:
            create_views(pipeline)
            return info
        done = plan.finished or plan.time_is_up()
        if done or plan.pieces == 1:
            create_views(pipeline)  # analysts see the first piece of a long load, then all
        if on_piece is not None:
            on_piece(info, plan)
        if done:
            return info
        log.info("committed %s", plan.describe())
        options.pop("refresh", None)  # a full refresh drops the tables before the first piece


def _finish_pending(pipeline: dlt.Pipeline) -> None:
    """Load what an earlier run left pending before extracting anything new. If it fails again
    for a reason other than a lock or a configuration error, it will fail every time: say
    which package, and the way out."""
    pending = recovery.pending_packages(pipeline)
    log.warning("finishing a load package left pending by an earlier run")
    try:
        _with_lock_retries(pipeline, lambda: (pipeline.normalize(), pipeline.load()))
    except PipelineStepFailed as exc:
        if _user_error(exc) is not None or _locked(_root(exc)):
            raise
        raise DestinationError(
            f"the load package(s) {', '.join(pending)} left pending by an earlier run failed to "
            f"load again: {_one_line(_root(exc))}; run 'onepin-etl load --drop-pending' to drop "
            "them (their data is fetched again: their incremental state was never committed)"
        ) from None


def _kind(pipeline: dlt.Pipeline) -> str:
    """``duckdb``, ``ducklake``, ``postgres``, ``filesystem``, …"""
    return str(pipeline.destination.destination_type).rsplit(".", 1)[-1]


def create_views(pipeline: dlt.Pipeline) -> None:
    """The analysis views inside a DuckDB dataset, a DuckLake or PostgreSQL, for analysts' SQL
    (Parquet readers get them from :func:`onepin_etl.analysis.connect`)."""
    kind = _kind(pipeline)
    if kind == "duckdb":
        with pipeline.sql_client() as client:
            persist_views(client.native_connection, pipeline.dataset_name)
    elif kind == "ducklake":
        _retry_lake_conflicts(lambda: _persist_lake_views(pipeline))
    elif kind == "postgres":
        from onepin_etl import postgres_views

        with pipeline.sql_client() as client:
            postgres_views.persist(client, pipeline.dataset_name)


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
    """Run ``action``; if the destination refuses for a moment, wait and try again a few times:
    a DuckDB file's lock (a notebook holds it), or a DuckLake commit that conflicted with
    another loader's (shards). Other failures are final (dlt retries transient job errors
    itself).

    A failed sync (nothing extracted yet) repeats ``action``; a failed load repeats only the
    load of the package already normalized (``resume``).
    """
    try:
        return action()
    except PipelineStepFailed as exc:
        if not _retryable(pipeline, exc):
            raise
        last = exc
    for attempt in range(1, LOCK_RETRIES + 1):
        log.warning("destination not writable (%s); retry %d of %d in %.0f s", _root(last),
                    attempt, LOCK_RETRIES, LOCK_RETRY_WAIT_S)
        time.sleep(LOCK_RETRY_WAIT_S)
        try:
            return (action if last.step == "sync" else resume or pipeline.load)()
        except PipelineStepFailed as exc:
            if not _retryable(pipeline, exc):
                raise
            last = exc
    raise last


# What DuckLake says when two loaders change its catalog at once (shards): the first to commit
# wins, the other tries again and finds the catalog as the winner left it.
_LAKE_CONFLICTS = ("already exists", "conflict", "Failed to commit DuckLake transaction")


def _retryable(pipeline: dlt.Pipeline, exc: PipelineStepFailed) -> bool:
    if exc.step not in _DESTINATION_STEPS or _user_error(exc) is not None:
        return False
    kind = _kind(pipeline)
    return (kind == "duckdb" and _locked(_root(exc))) or \
        (kind == "ducklake" and _lake_conflict(_root(exc)))


def _locked(exc: BaseException) -> bool:
    """DuckDB refused the file because another process holds it (a notebook, the duckdb
    CLI): worth waiting for, unlike a constraint or binder error, which fails every time."""
    return isinstance(exc, duckdb.IOException) and "lock" in str(exc).lower()


def _lake_conflict(exc: BaseException) -> bool:
    return any(text in str(exc) for text in _LAKE_CONFLICTS)


def _persist_lake_views(pipeline: dlt.Pipeline) -> None:
    with pipeline.sql_client() as client:
        persist_views(client.native_connection, pipeline.dataset_name)


def _retry_lake_conflicts(action: Any) -> None:
    """Run ``action``, again after a DuckLake commit conflict (a few times)."""
    for attempt in range(LOCK_RETRIES + 1):
        try:
            action()
            return
        except Exception as exc:  # dlt wraps DuckDB's errors in its own
            if attempt == LOCK_RETRIES or not _lake_conflict(_root(exc)):
                raise
            time.sleep(LOCK_RETRY_WAIT_S)


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


def _translate(exc: PipelineStepFailed, kind: str, location: str | None) -> OnepinError:
    found = _user_error(exc)
    if found is not None:
        return found
    root = _root(exc)
    if exc.step in _DESTINATION_STEPS and kind == "duckdb" and _locked(root):
        return DestinationError(f"could not write to the destination: {_one_line(root)}; "
                                "another program (a notebook, the duckdb CLI) holds the file: "
                                "close it and run the load again: nothing is lost, the pending "
                                "data is loaded first")
    if exc.step in _DESTINATION_STEPS:
        where = location if kind in ("filesystem", "duckdb") and location else kind
        return DestinationError(f"could not write to {where}: {_one_line(root)}; check its "
                                "configuration and that it is reachable, then run the load "
                                "again: nothing is lost, the pending data is loaded first")
    return DestinationError(f"{exc.step} step failed: {_one_line(root)}")


def _one_line(exc: BaseException) -> str:
    """The first line of an error, without passwords (a driver may echo a connection string)."""
    return scrub(first_line(exc))
