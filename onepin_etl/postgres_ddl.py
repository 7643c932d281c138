"""dlt's PostgreSQL destination, with its DDL serialized across loaders of one database.

Shards load into one dataset at once, each a pipeline of its own. Each one's first load finds
the tables missing and creates them, and each one's schema update adds the columns it met
first. dlt reads what exists, then runs ``CREATE TABLE`` / ``ALTER TABLE … ADD COLUMN``: two
loaders doing that at once both read "missing", and the second fails the load for good
(``DuplicateTable: relation "workflows" already exists``, ``DuplicateSchema``,
``DuplicateColumn``; seen in CI with three shards).

Here the schema's creation and every schema update take a transaction-scoped advisory lock
before reading what exists: a second loader waits for the first to commit, then reads the tables
and columns the first created and adds only what is still missing. The lock is held for the
DDL only (milliseconds); the rows are loaded in parallel as before. Only the DDL differs: the
destination keeps dlt's type, so pipelines, their state and config sections see ``postgres``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from dlt.destinations import postgres
from dlt.destinations.impl.postgres.postgres import PostgresClient

# One lock for every DDL of ours in a database: dlt's schema updates and the analysis views.
DDL_LOCK = 0x6F6E6570  # "onep"


def lock_ddl(sql_client: Any) -> None:
    """Wait for any other loader's DDL in this database; held until the transaction ends."""
    sql_client.execute_sql(f"select pg_advisory_xact_lock({DDL_LOCK})")


class SerializedDdlPostgresClient(PostgresClient):
    def initialize_storage(self, truncate_tables: Iterable[str] | None = None) -> None:
        with self.sql_client.begin_transaction():
            lock_ddl(self.sql_client)
            super().initialize_storage(truncate_tables)  # type: ignore[arg-type]

    @contextmanager
    def maybe_ddl_transaction(self) -> Iterator[None]:
        with super().maybe_ddl_transaction():
            lock_ddl(self.sql_client)
            yield


class SerializedDdlPostgres(postgres):
    @property
    def client_class(self) -> type[PostgresClient]:
        return SerializedDdlPostgresClient

    @property
    def destination_type(self) -> str:
        return "dlt.destinations.postgres"
