"""Whether a load could write somewhere, found without writing (``onepin-etl doctor``): a folder
takes a temporary file (removed), an existing DuckDB file opens, a server or bucket answers
dlt's client. Each kind's :meth:`~onepin_etl.destinations.base.Kind.probe` picks one."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dlt
import duckdb

from onepin_etl.destinations.scrub import first_line, scrub
from onepin_etl.errors import DestinationError


@dataclass
class Probe:
    """What was found; a problem is raised as :class:`DestinationError` instead."""

    reachable: bool | None = None  # None: not checked
    writable: bool | None = None
    has_data: bool = False  # the file, folder or dataset exists: the last load can be read
    detail: str = ""


class ProbeError(DestinationError):
    """A problem found, with what was found before it (a folder reachable, a file not
    writable)."""

    def __init__(self, message: str, found: Probe) -> None:
        super().__init__(message)
        self.found = found


def folder(path: Path) -> Probe:
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
    exists = path.exists()
    return Probe(True, True, exists, f"{path} exists" if exists else
                 f"{path} does not exist yet; the first load creates it in {existing}")


def duckdb_file(path: Path, busy: bool) -> Probe:
    """The folder takes new files, and an existing file opens for writing: no other program
    (a notebook, the duckdb CLI) holds it, and it is a DuckDB database. ``busy``: a load of
    ours holds it now, so it is not opened."""
    found = folder(path.absolute().parent)
    found.has_data = path.exists() and not busy
    if not path.exists():
        found.detail = f"{path} does not exist yet; the first load creates it"
    elif busy:
        found.detail = f"{path} is being loaded now; not opened"
    else:
        try:
            duckdb.connect(str(path)).close()
        except duckdb.Error as exc:
            found.writable = False
            raise ProbeError(f"cannot open {path} for writing: {first_line(exc)}; if another "
                             "program (a notebook, the duckdb CLI) holds it, close it",
                             found) from None
        found.detail = f"{path} opens for writing"
    return found


def dlt_client(destination: Any, configuration: Any, location: str, dataset: str) -> Probe:
    """A shared destination or bucket answers: dlt's client for it opens and looks for the
    dataset. Whether the credentials may write is left to the first load."""
    try:
        with destination.client(dlt.Schema("onepin"), configuration) as client:
            exists = bool(client.is_storage_initialized())
    except Exception as exc:  # drivers raise their own errors; dlt wraps some
        cause = exc.__cause__ or exc
        raise DestinationError(f"cannot reach {location}: {scrub(first_line(cause))}") from None
    detail = (f"dataset {dataset} exists" if exists else
              f"dataset {dataset} does not exist yet; the first load creates it")
    return Probe(True, None, exists, detail + "; write permission is checked by the first load")
