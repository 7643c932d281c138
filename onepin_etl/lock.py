"""One load per pipeline at a time: an OS lock on the pipeline's working folder and destination.

dlt takes no lock of its own, and two runs of one pipeline at once break it (one finishes the
other's package in flight). The lock is ``flock`` on a small file: the kernel releases it when the
holder exits or is killed, so a crashed load never blocks the next one. The holder writes who it
is (pipeline, process, host, since when) into the file, for the one-line message a waiting load
prints. Readers (report, check, analysis, the notebook) take no lock.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import socket
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from onepin_etl.errors import LoadLockedError

POLL_S = 0.2  # how often a waiting load tries again
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Holder:
    """Who holds a lock, as the holder wrote it."""

    pipeline: str
    pid: int
    host: str
    since: str

    def describe(self) -> str:
        return f"process {self.pid} on {self.host} since {self.since}"


def lock_paths(pipelines_dir: str | Path, pipeline_name: str,
               destination_file: str | Path | None) -> list[Path]:
    """The lock files of a pipeline: beside its working folder, and beside a local destination
    (a DuckDB file or Parquet folder), so two pipelines cannot write one file at once either."""
    paths = [Path(pipelines_dir).absolute() / f".{pipeline_name}.lock"]
    if destination_file is not None:
        target = Path(destination_file).absolute()
        paths.append(target.parent / f".{target.name}.onepin.lock")
    return paths


@contextmanager
def held(paths: list[Path], pipeline_name: str, *, wait_s: float = 0.0) -> Iterator[None]:
    """Hold every lock in ``paths`` (in order) for the duration, waiting up to ``wait_s``."""
    deadline = time.monotonic() + wait_s
    with ExitStack() as stack:
        for path in paths:
            stack.enter_context(_held(path, pipeline_name, deadline, wait_s))
        yield


@contextmanager
def creating(pipelines_dir: str | Path, pipeline_name: str) -> Iterator[None]:
    """Held while a process creates or opens a pipeline (``dlt.pipeline``), waiting as long as it
    takes (that is milliseconds). dlt creates a new working folder by wiping it, then making it:
    processes doing so at once fail (``FileExistsError``, "Directory not empty", a state file
    gone), as Dagster's processes do when each loads the definitions. Not the load's lock: a load
    opens its pipeline while it holds that one."""
    path = Path(pipelines_dir).absolute() / f".{pipeline_name}.creating.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a+", encoding="utf-8") as file:
        fcntl.flock(file, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(file, fcntl.LOCK_UN)


@contextmanager
def _held(path: Path, pipeline_name: str, deadline: float, wait_s: float) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a+", encoding="utf-8") as file:
        told = False
        while not _try_lock(file):
            if wait_s > 0 and not told:  # a load that waits says what for, once
                holder = read_holder(path)
                log.warning("waiting up to %g s for %s, which %s holds", wait_s,
                            _what(path, pipeline_name, holder),
                            holder.describe() if holder else "another process")
                told = True
            if time.monotonic() >= deadline:
                raise LoadLockedError(_locked_message(path, pipeline_name, read_holder(path)))
            time.sleep(POLL_S)
        _write_holder(file, pipeline_name)
        try:
            yield
        finally:
            file.truncate(0)
            fcntl.flock(file, fcntl.LOCK_UN)


def _try_lock(file: IO[Any]) -> bool:
    try:
        fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _write_holder(file: IO[Any], pipeline_name: str) -> None:
    since = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    file.seek(0)
    file.truncate(0)
    file.write(json.dumps({"pipeline": pipeline_name, "pid": os.getpid(),
                           "host": socket.gethostname(), "since": since}))
    file.flush()


def read_holder(path: Path) -> Holder | None:
    """Who holds the lock at ``path`` now (None if nobody does)."""
    if not path.is_file():
        return None
    with path.open("a+", encoding="utf-8") as file:
        if _try_lock(file):  # free: whatever the file says is a holder that has gone
            fcntl.flock(file, fcntl.LOCK_UN)
            return None
        file.seek(0)
        try:
            data = json.loads(file.read() or "{}")
            return Holder(str(data["pipeline"]), int(data["pid"]), str(data["host"]),
                          str(data["since"]))
        except (ValueError, KeyError, TypeError):
            return Holder("?", 0, "?", "?")


def _is_pipeline_lock(path: Path, pipeline_name: str) -> bool:
    return path.name.startswith(f".{pipeline_name}.")


def _what(path: Path, pipeline_name: str, holder: Holder | None) -> str:
    if _is_pipeline_lock(path, pipeline_name):
        return f"pipeline {pipeline_name!r}"
    return (f"the destination {path.name.removeprefix('.').removesuffix('.onepin.lock')!r} "
            f"(pipeline {holder.pipeline if holder else '?'!r})")


def _locked_message(path: Path, pipeline_name: str, holder: Holder | None) -> str:
    who = holder.describe() if holder else "another process"
    # One pipeline, one load at a time, whatever the destination: a load into another file
    # that may run alongside needs a pipeline (and so a state) of its own.
    # The CLI's flags first, then their names in Python (Target, onepin_etl.load): Dagster and
    # notebooks meet this message too.
    other = ("; to load another destination at the same time, give it its own --pipeline-name "
             "(Target.pipeline_name)" if _is_pipeline_lock(path, pipeline_name) else "")
    return (f"{_what(path, pipeline_name, holder)} is being loaded by {who}; this load did not "
            f"start. Wait for it, or pass --wait SECONDS (wait_s in Python) to queue behind "
            f"it{other}")
