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
their new runs (estimated from the list item and the marks: runs never loaded) reach its budget.
Workflows with no new runs cost nothing there: re-reading the runs that were open costs a
listing a workflow, and whether their steps moved is only known then, so a re-load that found
little new is one piece however many workflows it re-reads (a piece still stops starting
workflows after ``PIECE_SECONDS``). A load of at most
:data:`~onepin_source.settings.ONE_PIECE_RUNS` new runs is one piece, unless it has a time box;
otherwise:
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

from onepin_source.incremental import open_runs_now, workflow_fingerprint
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
        self._costs: dict[str, int] = {}  # workflow id -> estimated new runs (the budget's unit)
        self._runs: dict[str, int] = {}  # workflow id -> estimated runs to load, open ones too
        self._requests: dict[str, tuple[int, int]] = {}  # workflow id -> estimated_requests()
        self._progressed = False  # a fresh workflow was started by this load
        self._lock = threading.Lock()
        self.pieces = 0
        self.runs_total = 0  # estimated new runs of the whole load
        # When the second piece began, and the requests done by then: the ETA's rate is taken
        # from there (the first piece, small, is mostly the load's fixed costs)
        self._rate_from: tuple[float, int] | None = None
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
                for workflow in self._queue:
                    marks = recorded(workflow["id"])
                    self._costs[workflow["id"]] = estimated_runs(workflow, marks, fresh=True)
                    self._runs[workflow["id"]] = estimated_runs(workflow, marks)
                    self._requests[workflow["id"]] = estimated_requests(workflow, marks)
                self.runs_total = sum(self._costs.values())
                # No new runs anywhere: nothing to make progress on but the open runs, so the
                # piece's minute and the time box hold from the first workflow on
                self._progressed = not self.runs_total
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
            if self.pieces == 1:
                self._rate_from = (self._piece_began, self.requests_done())
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
            self._progressed = self._progressed or self._costs.get(workflow_id, 0) > 0
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
        """``(workflows, estimated runs)`` not processed yet (runs open at the last load
        included: they are read again)."""
        with self._lock:
            rest = self._rest()
            return len(rest), sum(self._runs.get(w["id"], 0) for w in rest)

    def _rest(self) -> list[Workflow]:
        return [*(self._queue or ()), *self._not_started()]

    def elapsed_s(self) -> float:
        return self._clock() - self.began

    def requests_done(self) -> int:
        """Requests sent so far (the limiter's count, retries and reading ahead included)."""
        sent = getattr(self._limiter, "sent", None)
        return sent if isinstance(sent, int) else self.steps_requests

    def describe(self) -> str:
        """Progress on one line: requests done and left, the rate, an ETA, the quota."""
        with self._lock:
            rest = self._rest()
            sure = sum(self._requests.get(w["id"], (0, 0))[0] for w in rest)
            maybe = sum(self._requests.get(w["id"], (0, 0))[1] for w in rest)
            runs_left = sum(self._runs.get(w["id"], 0) for w in rest)
        done, elapsed = self.requests_done(), max(self.elapsed_s(), 1e-3)
        rate = done / elapsed
        line = (f"piece {self.pieces}: {done:,} requests done in {_duration(elapsed)} "
                f"({rate:.1f}/s); ~{_requests_left(sure, maybe)} requests left for "
                f"{len(rest):,} workflows (~{runs_left:,} runs), "
                f"{_eta(sure, maybe, self._eta_rate())}")
        describe = getattr(self._limiter, "describe", None)
        quota = describe() if callable(describe) else None
        return f"{line}; {quota}" if quota else line

    def _eta_rate(self) -> float:
        """Requests a second since the second piece began (0: not measured yet)."""
        if self._rate_from is None:
            return 0.0
        began, done = self._rate_from
        return (self.requests_done() - done) / max(self._clock() - began, 1e-3)

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


def estimated_requests(workflow: Mapping[str, Any], state: WorkflowState) -> tuple[int, int]:
    """Requests a load of ``workflow`` makes, as ``(sure, maybe)``: *sure* are the listing
    pages and the steps of its new runs; *maybe* the steps of the runs open at the last load
    (fetched only for those that moved; one ended is also read by id)."""
    fingerprint = workflow_fingerprint(workflow)
    before = state.fingerprint
    new = estimated_runs(workflow, state, fresh=True)
    if before is None:
        return new + _pages(new), 0
    open_runs = 0 if state.done_in_this_pass else len(state.open_runs)
    if before == fingerprint and not open_runs:
        return 0, 0
    listing = _pages(new) if before != fingerprint else 0
    reread = min(open_runs, _pages(open_runs_now(fingerprint) or open_runs)) if open_runs else 0
    return listing + reread + new, open_runs


def _pages(items: int) -> int:
    """Pages a listing of ``items`` takes (one, even when empty)."""
    return max(1, -(-items // PAGE_SIZE))


def _requests_left(sure: int, maybe: int) -> str:
    return f"{sure:,}" if not maybe else f"{sure:,}-{sure + maybe:,}"


def _eta(sure: int, maybe: int, rate: float) -> str:
    """When the load should end at ``rate`` requests a second: a time when the requests left
    are known to within 2x (the middle of the range is then within 2x of any count in it),
    else "unknown" with the range."""
    if not sure + maybe:
        return "none left"
    if rate <= 0:
        return "ETA unknown"
    low, high = sure / rate, (sure + maybe) / rate
    if high > 2 * low:
        return f"ETA unknown ({_duration(low)} to {_duration(high)})"
    return f"ETA {_duration((low + high) / 2)}"


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
