"""Can a load write where it is told to, and what does the pipeline's own record say: the lock's
holder, packages left pending, the last load. Nothing is created or changed: a DuckDB file is
opened (and closed) only if it exists, a folder is tried with a temporary file that is removed."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dlt
import duckdb
from dlt.common.schema import Schema
from dlt.pipeline.exceptions import CannotRestorePipelineException

from onepin_etl import lock, remote, status
from onepin_etl.destinations import Target
from onepin_etl.errors import DestinationError
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
        _writable(target, found)
    except OnepinError as exc:
        found.problem = str(exc)
    found.pending_packages = _pending(target)
    if found.problem is None and found.has_data:
        try:
            loads = status.completed_loads(target)
        except (OnepinError, duckdb.Error):  # the last load is a courtesy: never a problem
            loads = []
        found.last_load = (loads[0][0], loads[0][1].isoformat()) if loads else None
    return found


def _writable(target: Target, found: DestinationCheck) -> None:
    files = target.local_files
    if target.destination == "duckdb" and files is not None:
        _duckdb(files, found)
    elif files is not None:
        _folder(files, found)
    elif target.destination in (*remote.SHARED_DESTINATIONS, "parquet"):
        _remote(target, found)
    else:
        found.detail = ("not checked: doctor checks duckdb, parquet, ducklake and postgres; "
                        "the first load will tell")


def _folder(path: Path, found: DestinationCheck) -> None:
    """A folder a load may create: its nearest existing ancestor must take a new file."""
    existing = next(p for p in (path.absolute(), *path.absolute().parents) if p.exists())
    if not existing.is_dir():
        raise DestinationError(f"{existing} is not a folder; choose another location")
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as exc:
        raise DestinationError(f"cannot write in {existing}: {exc.strerror}; fix its "
                               "permissions or choose another location") from None
    found.reachable = found.writable = True
    found.has_data = path.exists()
    found.detail = f"{path} exists" if found.has_data else \
        f"{path} does not exist yet; the first load creates it in {existing}"


def _duckdb(path: Path, found: DestinationCheck) -> None:
    """The folder takes new files, and an existing file opens for writing: no other program
    (a notebook, the duckdb CLI) holds it, and it is a DuckDB database."""
    _folder(path.absolute().parent, found)
    found.has_data = path.exists() and found.lock is None  # a running load holds the file
    if not path.exists():
        found.detail = f"{path} does not exist yet; the first load creates it"
        return
    if found.lock is not None:
        found.detail = f"{path} is being loaded now; not opened"
        return
    try:
        duckdb.connect(str(path)).close()
    except duckdb.Error as exc:
        found.writable = False
        raise DestinationError(f"cannot open {path} for writing: {remote.first_line(exc)}; if "
                               "another program (a notebook, the duckdb CLI) holds it, close "
                               "it") from None
    found.detail = f"{path} opens for writing"


def _remote(target: Target, found: DestinationCheck) -> None:
    """A shared destination or bucket answers: dlt's client for it opens and looks for the
    dataset. Whether the credentials may write is left to the first load."""
    if target.destination == "parquet":
        dest = remote.factory("filesystem", bucket_url=target.parquet_dir)
        config = remote.configuration("filesystem", target.dataset,
                                      bucket_url=target.parquet_dir)
    else:
        dest = target.dlt_destination()
        config = remote.configuration(target.destination, target.dataset)
    try:
        with dest.client(Schema("onepin"), config) as client:
            exists = client.is_storage_initialized()
    except Exception as exc:  # drivers raise their own errors; dlt wraps some
        cause = exc.__cause__ or exc
        raise DestinationError(f"cannot reach {target.location}: "
                               f"{remote.scrub(remote.first_line(cause))}") from None
    found.reachable, found.has_data = True, exists
    found.detail = (f"dataset {target.dataset} exists" if exists else
                    f"dataset {target.dataset} does not exist yet; the first load creates it")
    found.detail += "; write permission is checked by the first load"


def _pending(target: Target) -> list[str]:
    """Packages a failed or killed load left behind (the next load finishes them first)."""
    if not (target.working_dir / target.name).is_dir():  # never loaded: attach would create it
        return []
    try:
        pipeline = dlt.attach(pipeline_name=target.name, pipelines_dir=str(target.working_dir))
    except CannotRestorePipelineException:
        return []
    return [*pipeline.list_extracted_load_packages(), *pipeline.list_normalized_load_packages()]
