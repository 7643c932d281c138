"""Incremental bookkeeping for one workflow's runs (docs/architecture.md, "Incremental loading").

Per workflow the resource state keeps:

- ``mark``: the newest ``created_at`` loaded (ISO string);
- ``open``: ``{run_id: created_at}`` of runs loaded while not completed/failed/cancelled;
- ``recent``: ``{run_id: created_at}`` of finished runs created within ``lookback`` of the mark,
  so re-listing that window (for late arrivals) does not load them again.

The tracker never touches the state until :meth:`RunTracker.commit`, which the resource calls
after it has yielded every run, so the state dlt commits with the load package never runs ahead
of the data in it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta
from typing import Any

from onepin_source.shaping import is_open, parse_ts


class RunTracker:
    def __init__(self, state: dict[str, Any], *, lookback: timedelta,
                 since: datetime | None = None) -> None:
        self._state = state
        self._mark = parse_ts(state.get("mark"))
        self._open: dict[str, str] = dict(state.get("open") or {})
        self._recent: dict[str, str] = dict(state.get("recent") or {})
        self._lookback = lookback
        self.cutoff = self._mark - lookback if self._mark else since
        self._loaded: dict[str, tuple[str, bool]] = {}  # run_id -> (created_at, open)
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

    def stale_open_ids(self) -> list[str]:
        """Runs open at the last load that the listing did not reach: re-read them by id."""
        return [run_id for run_id in self._open if run_id not in self._seen]

    def loaded(self, run: dict[str, Any]) -> None:
        self._loaded[run["id"]] = (run.get("created_at") or "", is_open(run))

    def commit(self) -> None:
        """Write the new mark, open set and recent set into the resource state."""
        created = [parse_ts(c) for c, _ in self._loaded.values()]
        marks = [c for c in created if c is not None] + ([self._mark] if self._mark else [])
        mark = max(marks) if marks else None
        open_runs = {rid: c for rid, (c, still_open) in self._loaded.items() if still_open}
        finished = {rid: c for rid, (c, still_open) in self._loaded.items() if not still_open}
        carried = {rid: c for rid, c in self._recent.items() if rid not in self._loaded}
        window = mark - self._lookback if mark else None
        recent = {rid: c for rid, c in (carried | finished).items()
                  if window is not None and (parse_ts(c) or window) >= window}
        self._state["mark"] = mark.isoformat().replace("+00:00", "Z") if mark else None
        self._state["open"] = open_runs
        self._state["recent"] = recent
