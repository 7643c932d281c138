"""``onepin-etl status``: a pipeline's load history at a glance, from dlt's own records.

Nothing here is bookkeeping of ours: completed loads come from the destination's ``_dlt_loads``,
the last run's timing, outcome and row counts from dlt's trace in the working folder, open runs
and the last checkpoint of a load in pieces from the source's incremental state
(:func:`onepin_source.state.summary`), pending packages
from dlt's package storage, and the lock from the lock file (:mod:`onepin_etl.lock`). Reading
takes no lock.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import dlt

from onepin_etl import analysis, lock, recovery
from onepin_etl.destinations import Target
from onepin_etl.dlt_internals import CannotRestorePipelineException
from onepin_etl.utc import as_utc
from onepin_source.errors import ConfigError
from onepin_source.state import summary


@dataclass(frozen=True)
class LastRun:
    """dlt's trace of the pipeline's last run (successful or not)."""

    started_at: datetime
    finished_at: datetime | None
    failed_step: str | None
    error: str | None  # the failure on one line (cut at 300 characters), if the run failed
    load_ids: list[str]
    row_counts: dict[str, int]

    @property
    def seconds(self) -> float | None:
        if self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()


@dataclass(frozen=True)
class PipelineStatus:
    pipeline: str
    location: str
    loads: int  # completed loads recorded in the destination
    last_load_id: str | None
    last_load_at: datetime | None
    last_run: LastRun | None
    newest_run_at: datetime | None
    open_runs: int
    workflows_tracked: int
    checkpoint: dict[str, Any] | None  # the last piece extracted: piece, workflows/runs left, pass
    pending_packages: list[str]
    lock_holder: lock.Holder | None

    @property
    def last_load_rows(self) -> dict[str, int] | None:
        """Rows per table of the last completed load, when the trace recorded it."""
        if self.last_run and self.last_load_id in self.last_run.load_ids:
            return {t: n for t, n in self.last_run.row_counts.items() if not t.startswith("_")}
        return None

    def as_dict(self) -> dict[str, Any]:
        run = self.last_run
        return {
            "pipeline": self.pipeline, "destination": self.location, "loads": self.loads,
            "last_load_id": self.last_load_id, "last_load_at": _iso(self.last_load_at),
            "last_load_rows": self.last_load_rows,
            "last_run": None if run is None else {
                "started_at": _iso(run.started_at), "finished_at": _iso(run.finished_at),
                "seconds": run.seconds, "failed_step": run.failed_step, "error": run.error,
                "load_ids": run.load_ids},
            "newest_run_at": _iso(self.newest_run_at), "open_runs": self.open_runs,
            "workflows_tracked": self.workflows_tracked, "checkpoint": self.checkpoint,
            "pending_packages": self.pending_packages,
            "lock": None if self.lock_holder is None else self.lock_holder.__dict__,
        }


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def collect(target: Target) -> PipelineStatus:
    """Everything ``status`` shows for ``target``'s pipeline."""
    try:
        pipeline = dlt.attach(pipeline_name=target.name, pipelines_dir=str(target.working_dir))
    except CannotRestorePipelineException:
        raise ConfigError(f"no pipeline {target.name!r} in {target.working_dir}: nothing has "
                          "been loaded with it yet (or pass --pipeline-name / --pipelines-dir; "
                          "Target.pipeline_name / pipelines_dir in Python)") from None
    state = summary(pipeline.state)
    loads, newest_run_at = _from_destination(target)
    holders = [lock.read_holder(p) for p in lock.lock_paths(target.working_dir, target.name,
                                                           target.local_files)]
    return PipelineStatus(
        pipeline=target.name, location=target.location, loads=len(loads),
        last_load_id=loads[0][0] if loads else None,
        last_load_at=loads[0][1] if loads else None,
        last_run=_last_run(pipeline), newest_run_at=newest_run_at,
        open_runs=state.open_runs, workflows_tracked=state.workflows_tracked,
        checkpoint=state.checkpoint, pending_packages=recovery.pending_packages(pipeline),
        lock_holder=next((h for h in holders if h is not None), None))


def _last_run(pipeline: dlt.Pipeline) -> LastRun | None:
    trace = pipeline.last_trace
    if trace is None:
        return None
    failed = next((s for s in trace.steps if s.step_exception), None)
    error = " ".join(str(failed.step_exception).split())[:300] if failed else None
    load_info = trace.last_load_info
    normalized = trace.last_normalize_info
    return LastRun(trace.started_at, trace.finished_at, failed.step if failed else None, error,
                   list(load_info.loads_ids) if load_info else [],
                   dict(normalized.row_counts) if normalized else {})


def _from_destination(target: Target) -> tuple[list[tuple[str, datetime]], datetime | None]:
    """The completed loads and the newest run loaded, through one connection."""
    try:
        with analysis.connect(target) as con:
            (newest,), = con.execute("select max(created_at) from runs").fetchall()
            return target.completed_loads(con), \
                as_utc(newest) if isinstance(newest, datetime) else None
    except analysis.NoDataError:
        return [], None

