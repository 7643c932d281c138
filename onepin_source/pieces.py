"""A long load committed in pieces, and a time box: which workflows the next extract takes.

dlt commits the incremental state only with a load package. One package for a whole first load
means a load killed in its 99th minute loses 99 minutes. So a load runs the source several times
(``onepin_etl.pipeline.run_load``), one *piece* per extract: each piece is a set of workflows
processed completely (listing, every run, every run's steps), committed as one package with its
state. A killed load loses at most the piece in flight; the next load continues its *pass*
(:meth:`state.LoadState.pass_id`): it skips the workflows committed in it whose list item is
unchanged, open runs included (:meth:`incremental.RunTracker.done_in_this_pass`); the pass after
reads those open runs again, as every pass does.

The workflow list is read once per load; each piece takes the next workflows in list order until
their estimated runs reach its budget (a load of at most
:data:`~onepin_source.settings.ONE_PIECE_RUNS` is one piece, unless it has a time box):
:data:`~onepin_source.settings.FIRST_PIECE_RUNS` for the first piece (analysts see data within
seconds; the rate is measured on it), then what the rate measured so far (if any) fetches in
:data:`~onepin_source.settings.PIECE_SECONDS`, at most
:data:`~onepin_source.settings.PIECE_RUNS` and :data:`~onepin_source.settings.PIECE_SHARE` of
the load (so a kill loses a small share of any load), and no more than fits in what is left of
the load's time box (``max_duration``). A piece also stops starting workflows after
``PIECE_SECONDS``, and once the time box is up; workflows not started go back to the front of the
queue. A workflow is the unit: its runs' steps are fetched after its listing, so a piece ends
when its last workflow's steps are in, and every load processes at least one workflow with new
runs (so time-boxed loads converge).

A plain ``pipeline.run(onepin())`` is one piece: the whole load (``checkpoints`` stays off).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

from onepin_source.incremental import workflow_fingerprint
from onepin_source.readahead import ReadAhead
from onepin_source.settings import (
    FIRST_PIECE_RUNS,
    ONE_PIECE_RUNS,
    PAGE_SIZE,
    PIECE_MIN_RUNS,
    PIECE_RUNS,
    PIECE_SECONDS,
    PIECE_SHARE,
)
from onepin_source.state import WorkflowState

Workflow = dict[str, Any]
log = logging.getLogger(__name__)


class Pieces:
    """The plan of one load: the workflow list, what is left, when the current piece ends."""

    def __init__(self, max_duration_s: float | None = None, *, limiter: Any = None,
                 read_ahead: ReadAhead | None = None,
                 fetch_ahead: Callable[[list[Workflow]], None] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        """``read_ahead``: the client's store of answers fetched ahead, which ``fetch_ahead``
        (the source's) fills with a piece's requests (:mod:`onepin_source.readahead`)."""
        self.checkpoints = False  # set by the caller that runs the source until finished
        self._limiter = limiter  # the client's: what it learned of the quota, if it says
        self._read_ahead = read_ahead
        self._fetch_ahead = fetch_ahead
        self._clock = clock
        self.began = clock()
        self._deadline = None if max_duration_s is None else self.began + max_duration_s
        self._queue: deque[Workflow] | None = None  # not yet given to a piece, in list order
        self._piece: list[Workflow] = []
        self._started: set[str] = set()
        self._reserved: int | None = None  # how many workflows the next piece takes
        self._piece_began = self.began
        self._costs: dict[str, int] = {}  # workflow id -> estimated runs to load
        self._fresh: set[str] = set()  # workflows with runs never loaded (estimated)
        self._progressed = False  # a fresh workflow was started by this load
        self._lock = threading.Lock()
        self.pieces = 0
        self.runs_total = 0  # estimated runs of the whole load
        self.steps_requests = 0  # steps requests made (one per run whose steps are fetched)

    # ---- called by the source, inside an extract ----------------------------------------------
    def next_piece(self, list_workflows: Callable[[], list[Workflow]],
                   recorded: Callable[[str], WorkflowState]) -> list[Workflow]:
        """The workflows of the next piece (none once the time is up or nothing is left): those
        :meth:`reserve_next` reserved, if it did.

        ``recorded`` gives a workflow's marks from the last load, for the estimate.
        """
        with self._lock:
            reserved, self._reserved = self._reserved, None
            if self._queue is None:
                self._queue = deque(list_workflows())
                self._costs = {w["id"]: estimated_runs(w, recorded(w["id"])) for w in self._queue}
                self._fresh = {w["id"] for w in self._queue
                               if estimated_runs(w, recorded(w["id"]), fresh=True)}
                self.runs_total = sum(self._costs.values())
            elif not_started := self._not_started():
                self._queue.extendleft(reversed(not_started))
                reserved = None
            self._piece, self._started = [], set()
            if self.time_is_up() and self.pieces:  # the first piece makes progress anyway
                return []
            count = self._count(self._budget() if self.checkpoints else None) \
                if reserved is None else reserved
            self._piece = [self._queue.popleft() for _ in range(count)]
            self._piece_began = self._clock()
            self.pieces += 1
            return list(self._piece)

    def extracted(self) -> None:
        """The piece's package is extracted, its state saved: the next piece is read ahead
        while this one is normalized and loaded. Not sooner: a kill then loses one piece's
        answers at most (the piece in flight, or the one read ahead during a commit). Reading
        ahead only saves time: if it cannot start, the load goes on without it."""
        if self._fetch_ahead is None:
            return
        workflows = self.reserve_next()
        if not workflows:
            self.stop_reading_ahead(drop=True)  # what is left would only go stale
            return
        try:
            self._fetch_ahead(workflows)
        except Exception as exc:  # noqa: BLE001 - the next extract fetches it all
            log.warning("could not read the next piece ahead (%s); it is fetched as usual", exc)

    def reserve_next(self) -> list[Workflow]:
        """The workflows the next piece will take, chosen now that this one is extracted: for
        the source to read them ahead while this one is committed
        (:mod:`onepin_source.readahead`). None (``[]``) when this piece left workflows
        unstarted, the time is up, or nothing is left."""
        with self._lock:
            if not self.checkpoints or not self._queue or self._not_started() \
                    or self.time_is_up():
                return []
            count = self._count(self._budget())
            self._reserved = count
            return [self._queue[i] for i in range(count)]

    def _count(self, budget: int | None) -> int:
        """How many workflows from the front of the queue a piece of ``budget`` runs takes
        (at least one; all with no budget)."""
        assert self._queue is not None
        count = taken = 0
        for workflow in self._queue:
            if budget is not None and count and taken >= budget:
                break
            count += 1
            taken += self._costs.get(workflow["id"], 0)
        return count

    def _budget(self) -> int | None:
        """Estimated runs the next piece may take (None: all that is left)."""
        if self.runs_total <= ONE_PIECE_RUNS and self._deadline is None:
            return None  # a small load is one piece (unless time-boxed): all that is left
        share = max(PIECE_MIN_RUNS, PIECE_SHARE * self.runs_total)
        if self.pieces == 0:
            return int(min(FIRST_PIECE_RUNS, share))
        budget = min(PIECE_RUNS, share)
        rate = self.steps_requests / max(self.elapsed_s(), 1e-3)  # with the packages' time
        if rate > 0:  # none yet (only open runs re-read, unchanged): no rate to go by
            budget = min(budget, rate * PIECE_SECONDS)
            if self._deadline is not None:
                budget = min(budget, rate * (self._deadline - self._clock()))
        return max(1, int(budget))

    def may_start(self, workflow_id: str) -> bool:
        """Whether a workflow of the current piece may start now; records it as started.
        Workflows start regardless until one with new runs has, so that every load makes
        progress (re-reading the open runs of committed workflows is none)."""
        with self._lock:
            piece_over = (self.checkpoints and self._started
                          and self._clock() - self._piece_began >= PIECE_SECONDS)
            if self._progressed and (piece_over or self.time_is_up()):
                return False
            self._started.add(workflow_id)
            self._progressed = self._progressed or workflow_id in self._fresh
            return True

    def fetched_steps(self, requests: int) -> None:
        with self._lock:
            self.steps_requests += requests

    def stop_reading_ahead(self, *, drop: bool = False) -> None:
        """Send nothing more ahead: the next extract has begun, or (``drop``: and forget the
        answers) the load has ended."""
        if self._read_ahead is not None:
            self._read_ahead.stop(drop=drop)

    # ---- read by the caller between pieces -----------------------------------------------------
    def time_is_up(self) -> bool:
        return self._deadline is not None and self._clock() >= self._deadline

    @property
    def finished(self) -> bool:
        """Every workflow was processed (after an extract)."""
        return self._queue is not None and not self._queue and not self._not_started()

    def left(self) -> tuple[int, int]:
        """``(workflows, estimated runs)`` not processed yet."""
        with self._lock:
            rest = [*(self._queue or ()), *self._not_started()]
            return len(rest), sum(self._costs.get(w["id"], 0) for w in rest)

    def elapsed_s(self) -> float:
        return self._clock() - self.began

    def describe(self) -> str:
        """Progress on one line: requests done and left, the rate, an ETA, the quota."""
        workflows_left, runs_left = self.left()
        done, elapsed = self.steps_requests, max(self.elapsed_s(), 1e-3)
        todo = estimated_requests(runs_left)
        rate = done / elapsed
        eta = ("none left" if not todo else f"ETA {_duration(todo / rate)}" if rate > 0
               else "ETA unknown")
        line = (f"piece {self.pieces}: {done:,} steps requests done in {_duration(elapsed)} "
                f"({rate:.1f}/s); ~{todo:,} requests left for {workflows_left:,} workflows "
                f"(~{runs_left:,} runs), {eta}")
        describe = getattr(self._limiter, "describe", None)
        quota = describe() if callable(describe) else None
        return f"{line}; {quota}" if quota else line

    def _not_started(self) -> list[Workflow]:
        return [w for w in self._piece if w["id"] not in self._started]


def estimated_runs(workflow: Mapping[str, Any], state: WorkflowState, *,
                   fresh: bool = False) -> int:
    """Runs a load of ``workflow`` will hand on, from its list item and its state: all of them
    the first time, the new ones plus those open at the last load after that, none when the
    list says what it said last time and nothing was open (or the workflow was committed
    earlier in the pass this load continues). ``fresh``: the new ones only."""
    fingerprint = workflow_fingerprint(workflow)
    runs_count = int(workflow.get("runs_count") or 0)
    before = state.fingerprint
    open_runs = 0 if fresh or state.done_in_this_pass else len(state.open_runs)
    if before is None:
        return runs_count
    if before == fingerprint and not open_runs:
        return 0
    return max(0, runs_count - int(before[1] or 0)) + open_runs


def estimated_requests(runs: int) -> int:
    """Requests that loading ``runs`` runs costs: one steps request each, one page per 100."""
    return runs + -(-runs // PAGE_SIZE)


def _duration(seconds: float) -> str:
    seconds = round(seconds)
    if seconds < 120:
        return f"{seconds} s"
    return f"{seconds // 60} min" if seconds < 7200 else f"{seconds / 3600:.1f} h"


def pieces_of(source: Any) -> Pieces | None:
    """The plan of a source built by :func:`onepin_source.onepin` (None for another source)."""
    resources = getattr(source, "resources", {})
    runs = resources.get("runs") if hasattr(resources, "get") else None
    plan = getattr(runs, "pieces", None)
    return plan if isinstance(plan, Pieces) else None
