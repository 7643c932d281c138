"""Building the dlt pipeline for a destination and running a load safely: the one way to load.

    from onepin_etl import Target, load
    load(Target(duckdb_path="onepin_etl.duckdb"), workflow_ids=["<uuid>"])

What this adds to ``pipeline.run(onepin())``: dlt settings the source needs applied once per
process, DuckDB file names checked before any request, the project's DuckDB destination
(:mod:`onepin_etl.destinations.duckdb`), pending packages finished *before* new data is extracted
(dlt's default would load only the pending package and skip new data), bounded retries of a load
blocked by a DuckDB lock or a DuckLake commit conflict, the analysis views after a load into
DuckDB, a DuckLake or PostgreSQL, and dlt's step errors turned into the application's one-line
errors.
"""

from __future__ import annotations

import functools
import gc
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any

import dlt
from dlt.pipeline.exceptions import PipelineStepFailed

from onepin_etl import lock, recovery
from onepin_etl.destinations import Target, kind_of
from onepin_etl.destinations.config import configure_dlt
from onepin_etl.destinations.scrub import first_line, scrub
from onepin_etl.dlt_internals import LoadInfo
from onepin_etl.errors import DestinationError
from onepin_etl.settings import LOAD_GC_THRESHOLD, LOCK_RETRIES, LOCK_RETRY_WAIT_S
from onepin_etl.views import TABLES
from onepin_source import onepin
from onepin_source.errors import OnepinError
from onepin_source.pieces import Pieces, pieces_of

log = logging.getLogger(__name__)


PieceDone = Callable[[LoadInfo, Pieces], None]


def load(target: Target | None = None, *, full_refresh: bool = False, progress: str | None = None,
         wait_s: float = 0.0, tables: Sequence[str] | None = None,
         drop_pending: bool = False, on_piece: PieceDone | None = None,
         **source_options: Any) -> LoadInfo:
    """Load Onepin into ``target`` (default: ``onepin_etl.duckdb``) incrementally: the one load
    path of the CLI, this package, ``pipelines/`` and Dagster's assets.

    One load per pipeline at a time: if another holds the pipeline's lock, wait up to
    ``wait_s`` seconds, then raise :class:`~onepin_etl.errors.LoadLockedError`. ``tables``
    loads only some of ``workflows``, ``runs`` and ``run_steps`` (a Dagster subset).
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
    if tables is not None:
        source = source.with_resources(*tables)
    if target.kind.append_only:
        # Files cannot merge: every load appends, and readers take each row's latest version
        # (views.latest_sql). Saying so spares dlt's "Falling back to 'append'" warnings.
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
    """The dlt pipeline for ``target``, with the dlt settings the source relies on; made under
    :func:`onepin_etl.lock.creating`, so processes may make it at once."""
    target.check()
    configure_dlt()
    kwargs: dict[str, Any] = {}
    if target.pipelines_dir:
        kwargs["pipelines_dir"] = target.pipelines_dir
    if progress:
        kwargs["progress"] = progress
    destination = target.dlt_destination()
    with lock.creating(target.working_dir, target.name):
        pipeline: dlt.Pipeline = dlt.pipeline(
            pipeline_name=target.name, destination=destination,
            dataset_name=target.dataset, **kwargs)
    return pipeline


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
        with fewer_gc_passes(), _held_open_while_loading(pipeline):
            return _run(pipeline, source, options, on_piece)
    except PipelineStepFailed as exc:
        raise _translate(exc, pipeline, location) from None


def _run(pipeline: dlt.Pipeline, source: Any, options: dict[str, Any],
         on_piece: PieceDone | None) -> LoadInfo:
    if pipeline.has_pending_data:
        _finish_pending(pipeline)
    selected = set(source.selected_resources)
    # Pieces are cut by the runs listing (a workflow is started there): without the runs
    # table (the workflows asset alone), the load is one piece, or it would never finish.
    plan = pieces_of(source) if "runs" in selected else None
    if plan is None:
        info = _run_once(pipeline, source, options)
        if _all_tables(source):
            create_views(pipeline)
        return info
    try:
        return _run_pieces(pipeline, source, plan, options, on_piece)
    finally:
        plan.stop_reading_ahead(drop=True)  # a failed load sends nothing more


def _run_pieces(pipeline: dlt.Pipeline, source: Any, plan: Pieces, options: dict[str, Any],
                on_piece: PieceDone | None) -> LoadInfo:
    plan.checkpoints = True
    # The next piece is read ahead while one is normalized and loaded; not for a subset of the
    # tables (a Dagster asset without run_steps would fetch steps nobody takes).
    reads_ahead = {"runs", "run_steps"} <= set(source.selected_resources)
    with _before(pipeline, "normalize", plan.extracted) if reads_ahead else nullcontext():
        return _each_piece(pipeline, source, plan, options, on_piece)


def _each_piece(pipeline: dlt.Pipeline, source: Any, plan: Pieces, options: dict[str, Any],
                on_piece: PieceDone | None) -> LoadInfo:
    while True:
        info = _run_once(pipeline, source, options)
        done = plan.finished or plan.time_is_up()
        if (done or plan.pieces == 1) and _all_tables(source):
            create_views(pipeline)  # analysts see the first piece of a long load, then all
        if on_piece is not None:
            on_piece(info, plan)
        if done:
            return info
        log.info("committed %s", plan.describe())
        options.pop("refresh", None)  # a full refresh drops the tables before the first piece


def _all_tables(source: Any) -> bool:
    """Whether ``source`` loads every table: the views read all three, so a subset (a Dagster
    asset alone) leaves them to a full load (on a new file they would fail)."""
    return set(TABLES) <= set(source.selected_resources)


def _run_once(pipeline: dlt.Pipeline, source: Any, options: dict[str, Any]) -> LoadInfo:
    """One extract, normalize and load of ``source`` (one piece)."""
    info: LoadInfo = _with_lock_retries(
        pipeline, lambda: pipeline.run(source, **options), resume=lambda: pipeline.load())
    return info


def _finish_pending(pipeline: dlt.Pipeline) -> None:
    """Load what an earlier run left pending before extracting anything new. If it fails again
    for a reason other than a lock or a configuration error, it will fail every time: say
    which package, and the way out."""
    pending = recovery.pending_packages(pipeline)
    log.warning("finishing a load package left pending by an earlier run")
    try:
        _with_lock_retries(pipeline, lambda: (pipeline.normalize(), pipeline.load()))
    except PipelineStepFailed as exc:
        if _user_error(exc) is not None or kind_of(pipeline).retryable(_root(exc)):
            raise
        raise DestinationError(
            f"the load package(s) {', '.join(pending)} left pending by an earlier run failed to "
            f"load again: {_one_line(_root(exc))}; run 'onepin-etl load --drop-pending' to drop "
            "them (their data is fetched again: their incremental state was never committed)"
        ) from None


def create_views(pipeline: dlt.Pipeline) -> None:
    """The analysis views inside the destination, for analysts' SQL, where its kind keeps them
    (DuckDB, a DuckLake, PostgreSQL; Parquet readers get them from
    :func:`onepin_etl.analysis.connect`)."""
    kind_of(pipeline).persist_views(pipeline)


def _held_open_while_loading(pipeline: dlt.Pipeline) -> AbstractContextManager[None]:
    """Every load step of ``pipeline`` (its packages, one a piece) runs with the destination
    held open by its kind (:meth:`~onepin_etl.destinations.base.Kind.held_open`), never while
    data is fetched."""
    return _around(pipeline, "load", lambda: kind_of(pipeline).held_open(pipeline))


def _before(pipeline: dlt.Pipeline, step: str, action: Callable[[], None]
            ) -> AbstractContextManager[None]:
    """Call ``action`` before each ``step`` of ``pipeline`` for the duration."""

    @contextmanager
    def first() -> Iterator[None]:
        action()
        yield

    return _around(pipeline, step, first)


@contextmanager
def _around(pipeline: dlt.Pipeline, step: str,
            context: Callable[[], AbstractContextManager[Any]]) -> Iterator[None]:
    """Run each ``step`` (``"normalize"``, ``"load"``) of ``pipeline`` inside ``context()``
    for the duration. dlt's ``run`` calls ``self.normalize()`` and ``self.load()`` after the
    extract: the instance's method is shadowed, then restored."""
    method = getattr(pipeline, step)

    @functools.wraps(method)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        with context():
            return method(*args, **kwargs)

    setattr(pipeline, step, wrapped)
    try:
        yield
    finally:
        delattr(pipeline, step)


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


def _retryable(pipeline: dlt.Pipeline, exc: PipelineStepFailed) -> bool:
    if exc.step not in _DESTINATION_STEPS or _user_error(exc) is not None:
        return False
    return kind_of(pipeline).retryable(_root(exc))


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


def _translate(exc: PipelineStepFailed, pipeline: dlt.Pipeline,
               location: str | None) -> OnepinError:
    found = _user_error(exc)
    if found is not None:
        return found
    root = _root(exc)
    cause = _one_line(root)
    if exc.step in _DESTINATION_STEPS:
        where = location or pipeline.destination.destination_name
        kind = kind_of(pipeline)
        return kind.write_error(cause, where, retryable=kind.retryable(root))
    return DestinationError(f"{exc.step} step failed: {cause}")


def _one_line(exc: BaseException) -> str:
    """The first line of an error, without passwords (a driver may echo a connection string)."""
    return scrub(first_line(exc))
