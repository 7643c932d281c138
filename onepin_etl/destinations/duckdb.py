"""A DuckDB file: the default destination. One writer at a time (shards load in turn), the views
persisted in the dataset, a file that may be locked for a moment by a reader (a notebook)."""

from __future__ import annotations

import contextlib
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import dlt
import duckdb

from onepin_etl.destinations import probe
from onepin_etl.destinations.base import Kind, Tables, unwritable
from onepin_etl.destinations.duckdb_merge import KeyDedupDuckDb
from onepin_etl.errors import DestinationError, NoDataError
from onepin_etl.settings import DEFAULT_PIPELINE_NAME, DUCKDB_MEMORY_LIMIT
from onepin_etl.sql import literal
from onepin_etl.views import dataset_tables, persist_views, require_tables
from onepin_source.errors import ConfigError

if TYPE_CHECKING:
    from collections.abc import Iterator

    from onepin_etl.destinations import Target


class DuckDb(Kind):
    name = dlt_type = "duckdb"
    location_param = "duckdb_path"
    database_file = True

    def pipeline_name(self) -> str:
        return DEFAULT_PIPELINE_NAME

    def check(self, target: Target) -> None:
        """A file whose stem equals the dataset name (DuckDB cannot tell them apart:
        "Ambiguous reference to catalog or schema"), or in a folder that does not exist."""
        path = Path(target.duckdb_path)
        if path.stem == target.dataset:
            raise ConfigError(f"DuckDB file {target.duckdb_path!r} has the same name as the "
                              f"dataset {target.dataset!r}, which DuckDB cannot tell apart; "
                              "choose another file or dataset name")
        if not path.absolute().parent.is_dir():
            raise ConfigError(f"folder {str(path.absolute().parent)!r} of the DuckDB file does "
                              "not exist; create it or choose another path")

    def factory(self, target: Target) -> Any:
        return duckdb_destination(target.duckdb_path)

    def location(self, target: Target) -> str:
        return target.duckdb_path

    def identity(self, target: Target) -> str:
        return str(Path(target.duckdb_path).absolute())

    def local_files(self, target: Target) -> Path:
        return Path(target.duckdb_path)

    @contextmanager
    def open(self, target: Target) -> Iterator[tuple[duckdb.DuckDBPyConnection, Tables]]:
        """The file, read-only (a load is locked out only while a reader has it open)."""
        path = Path(target.duckdb_path)
        if not path.is_file():
            raise NoDataError(f"no DuckDB file at {path}")
        con = duckdb.connect(str(path), read_only=True)
        try:  # the tables first: search_path fails on a file without the dataset's schema
            require_tables(con, target.dataset, str(path))
            con.execute(f"set search_path = {literal(target.dataset)}")  # plain table names
            yield con, dataset_tables(target.dataset)
        finally:
            con.close()

    def persist_views(self, pipeline: dlt.Pipeline) -> None:
        with pipeline.sql_client() as client:
            persist_views(client.native_connection, pipeline.dataset_name)

    @contextmanager
    def held_open(self, pipeline: dlt.Pipeline) -> Iterator[None]:
        """dlt opens the file for every load job and closes it after. DuckDB shares one
        database among a process's connections, so with nobody else holding it each close
        checkpoints the file and the next job opens it again: 40% of a piece's load step.
        One connection of ours, held while the package loads, makes the jobs' connections
        cheap; the file is closed again after it (a reader gets in between pieces). If a
        reader holds the file now, dlt meets the lock and the load waits as before."""
        credentials = pipeline.destination.config_params.get("credentials")
        database = credentials.get("database") if isinstance(credentials, dict) else None
        held = None
        if database:
            with contextlib.suppress(duckdb.Error):
                held = duckdb.connect(str(database))
        try:
            yield
        finally:
            if held is not None:
                held.close()

    def probe(self, target: Target, *, busy: bool = False) -> probe.Probe:
        return probe.duckdb_file(self.local_files(target), busy)

    def retryable(self, root: BaseException) -> bool:
        """The file's lock (a reader usually lets go within seconds); a constraint or binder
        error fails every time."""
        return isinstance(root, duckdb.IOException) and "lock" in str(root).lower()

    def write_error(self, cause: str, location: str, *, retryable: bool = False
                    ) -> DestinationError:
        if retryable:
            return DestinationError(f"could not write to the destination: {cause}; another "
                                    "program (a notebook, the duckdb CLI) holds the file: close "
                                    "it and run the load again: nothing is lost, the pending "
                                    "data is loaded first")
        return unwritable(location, cause)


def duckdb_destination(path: str | Path) -> Any:
    """dlt's DuckDB destination for ``path``, with a memory cap (DuckDB spills past it) and a
    cheaper de-duplication of staged rows in merges (``duckdb_merge``)."""
    return KeyDedupDuckDb(credentials={
        "database": str(Path(path).absolute()),
        # Rows of a table have no order (SQL gives one with ORDER BY only); letting DuckDB
        # insert them in any order makes loads about 1 s per 1M steps faster.
        "global_config": {"memory_limit": DUCKDB_MEMORY_LIMIT,
                          "preserve_insertion_order": False},
    })
