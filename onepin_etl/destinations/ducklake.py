"""A DuckLake: a catalog (PostgreSQL, SQLite, DuckDB) and data files (a folder or a bucket),
through dlt's DuckLake destination. Shards load at once; two loaders' catalog commits may
conflict for a moment, and the later one tries again."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import dlt
import duckdb

from onepin_etl.destinations import config
from onepin_etl.destinations.base import Tables
from onepin_etl.destinations.scrub import reading
from onepin_etl.destinations.shared import SharedKind, server
from onepin_etl.settings import LOCK_RETRIES, LOCK_RETRY_WAIT_S
from onepin_etl.views import dataset_tables, persist_views, require_tables

if TYPE_CHECKING:
    from onepin_etl.destinations import Target

# What DuckLake says when two loaders change its catalog at once (shards): the first to commit
# wins, the other tries again and finds the catalog as the winner left it.
_CONFLICTS = ("already exists", "conflict", "Failed to commit DuckLake transaction")


class DuckLake(SharedKind):
    name = dlt_type = "ducklake"
    config_help = ("DESTINATION__DUCKLAKE__CREDENTIALS__CATALOG and "
                   "DESTINATION__DUCKLAKE__CREDENTIALS__STORAGE__BUCKET_URL")

    def factory_params(self) -> dict[str, Any]:
        """The embedded default lake (a SQLite catalog and a folder of files, named
        ``ducklake``) lives in the current folder, for loads and reads alike."""
        return {"local_dir": os.getcwd()}

    def location(self, target: Target) -> str:
        credentials = self.configuration(target).credentials
        catalog = credentials.catalog
        where = server(catalog) if catalog.drivername in ("postgres", "postgresql") else \
            f"{catalog.drivername}:{catalog.database}"
        return f"ducklake {credentials.ducklake_name} (catalog {where}, data " \
               f"{credentials.storage_url})"

    @contextmanager
    def open(self, target: Target) -> Iterator[tuple[duckdb.DuckDBPyConnection, Tables]]:
        """The lake attached by dlt's DuckLake client (so it reads what the loads wrote), the
        dataset in use; detached on exit, as DuckLake needs."""
        with read_ducklake(self, target) as con:
            require_tables(con, target.dataset, self.name)
            yield con, dataset_tables(target.dataset)

    def persist_views(self, pipeline: dlt.Pipeline) -> None:
        for attempt in range(LOCK_RETRIES + 1):
            try:
                with pipeline.sql_client() as client:
                    persist_views(client.native_connection, pipeline.dataset_name)
                return
            except Exception as exc:  # dlt wraps DuckDB's errors in its own
                if attempt == LOCK_RETRIES or not self.retryable(exc):
                    raise
                time.sleep(LOCK_RETRY_WAIT_S)

    def retryable(self, root: BaseException) -> bool:
        return any(text in str(root) for text in _CONFLICTS)


@contextmanager
def read_ducklake(kind: DuckLake, target: Target) -> Iterator[duckdb.DuckDBPyConnection]:
    """A DuckDB connection with the lake attached and ``dataset`` as the search path."""
    config.configure_dlt()  # dlt's client attaches the lake with the packaged extensions
    client = config.factory(kind.name, **kind.factory_params()).client(
        dlt.Schema("onepin"), kind.configuration(target))
    sql_client = client.sql_client
    with reading(kind.name):
        con = sql_client.open_connection()
    try:
        yield con
    finally:
        sql_client.close_connection()
