"""Can a load write where it is told to, and what does the pipeline's own record say: the lock's
holder, packages left pending, the last load. Nothing is created or changed: a DuckDB file is
opened (and closed) only if it exists, a folder is tried with a temporary file that is removed."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import dlt
import duckdb

from onepin_etl import lock
from onepin_etl.destinations import Target
from onepin_etl.destinations.probe import Probe, ProbeError
from onepin_etl.dlt_internals import CannotRestorePipelineException
from onepin_source.errors import OnepinError


@dataclass
class DestinationCheck:
    """What the doctor found about the destination; ``problem`` stops a load (exit 5)."""

    reachable: bool | None = None  # None: not checked
    writable: bool | None = None
    detail: str = ""
    lock: lock.Holder | None = None
    pending_packages: list[str] = field(default_factory=list)
    last_load: tuple[str, str] | None = None  # (load id, ISO time)
    problem: str | None = None
    has_data: bool = False  # the file, folder or dataset exists: the last load can be read

    def as_dict(self) -> dict[str, Any]:
        return {"reachable": self.reachable, "writable": self.writable, "detail": self.detail,
                "lock": None if self.lock is None else self.lock.__dict__,
                "pending_packages": self.pending_packages,
                "last_load": None if self.last_load is None else
                {"load_id": self.last_load[0], "at": self.last_load[1]}}


def check(target: Target) -> DestinationCheck:
    """Reachable and writable, then the pipeline's record (which needs no destination)."""
    found = DestinationCheck()
    holders = [lock.read_holder(path) for path in
               lock.lock_paths(target.working_dir, target.name, target.local_files)]
    found.lock = next((h for h in holders if h is not None), None)
    try:
        _found(target.kind.probe(target, busy=found.lock is not None), found)
    except ProbeError as exc:
        _found(exc.found, found)
        found.problem = str(exc)
    except OnepinError as exc:
        found.problem = str(exc)
    found.pending_packages = _pending(target)
    if found.problem is None and found.has_data:
        try:
            with target.open() as (con, _):
                loads = target.completed_loads(con)
        except (OnepinError, duckdb.Error):  # the last load is a courtesy: never a problem
            loads = []
        found.last_load = (loads[0][0], loads[0][1].isoformat()) if loads else None
    return found


def _found(probe: Probe, found: DestinationCheck) -> None:
    """What the destination's kind found (:mod:`onepin_etl.destinations.probe`)."""
    found.reachable, found.writable = probe.reachable, probe.writable
    found.has_data, found.detail = probe.has_data, probe.detail


def _pending(target: Target) -> list[str]:
    """Packages a failed or killed load left behind (the next load finishes them first)."""
    if not (target.working_dir / target.name).is_dir():  # never loaded: attach would create it
        return []
    try:
        pipeline = dlt.attach(pipeline_name=target.name, pipelines_dir=str(target.working_dir))
    except CannotRestorePipelineException:
        return []
    return [*pipeline.list_extracted_load_packages(), *pipeline.list_normalized_load_packages()]
