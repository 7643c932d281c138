"""Incremental bookkeeping for one workflow's runs (docs/architecture.md, "Incremental loading").

Per workflow the ``runs`` resource state keeps (:class:`onepin_source.state.WorkflowState`):

- ``mark``: the newest ``created_at`` loaded (ISO string);
- ``open``: ``{run_id: created_at}`` of runs loaded while not completed/failed/cancelled;
- ``rows``: ``{run_id: digest}`` of those open runs' rows as loaded: an open run whose row is
  the same again, and whose steps need no fetch, is not loaded again;
- ``recent``: ``{run_id: created_at}`` of finished runs created within ``lookback`` of the mark,
  so re-listing that window (for late arrivals) does not load them again;
- ``workflow``: what the workflow list said of the workflow at that load (``last_run_at``,
  ``runs_count``, ``run_status_counts``). The same again with no run open proves that no run of
  the workflow was created, deleted or changed since: the workflow needs no request.

Per open run the ``run_steps`` resource state keeps the run's fingerprint (``steps_fingerprint``)
from when its steps were last fetched: they are fetched again only when it differs.

The tracker never touches the state until :meth:`RunTracker.commit`, which the resource calls
after it has yielded every run, so the state dlt commits with the load package never runs ahead
of the data in it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime, timedelta
from typing import Any

from onepin_source.settings import RUN_STATUSES, TERMINAL_RUN_STATUSES
from onepin_source.shaping import is_open, parse_ts
from onepin_source.state import WorkflowState

OPEN_RUN_STATUSES = tuple(s for s in RUN_STATUSES if s not in TERMINAL_RUN_STATUSES)
# Step statuses after which a step changes only together with its run's list item: a running
# step ends (finished_steps moves), a new step appears (total_steps moves). A pending step may
# start with nothing in the run's list item moving, and an unknown status proves nothing.
SETTLED_STEP_STATUSES = frozenset({"completed", "failed", "cancelled", "skipped", "running"})
# Fields of a run's list item that move whenever one of its steps is added or ends.
STEP_FINGERPRINT_FIELDS = ("status", "total_steps", "finished_steps", "finished_nodes",
                           "started_at", "paused_at", "completed_at")


def workflow_fingerprint(row: Mapping[str, Any]) -> list[Any]:
    """What a (flattened) workflow row says about its runs: last_run_at, runs_count, counts."""
    counts = {k: v for k, v in sorted(row.items()) if k.startswith("run_status_counts__")}
    return [_iso(row.get("last_run_at")), row.get("runs_count"), counts]


def row_digest(row: Mapping[str, Any]) -> str:
    """A short digest of a whole row: equal digests, equal rows."""
    text = json.dumps(row, sort_keys=True, default=str)
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


def open_runs_now(fingerprint: list[Any]) -> int | None:
    """Open runs the workflow list counts now (None if it does not say)."""
    counts = fingerprint[2]
    if not counts:
        return None
    return sum(int(counts.get(f"run_status_counts__{s}") or 0) for s in OPEN_RUN_STATUSES)


def steps_fingerprint(run: Mapping[str, Any]) -> str:
    """The fields of a run row that move when its steps do, as one string (the same for an
    Arrow row, whose times are datetimes, and a dict row, whose times are strings)."""
    return json.dumps([_iso(run.get(name)) for name in STEP_FINGERPRINT_FIELDS])


def steps_settled(steps: Iterable[Any]) -> bool:
    """Whether fetching these steps again can only differ once the run's fingerprint does."""
    return all(isinstance(step, dict) and step.get("status") in SETTLED_STEP_STATUSES
               for step in steps)


def _iso(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, str):
        parsed = parse_ts(value)
        return parsed.isoformat() if parsed else value
    return value


class RunTracker:
    def __init__(self, state: WorkflowState, *, lookback: timedelta,
                 since: datetime | None = None) -> None:
        self._state = state
        self._mark = parse_ts(state.mark)
        self._open = state.open_runs
        self._rows = state.open_rows
        self._recent = state.recent
        self._lookback = lookback
        self.cutoff = self._mark - lookback if self._mark else since
        self._loaded: dict[str, tuple[str, bool]] = {}  # run_id -> (created_at, open)
        self._digests: dict[str, str] = {}  # run_id -> row_digest, of the open runs loaded
        self._seen: set[str] = set()
        self.pages_read = 0

    def listed(self, pages: Iterable[list[dict[str, Any]]]) -> Iterator[list[dict[str, Any]]]:
        """Yield, page by page, the runs of a newest-first listing that need loading.

        Stop paging at the first run older than the cutoff: the rest is older still and was
        loaded before (or precedes ``since``).
        """
        for page in pages:
            self.pages_read += 1
            wanted: list[dict[str, Any]] = []
            for run in page:
                created = parse_ts(run.get("created_at"))
                if self.cutoff is not None and created is not None and created < self.cutoff:
                    if wanted:
                        yield wanted
                    return
                self._seen.add(run["id"])
                if run["id"] in self._recent and not is_open(run):
                    continue  # finished and loaded in an earlier load: unchanged
                wanted.append(run)
            if wanted:
                yield wanted

    def done_in_this_pass(self, fingerprint: list[Any]) -> bool:
        """Committed earlier in the pass this load continues, and the workflow list says what it
        said then: nothing new (its open runs are read again by the next pass)."""
        return self._state.done_in_this_pass and self._state.fingerprint == fingerprint

    def unchanged(self, fingerprint: list[Any]) -> bool:
        """Nothing to read: the workflow has no runs at all, or it was read before, nothing of
        it was open, and the workflow list says what it said then."""
        if fingerprint[1] == 0 and not self._open:  # runs_count 0: a draft, nothing to list
            return True
        return not self._open and self._state.fingerprint == fingerprint

    def changed(self, fingerprint: list[Any]) -> bool:
        """The workflow list says something new: a run may have been created (or has ended)."""
        return self._state.fingerprint != fingerprint

    def stale_open_ids(self) -> list[str]:
        """Runs open at the last load that the listing did not reach: re-read them by id."""
        return [run_id for run_id in self._open if run_id not in self._seen]

    def loaded(self, run: dict[str, Any], digest: str | None = None) -> None:
        """Record ``run`` as loaded (``digest``: of its row, :func:`row_digest`)."""
        self._loaded[run["id"]] = (run.get("created_at") or "", is_open(run))
        if digest is not None and is_open(run):
            self._digests[run["id"]] = digest

    def same_as_loaded(self, run_id: str, digest: str) -> bool:
        """The run was open at the last load and its row is exactly the one loaded then."""
        return self._rows.get(run_id) == digest

    def commit(self, fingerprint: list[Any] | None = None) -> None:
        """Write the new mark, open set, recent set and workflow fingerprint into the state."""
        created = [parse_ts(c) for c, _ in self._loaded.values()]
        marks = [c for c in created if c is not None] + ([self._mark] if self._mark else [])
        mark = max(marks) if marks else None
        open_runs = {rid: c for rid, (c, still_open) in self._loaded.items() if still_open}
        finished = {rid: c for rid, (c, still_open) in self._loaded.items() if not still_open}
        carried = {rid: c for rid, c in self._recent.items() if rid not in self._loaded}
        window = mark - self._lookback if mark else None
        recent = {rid: c for rid, c in (carried | finished).items()
                  if window is not None and (parse_ts(c) or window) >= window}
        self._state.write(
            mark=mark.isoformat().replace("+00:00", "Z") if mark else None,
            open_runs=open_runs,
            open_rows={rid: d for rid, d in self._digests.items() if rid in open_runs},
            recent=recent, fingerprint=fingerprint)
