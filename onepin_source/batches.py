"""Batches between the API and dlt: steps fetched concurrently, rows shaped as dlt items."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, NamedTuple, TypeVar

import pyarrow as pa

from onepin_source.arrow_rows import ArrowRows
from onepin_source.checks import ProblemTally, step_problems
from onepin_source.client import OnepinClient
from onepin_source.dlt_internals import HINT_OVERRIDE_WARNING, DataItemWithMeta
from onepin_source.errors import ConfigError
from onepin_source.hints import RUN_HINTS, STEP_HINTS
from onepin_source.incremental import STEP_FINGERPRINT_FIELDS, steps_fingerprint, steps_settled
from onepin_source.settings import ROW_FORMATS
from onepin_source.shaping import is_open, step_row
from onepin_source.state import LoadState

log = logging.getLogger(__name__)
T = TypeVar("T")


class RowBatches:
    """Turns a batch of flat rows into one dlt item: an Arrow table, or the list of dicts."""

    def __init__(self, row_format: str) -> None:
        if row_format not in ROW_FORMATS:
            raise ConfigError(f"row_format must be one of {', '.join(ROW_FORMATS)}, "
                              f"not {row_format!r}")
        self.arrow = row_format == "arrow"
        if self.arrow:
            _JsonHintFilter.install()
        self._runs = ArrowRows("runs", RUN_HINTS)
        self._steps = ArrowRows("run_steps", STEP_HINTS)

    def runs(self, rows: list[dict[str, Any]]) -> Any:
        return self._runs.table(rows) if self.arrow else rows

    def steps(self, rows: list[dict[str, Any]]) -> Any:
        return self._steps.table(rows) if self.arrow else rows


class _JsonHintFilter(logging.Filter):
    """Drops dlt's "several column hints were different" warning for ``run_steps`` only.

    Arrow has no JSON type, so JSON columns (``active_ports``, ``locales``, lists in
    ``result``) travel as Arrow strings while the hints say ``json``, as they must for the
    tables to equal the dict rows' (dlt keeps the hint, the destination parses the strings).
    dlt warns about that difference on every batch. Every other hint agrees with Arrow's
    (``id`` is not nullable in both), so ``runs`` and other sources still warn if theirs
    differ.
    """

    _installed = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not (HINT_OVERRIDE_WARNING in message
                    and message.startswith("In resource: run_steps,"))

    @classmethod
    def install(cls) -> None:
        with cls._installed:
            dlt_log = logging.getLogger("dlt")
            if not any(isinstance(f, cls) for f in dlt_log.filters):
                dlt_log.addFilter(cls())


def regroup(pages: Iterable[list[T]], size: int) -> Iterator[list[T]]:
    """The items of ``pages`` in lists of at least ``size`` (the last one may be shorter)."""
    batch: list[T] = []
    for page in pages:
        batch.extend(page)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


class RunRef(NamedTuple):
    """A run handed from ``runs`` to ``run_steps``: where it is and what its steps look like."""

    workflow_id: str
    run_id: str
    fingerprint: str  # incremental.steps_fingerprint
    open: bool


def run_refs(item: Any) -> list[RunRef]:
    """The runs of a batch from the ``runs`` resource (an Arrow table, dict rows or one row)."""
    if isinstance(item, DataItemWithMeta):
        item = item.data
    if isinstance(item, pa.Table):
        names = ("workflow_id", "id", "status", *STEP_FINGERPRINT_FIELDS)
        columns = {name: item.column(name).to_pylist() if name in item.column_names
                   else [None] * item.num_rows for name in dict.fromkeys(names)}
        rows: list[dict[str, Any]] = [dict(zip(columns, values, strict=True))
                                      for values in zip(*columns.values(), strict=True)]
    else:
        rows = item if isinstance(item, list) else [item]
    return [RunRef(row["workflow_id"], row["id"], steps_fingerprint(row), is_open(row))
            for row in rows]


def moved(refs: list[RunRef], steps_fetched: Mapping[str, str]) -> list[RunRef]:
    """The runs whose steps may differ from those loaded: not settled at their fingerprint."""
    return [ref for ref in refs if steps_fetched.get(ref.run_id) != ref.fingerprint]


class StepsState:
    """Which runs' steps to fetch: the load state remembers, per open run, its fingerprint when
    its steps were last fetched and settled (``incremental``).

    ``run_steps`` runs in several threads at once; a lock guards the shared state.
    """

    def __init__(self, detect_changes: bool, state: LoadState) -> None:
        self._detect_changes = detect_changes
        self._state = state
        self._lock = threading.Lock()

    def to_fetch(self, refs: list[RunRef]) -> list[RunRef]:
        """The runs whose steps may differ from those loaded."""
        if not self._detect_changes:
            return refs
        with self._lock:
            return moved(refs, self._state.steps_fetched)

    def fetched(self, refs: list[RunRef], steps: list[list[Any]]) -> None:
        """Remember the open runs whose fetched steps can only change with their fingerprint."""
        with self._lock:
            for ref, run_steps in zip(refs, steps, strict=True):
                settled = ref.open and steps_settled(run_steps)
                self._state.steps_settled(ref.run_id, ref.fingerprint if settled else None)


def step_rows(fetched: Iterable[tuple[str, str, list[Any]]]) -> list[dict[str, Any]]:
    """Rows of the steps of a batch of runs, ``(workflow_id, run_id, steps)`` each; one warning
    for the steps that break the documented shape (they are kept as sent)."""
    rows: list[dict[str, Any]] = []
    tally = ProblemTally()
    for workflow_id, run_id, steps in fetched:
        for position, step in enumerate(steps):
            row = step_row(step, workflow_id, run_id, position)
            tally.add(step_problems(step, times_parsed=row["duration_ms"] is not None))
            rows.append(row)
    if tally.steps:
        log.warning(tally.summary())
    return rows


class StepsFetcher:
    """Fetches the steps of many runs concurrently, through the client's request limiter.

    Each batch gets a pool of worker threads, closed when the batch is done. It has more threads
    than requests may be in flight, so requests waiting out a ``Retry-After`` do not hold up the
    others. Results come back in the order of the runs asked for: a batch's rows keep a stable
    order whatever the timing.
    """

    def __init__(self, client: OnepinClient, *, concurrency: int, include_result: bool) -> None:
        self._client = client
        self._include_result = include_result
        self._threads = min(4 * concurrency, 128)

    def steps_of(self, keys: Sequence[tuple[str, str]]
                 ) -> Iterator[tuple[str, str, list[dict[str, Any]]]]:
        if not keys:
            return
        with ThreadPoolExecutor(max_workers=min(self._threads, len(keys)),
                                thread_name_prefix="onepin-steps") as pool:
            futures = [pool.submit(self._client.run_steps, workflow_id, run_id,
                                   include_result=self._include_result)
                       for workflow_id, run_id in keys]
            try:
                for (workflow_id, run_id), future in zip(keys, futures, strict=True):
                    yield workflow_id, run_id, future.result()
            finally:
                for future in futures:
                    future.cancel()
