"""What every destination kind answers: the contract :class:`~onepin_etl.destinations.Target`,
the load path, the readers, ``status`` and ``compact`` rely on. A kind is one module of this
package; adding one is that module, its entry in ``KINDS`` and its tests."""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb

from onepin_etl.destinations.probe import Probe
from onepin_etl.errors import DestinationError
from onepin_etl.settings import DEFAULT_PIPELINE_NAME
from onepin_etl.sql import identifier
from onepin_etl.utc import as_utc
from onepin_etl.views import loaded_tables
from onepin_source.errors import ConfigError

if TYPE_CHECKING:
    import dlt

    from onepin_etl.destinations import Target

Tables = dict[str, str]  # a loaded table's name -> how a reader's connection refers to it


@dataclass(frozen=True)
class Compacted:
    """One table of a compaction: its files before, and the rows kept (-1: nothing to do)."""

    table: str
    files_before: int
    rows: int


class Kind:
    """A kind of destination. The defaults fit a dlt destination we know nothing more of:
    loads work, reads do not."""

    name: str = ""
    dlt_type: str = ""  # dlt's destination type (``…destinations.<dlt_type>``) it loads through
    file_format: str | None = None  # dlt's loader file format, when not dlt's default
    concurrent_shards = False  # shards may load into one place at once
    append_only = False  # cannot merge: every load appends, readers take each row's latest
    location_param: str | None = None  # the Target field (and CLI option) naming its place
    database_file = False  # its place is one database file that connecting creates

    def pipeline_name(self) -> str:
        """The default pipeline name (each kind its own, so each its own state)."""
        return f"{DEFAULT_PIPELINE_NAME}_{self.name}"

    def check(self, target: Target) -> None:
        """Refuse what cannot work, before any request."""

    def factory(self, target: Target) -> Any:
        """dlt's destination for ``target``."""
        raise NotImplementedError

    def location(self, target: Target) -> str:
        """Where the data is, as a person would recognise it (never a secret)."""
        return target.destination

    def identity(self, target: Target) -> str:
        """The place, for the incremental state: a pipeline pointed elsewhere starts over."""
        return ""

    def local_files(self, target: Target) -> Path | None:
        """The file or folder written on this machine, if any (the lock sits beside it)."""
        return None

    def open(self, target: Target) -> AbstractContextManager[tuple[duckdb.DuckDBPyConnection,
                                                                   Tables]]:
        """A read-only DuckDB connection over the loaded tables (``dataset`` in use), and the
        tables' names in it; the views are added by :func:`onepin_etl.analysis.connect`."""
        target.check_readable()
        raise NotImplementedError  # a kind readers can open overrides this

    def persist_views(self, pipeline: dlt.Pipeline) -> None:
        """Create the analysis views inside the destination after a load (where it can)."""

    def held_open(self, pipeline: dlt.Pipeline) -> AbstractContextManager[None]:
        """Keep the destination open while one package loads, if opening it costs (a load
        opens and closes it for every table otherwise)."""
        return nullcontext()

    def completed_loads(self, target: Target, con: duckdb.DuckDBPyConnection
                        ) -> list[tuple[str, datetime]]:
        """``(load_id, inserted_at)`` of the completed loads, newest first, through ``con``."""
        if "_dlt_loads" not in loaded_tables(con, target.dataset):
            return []
        return loads_in(con, f"{identifier(target.dataset)}._dlt_loads")

    def probe(self, target: Target, *, busy: bool = False) -> Probe:
        """Whether a load could write here, found without writing (``doctor``); ``busy``: a
        load of ours holds the place now. Raises :class:`DestinationError` for a problem."""
        return Probe(detail=f"not checked: doctor checks {', '.join(probed())}; the first "
                            "load will tell")

    def compact(self, target: Target) -> list[Compacted]:
        raise ConfigError("compaction works on a local Parquet folder only")

    def retryable(self, root: BaseException) -> bool:
        """Whether a failed write is worth another try in a moment (a lock, a conflict)."""
        return False

    def write_error(self, cause: str, location: str, *, retryable: bool = False
                    ) -> DestinationError:
        """A failed write as one line (``cause``: the error's first line, without secrets;
        ``retryable``: :meth:`retryable` said so of it, and the retries ran out)."""
        return unwritable(self.name, cause)


def unwritable(where: str, cause: str) -> DestinationError:
    return DestinationError(f"could not write to {where}: {cause}; check its configuration and "
                            "that it is reachable, then run the load again: nothing is lost, the "
                            "pending data is loaded first")


def loads_in(con: duckdb.DuckDBPyConnection, relation: str) -> list[tuple[str, datetime]]:
    rows = con.execute(f"select load_id, inserted_at from {relation} where status = 0 "
                       "order by inserted_at desc").fetchall()
    return [(str(load_id), as_utc(datetime.fromisoformat(inserted)
                                  if isinstance(inserted, str) else inserted))
            for load_id, inserted in rows]


def probed() -> tuple[str, ...]:
    """The kinds doctor can probe (for messages)."""
    from onepin_etl.destinations import KINDS

    return tuple(name for name, kind in KINDS.items() if type(kind).probe is not Kind.probe)


def readable() -> tuple[str, ...]:
    """The kinds readers can open (for messages)."""
    from onepin_etl.destinations import KINDS

    return tuple(name for name, kind in KINDS.items()
                 if type(kind).open is not Kind.open)
