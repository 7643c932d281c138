"""Shared destinations: a DuckLake (catalog in PostgreSQL, data in S3), a PostgreSQL database,
Parquet in object storage. Their dlt configuration, where they are (never a secret), and the
DuckDB connections our readers (report, check, sql, status) use to read them.

Configuration is dlt's: ``.dlt/secrets.toml`` or ``DESTINATION__<NAME>__CREDENTIALS__…``
variables (``.dlt/example.secrets.toml``). Nothing secret is put on a command line, and nothing
read here is printed: errors go through :func:`scrub`.

Readers all use DuckDB and the one SQL of :mod:`onepin_etl.analysis_sql`, so every destination
answers with the same numbers: a DuckLake is attached by dlt's own DuckLake client (the same
catalog and storage the loads wrote), PostgreSQL through DuckDB's postgres extension (read-only),
and Parquet in S3 through httpfs with the secret dlt builds from the same credentials.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import unquote

import duckdb
from dlt.common.configuration.exceptions import ConfigFieldMissingException
from dlt.common.destination import Destination
from dlt.common.schema import Schema

from onepin_etl import duckdb_extensions
from onepin_etl.errors import DestinationError
from onepin_source.errors import ConfigError

SHARED_DESTINATIONS = ("ducklake", "postgres")
POSTGRES_ALIAS = "onepin_pg"  # the attached database's name in a reader's DuckDB connection

_CONFIG_HELP = {
    "ducklake": "DESTINATION__DUCKLAKE__CREDENTIALS__CATALOG and "
                "DESTINATION__DUCKLAKE__CREDENTIALS__STORAGE__BUCKET_URL",
    "postgres": "DESTINATION__POSTGRES__CREDENTIALS (postgresql://user:password@host:5432/db)",
    "filesystem": "DESTINATION__FILESYSTEM__CREDENTIALS__AWS_ACCESS_KEY_ID and "
                  "…__AWS_SECRET_ACCESS_KEY",
}


def factory(destination: str, *, staging_layout: str | None = None, **params: Any) -> Any:
    """dlt's destination factory. A DuckLake's embedded default (a SQLite catalog and a folder
    of files, named ``ducklake``) lives in the current folder, for loads and reads alike;
    PostgreSQL tables get no UNIQUE constraints (below)."""
    if destination == "ducklake":
        params.setdefault("local_dir", os.getcwd())
    if destination == "postgres":
        # No UNIQUE constraints (dlt's default puts one on _dlt_id): a load killed after a job
        # copied its rows into the staging table, but before dlt marked the job done, copies
        # them again when the package is resumed, and the constraint then fails the load for
        # good. The merge keeps one row per key anyway (tests/shared, a SIGKILLed shard).
        params.setdefault("create_indexes", False)
    if staging_layout:
        params["staging_dataset_name_layout"] = staging_layout
    duckdb_extensions.configure_dlt()
    if destination == "postgres":  # concurrent shards create tables and columns one at a time
        from onepin_etl.postgres_ddl import SerializedDdlPostgres

        return SerializedDdlPostgres(**params)
    return Destination.from_reference(destination, **params)


def configuration(destination: str, dataset: str, **params: Any) -> Any:
    """The resolved dlt configuration of ``destination``, or a one-line error naming what is
    missing and where to set it."""
    dest = factory(destination, **params)
    initial = dest.spec()
    initial.dataset_name = dataset
    try:
        return dest.configuration(initial)
    except ConfigFieldMissingException as exc:
        fields = ", ".join(exc.fields)
        raise ConfigError(f"destination {destination!r} is not configured (missing {fields}): "
                          f"set {_CONFIG_HELP.get(destination, 'its credentials')} in the "
                          "environment or .dlt/secrets.toml (see .dlt/example.secrets.toml)"
                          ) from None


def location(destination: str, dataset: str) -> str:
    """Where ``destination`` keeps its data, as a person would recognise it, without secrets:
    the PostgreSQL server and database, the lake's catalog and data path."""
    config = configuration(destination, dataset)
    credentials = config.credentials
    if destination == "postgres":
        return _server(credentials)
    if destination == "ducklake":
        catalog = credentials.catalog
        where = _server(catalog) if catalog.drivername in ("postgres", "postgresql") else \
            f"{catalog.drivername}:{catalog.database}"
        return f"ducklake {credentials.ducklake_name} (catalog {where}, data " \
               f"{credentials.storage_url})"
    return destination


def _server(credentials: Any) -> str:
    port = f":{credentials.port}" if credentials.port else ""
    return f"postgres://{_host(credentials)}{port}/{credentials.database}"


def _host(credentials: Any) -> str:
    """A host name, or a socket folder (URL-encoded in the connection string, or ?host=)."""
    host = credentials.host or (credentials.query or {}).get("host") or "localhost"
    return unquote(str(host))


@contextmanager
def read_ducklake(dataset: str) -> Iterator[duckdb.DuckDBPyConnection]:
    """A DuckDB connection with the lake attached by dlt's DuckLake client (so it reads what
    the loads wrote) and ``dataset`` as the search path. Detached on exit, as DuckLake needs."""
    dest = factory("ducklake")
    client = dest.client(Schema("onepin"), configuration("ducklake", dataset))
    sql_client = client.sql_client
    with _reading("ducklake"):
        con = sql_client.open_connection()
    try:
        yield con
    finally:
        sql_client.close_connection()


@contextmanager
def read_postgres(dataset: str) -> Iterator[duckdb.DuckDBPyConnection]:
    """A DuckDB connection with the PostgreSQL database attached read-only as ``onepin_pg``
    and in use (``dataset.table`` and plain table names resolve there). The password goes into
    a DuckDB secret (redacted by DuckDB), not into the attach string."""
    credentials = configuration("postgres", dataset).credentials
    con = duckdb.connect()
    try:
        duckdb_extensions.use_packaged_extensions(con)
        options = {"host": _host(credentials), "port": credentials.port or 5432,
                   "database": credentials.database, "user": credentials.username,
                   "password": credentials.password or ""}
        with _reading("postgres", secrets=[str(options["password"])]):
            con.execute("load postgres")
            con.execute("create secret onepin_pg_secret (type postgres, "
                        + ", ".join(f"{k} {_literal(v)}" for k, v in options.items()) + ")")
            con.execute(f"attach '' as {POSTGRES_ALIAS} "
                        "(type postgres, secret onepin_pg_secret, read_only)")
        con.execute(f'use {POSTGRES_ALIAS}."{dataset}"')  # tables by their plain names
        yield con
    finally:
        con.close()


@contextmanager
def read_bucket(bucket_url: str) -> Iterator[duckdb.DuckDBPyConnection]:
    """A DuckDB connection that can read ``bucket_url`` (s3://, gs://, az://): the secret is
    the one dlt builds for DuckDB from the filesystem destination's credentials."""
    filesystem = configuration("filesystem", "onepin", bucket_url=bucket_url)
    con = duckdb.connect()
    try:
        duckdb_extensions.use_packaged_extensions(con)
        reader = factory("duckdb", credentials=con)
        sql_client = reader.client(Schema("onepin"), configuration(
            "duckdb", "onepin", credentials=con)).sql_client
        with _reading(bucket_url):
            sql_client.open_connection()
            sql_client.create_secret(bucket_url, filesystem.credentials)
        yield con
    finally:
        con.close()


def _literal(value: Any) -> str:
    return "'" + str(value).replace("'", "''") + "'"


@contextmanager
def _reading(what: str, secrets: list[str] | None = None) -> Iterator[None]:
    """Turn a failure to open a shared destination into one line without secrets."""
    try:
        yield
    except Exception as exc:
        cause = exc.__cause__ or exc  # dlt wraps driver errors in its own exceptions
        raise DestinationError(f"could not read {what}: {scrub(first_line(cause), secrets)}"
                               + _hint(cause)) from None


def first_line(exc: BaseException) -> str:
    """``Type: the first non-empty line of the message``."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return f"{type(exc).__name__}: {lines[0] if lines else ''}"


def _hint(exc: BaseException) -> str:
    if "automatically install" in str(exc) or "Failed to download extension" in str(exc):
        return ("; DuckDB could not download an extension (no internet?): install "
                "onepin-dlt[shared], which ships them for DuckDB 1.4.4")
    return ""


_URL_PASSWORD = re.compile(r"(://[^:/@\s]+:)[^@\s]+@")
_KEY_VALUE_PASSWORD = re.compile(r"(password\s*[=:]\s*)('[^']*'|\S+)", re.IGNORECASE)


def scrub(text: str, secrets: list[str] | None = None) -> str:
    """``text`` without passwords: in URLs (``user:…@``), ``password=…`` pairs and any of
    ``secrets`` given."""
    text = _URL_PASSWORD.sub(r"\1***@", text)
    text = _KEY_VALUE_PASSWORD.sub(r"\1***", text)
    for secret in secrets or []:
        if secret:
            text = text.replace(secret, "***")
    return text
