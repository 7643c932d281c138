"""Which runs of one workflow a load reads, and with as few requests as the API allows.

Per workflow, with change detection on (the default):

1. nothing at all when the workflow list proves nothing changed (:meth:`RunTracker.unchanged`),
   or when the workflow was committed earlier in the pass this load continues (a load killed or
   time-boxed is continued, not begun again: :meth:`RunTracker.done_in_this_pass`) and its list
   item is the same;
2. when the workflow list says something new: the runs listed newest first down to the mark
   minus the lookback (new runs, late arrivals, and the open runs among them);
3. the runs open at the last load that step 2 did not reach: one listing filtered on the open
   statuses when that is cheaper than reading each by id, then by id those that have ended.

Every open run is handed on; ``run_steps`` fetches its steps only if it moved. Without change
detection (``detect_changes=False``, kept to measure against) every workflow is listed and each
open run outside the listing is read by id, as before.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from onepin_source.client import OnepinClient
from onepin_source.errors import OnepinNotFoundError
from onepin_source.incremental import (
    OPEN_RUN_STATUSES,
    RunTracker,
    open_runs_now,
    row_digest,
    steps_fingerprint,
    workflow_fingerprint,
)
from onepin_source.settings import PAGE_SIZE
from onepin_source.shaping import run_row
from onepin_source.state import WorkflowState

log = logging.getLogger(__name__)
Runs = list[dict[str, Any]]


@dataclass(frozen=True)
class ListingOptions:
    lookback: timedelta
    since: datetime | None
    detect_changes: bool = True


def workflow_runs(client: OnepinClient, workflow: dict[str, Any], state: WorkflowState,
                  options: ListingOptions, *, chosen: Sequence[str] = (),
                  listed: bool = True, steps_fetched: Mapping[str, str] | None = None
                  ) -> Iterator[Runs]:
    """Pages of ``runs`` rows (:func:`~onepin_source.shaping.run_row`) of ``workflow`` to load;
    ``state`` (the workflow's marks) is written at the end.

    ``chosen`` runs are read by id on every load; ``listed`` says whether the workflow's runs
    are listed at all (a workflow named only for some of its runs is not). ``steps_fetched``
    is the ``run_steps`` state's fingerprints of runs whose steps need no fetch while their
    fingerprint stays: an open run read again whose item is what was loaded last time and
    whose steps need no fetch is not handed on (its row would be the same).
    """
    fetched = steps_fetched if options.detect_changes else None
    workflow_id = workflow["id"]
    seen: set[str] = set()  # each run once per load (offset paging shifts as runs arrive)
    chosen_runs = [client.run(workflow_id, run_id) for run_id in dict.fromkeys(chosen)]
    if chosen_runs:
        yield [run_row(run, workflow_id) for run in _unseen(chosen_runs, seen)]
    if not listed:
        return
    tracker = RunTracker(state, lookback=options.lookback, since=options.since)
    fingerprint = workflow_fingerprint(workflow)
    if options.detect_changes and tracker.done_in_this_pass(fingerprint):
        return  # its marks stay as committed (open runs included)
    if options.detect_changes and tracker.unchanged(fingerprint):
        tracker.commit(fingerprint)
        return
    if not options.detect_changes or tracker.changed(fingerprint):
        for page in tracker.listed(client.runs_newest_first(workflow_id)):
            if fresh := _to_load(tracker, workflow_id, _unseen(page, seen), fetched):
                yield fresh
    reread = _open_runs(client, workflow_id, tracker.stale_open_ids(),
                        open_runs_now(fingerprint) if options.detect_changes else None)
    if fresh_reread := _to_load(tracker, workflow_id, _unseen(reread, seen), fetched):
        yield fresh_reread
    tracker.commit(fingerprint)


def _to_load(tracker: RunTracker, workflow_id: str, runs: Runs,
             steps_fetched: Mapping[str, str] | None) -> Runs:
    """Record ``runs`` as loaded; the rows to hand on. Not handed on: an open run whose row is
    the one loaded last time and whose steps need no fetch (``steps_fetched`` says so)."""
    wanted = []
    for run in runs:
        row = run_row(run, workflow_id)
        digest = row_digest(row)
        if not (steps_fetched is not None and tracker.same_as_loaded(run["id"], digest)
                and steps_fetched.get(run["id"]) == steps_fingerprint(run)):
            wanted.append(row)
        tracker.loaded(run, digest)
    return wanted


def _open_runs(client: OnepinClient, workflow_id: str, stale: list[str],
               open_now: int | None) -> Runs:
    """The runs ``stale`` (open at the last load, not listed this time) as the API shows them.

    One listing of the open runs costs ``ceil(open_now / 100)`` requests; reading by id, one per
    run. The listing is used when it is cheaper; runs it does not return have ended (or were
    deleted) and are read by id.
    """
    if not stale:
        return []
    still_open: dict[str, dict[str, Any]] = {}
    if open_now and math.ceil(open_now / PAGE_SIZE) < len(stale):
        wanted = set(stale)
        for page in client.runs_with_status(workflow_id, OPEN_RUN_STATUSES):
            still_open.update((run["id"], run) for run in page if run["id"] in wanted)
    runs = []
    for run_id in stale:
        run = still_open.get(run_id) or _read(client, workflow_id, run_id)
        if run is not None:
            runs.append(run)
    return runs


def _read(client: OnepinClient, workflow_id: str, run_id: str) -> dict[str, Any] | None:
    try:
        return client.run(workflow_id, run_id)
    except OnepinNotFoundError:
        log.warning("run %s of workflow %s was open at the last load and is gone (404); it is "
                    "no longer tracked", run_id, workflow_id)
        return None


def _unseen(runs: Runs, seen: set[str]) -> Runs:
    fresh = []
    for run in runs:
        if run["id"] not in seen:
            seen.add(run["id"])
            fresh.append(run)
    return fresh
