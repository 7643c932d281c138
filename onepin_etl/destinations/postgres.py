"""A PostgreSQL database, through dlt's postgres destination; read through DuckDB's postgres
extension, read-only. Shards load at once, each through a staging dataset of its own."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import dlt
import duckdb

from onepin_etl import duckdb_extensions
from onepin_etl.destinations import postgres_views
from onepin_etl.destinations.base import Tables
from onepin_etl.destinations.scrub import reading
from onepin_etl.destinations.shared import SharedKind, host, server
from onepin_etl.sql import identifier, literal
from onepin_etl.views import dataset_tables, require_tables

if TYPE_CHECKING:
    from onepin_etl.destinations import Target

POSTGRES_ALIAS = "onepin_pg"  # the attached database's name in a reader's DuckDB connection


class Postgres(SharedKind):
    name = dlt_type = "postgres"
    config_help = "DESTINATION__POSTGRES__CREDENTIALS (postgresql://user:password@host:5432/db)"

    def factory(self, target: Target) -> Any:
        """dlt's postgres destination, its DDL serialized across concurrent shards
        (:mod:`~onepin_etl.destinations.postgres_ddl`)."""
        from onepin_etl.destinations.postgres_ddl import SerializedDdlPostgres  # psycopg2

        params = self.factory_params()
        if target.staging_layout:
            params["staging_dataset_name_layout"] = target.staging_layout
        return SerializedDdlPostgres(**params)

    def factory_params(self) -> dict[str, Any]:
        # No UNIQUE constraints (dlt's default puts one on _dlt_id): a load killed after a job
        # copied its rows into the staging table, but before dlt marked the job done, copies
        # them again when the package is resumed, and the constraint then fails the load for
        # good. The merge keeps one row per key anyway (tests/shared, a SIGKILLed shard).
        return {"create_indexes": False}

    def location(self, target: Target) -> str:
        return server(self.configuration(target).credentials)

    @contextmanager
    def open(self, target: Target) -> Iterator[tuple[duckdb.DuckDBPyConnection, Tables]]:
        """The database attached read-only as ``onepin_pg`` and in use (``dataset.table`` and
        plain table names resolve there). The password goes into a DuckDB secret (redacted by
        DuckDB), not into the attach string."""
        credentials = self.configuration(target).credentials
        con = duckdb.connect()
        try:
            duckdb_extensions.use_packaged_extensions(con)
            options = {"host": host(credentials), "port": credentials.port or 5432,
                       "database": credentials.database, "user": credentials.username,
                       "password": credentials.password or ""}
            with reading(self.name, secrets=[str(options["password"])]):
                con.execute("load postgres")
                con.execute("create secret onepin_pg_secret (type postgres, "
                            + ", ".join(f"{k} {literal(v)}" for k, v in options.items()) + ")")
                con.execute(f"attach '' as {POSTGRES_ALIAS} "
                            "(type postgres, secret onepin_pg_secret, read_only)")
            con.execute(f"use {POSTGRES_ALIAS}.{identifier(target.dataset)}")
            require_tables(con, target.dataset, self.name)
            yield con, dataset_tables(target.dataset)
        finally:
            con.close()

    def persist_views(self, pipeline: dlt.Pipeline) -> None:
        with pipeline.sql_client() as client:
            postgres_views.persist(client, pipeline.dataset_name)
