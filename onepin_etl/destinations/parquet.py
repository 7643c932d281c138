"""Parquet files in a local folder or a bucket (``s3://``, ``gs://``, ``az://``), through dlt's
filesystem destination. Parquet cannot merge, so every load appends files and readers pick the
latest version of each row (``analysis_sql.LATEST_*``); :meth:`Parquet.compact` rewrites a local
folder to those rows.

Compaction: reading gets slower with every file (a query that took 0.09 s after one load took
0.59 s after sixty). It writes, per table, one file holding exactly what readers would pick
(rows keep their ``_dlt_load_id``, so later loads still win), then removes the files it
replaced. The caller holds the pipeline's lock, so no load writes meanwhile; a reader that lists
the folder in the instant between the new file's rename and the old files' removal may see a
run's steps twice, and sees the right answer again on its next query.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import dlt
import duckdb

from onepin_etl import duckdb_extensions
from onepin_etl.destinations import config, probe
from onepin_etl.destinations.base import Compacted, Kind, Tables, loads_in, unwritable
from onepin_etl.destinations.scrub import reading
from onepin_etl.errors import DestinationError, NoDataError
from onepin_etl.sql import identifier, literal, literals
from onepin_etl.views import TABLES, dataset_tables, latest_sql
from onepin_source.errors import ConfigError

if TYPE_CHECKING:
    from onepin_etl.destinations import Target

_CONFIG_HELP = ("DESTINATION__FILESYSTEM__CREDENTIALS__AWS_ACCESS_KEY_ID and "
                "…__AWS_SECRET_ACCESS_KEY")


class Parquet(Kind):
    name = "parquet"
    dlt_type = "filesystem"
    file_format = "parquet"  # dlt's filesystem default is JSONL
    append_only = True
    location_param = "parquet_dir"

    def factory(self, target: Target) -> Any:
        return config.factory("filesystem", bucket_url=self.identity(target))

    def location(self, target: Target) -> str:
        return target.parquet_dir

    def identity(self, target: Target) -> str:
        root = target.parquet_dir
        return root if _is_bucket(root) else str(Path(root).absolute())

    def local_files(self, target: Target) -> Path | None:
        return None if _is_bucket(target.parquet_dir) else Path(target.parquet_dir)

    def probe(self, target: Target, *, busy: bool = False) -> probe.Probe:
        folder = self.local_files(target)
        if folder is not None:
            return probe.folder(folder)
        destination = self.factory(target)
        return probe.dlt_client(destination, config.configuration(destination, target.dataset,
                                                                  _CONFIG_HELP),
                                target.location, target.dataset)

    @contextmanager
    def open(self, target: Target) -> Iterator[tuple[duckdb.DuckDBPyConnection, Tables]]:
        """An in-memory database whose schema ``dataset`` has a view per table: the latest
        version of each row in the files (so ``onepin.runs`` reads as it does in a DuckDB
        file)."""
        root, dataset = target.parquet_dir, target.dataset
        base = _base(target)
        with ExitStack() as stack:
            if _is_bucket(root):
                con = stack.enter_context(read_bucket(root))
                found = {t for t in TABLES if con.execute(
                    "select count(*) from glob(?)", [f"{base}/{t}/*.parquet"]).fetchall()[0][0]}
            else:
                con = duckdb.connect()
                stack.callback(con.close)
                found = {t for t in TABLES if list(Path(base, t).glob("*.parquet"))}
            missing = [t for t in TABLES if t not in found]
            if missing:
                raise NoDataError(f"no Parquet files for {', '.join(missing)} under {base}")
            tables = dataset_tables(dataset)
            con.execute(f"create schema {identifier(dataset)}")
            for table in TABLES:
                files = literal(f"{base}/{table}/*.parquet")
                con.execute(f"create view {tables[table]} as {latest_sql(table, files)}")
            con.execute(f"set search_path = {literal(dataset)}")
            yield con, tables

    def completed_loads(self, target: Target, con: duckdb.DuckDBPyConnection
                        ) -> list[tuple[str, datetime]]:
        """dlt writes ``_dlt_loads`` as JSON lines here."""
        files = f"{_base(target)}/_dlt_loads/*.jsonl"
        if not con.execute("select count(*) from glob(?)", [files]).fetchall()[0][0]:
            return []
        return loads_in(con, f"read_json_auto({literal(files)})")

    def write_error(self, cause: str, location: str, *, retryable: bool = False
                    ) -> DestinationError:
        return unwritable(location, cause)  # the folder or bucket

    def compact(self, target: Target) -> list[Compacted]:
        """Rewrite each table of a local folder as one file; the caller holds the lock."""
        if _is_bucket(target.parquet_dir):
            raise ConfigError("compaction works on a local Parquet folder, not a bucket")
        done = []
        for table in TABLES:
            folder = Path(_base(target)) / table
            old = sorted(folder.glob("*.parquet"))
            rows = _rewrite(table, folder, old) if len(old) > 1 else -1
            done.append(Compacted(table, len(old), rows))
        return done


def _is_bucket(root: str) -> bool:
    return "://" in root


def _base(target: Target) -> str:
    return f"{target.parquet_dir.rstrip('/')}/{target.dataset}"


def _rewrite(table: str, folder: Path, old: list[Path]) -> int:
    """Write the latest rows of ``old`` into one new file, then remove ``old``."""
    name = f"compacted.{uuid.uuid4().hex}.parquet"
    partial = folder / f".{name}.partial"
    with duckdb.connect() as con:
        con.execute(f"copy ({latest_sql(table, f'[{literals(old)}]')}) to {literal(partial)} "
                    "(format parquet)")
        (rows,), = con.execute(f"select count(*) from read_parquet({literal(partial)})"
                               ).fetchall()
    partial.rename(folder / name)
    for path in old:
        path.unlink()
    return int(rows)


@contextmanager
def read_bucket(bucket_url: str) -> Iterator[duckdb.DuckDBPyConnection]:
    """A DuckDB connection that can read ``bucket_url``: the secret is the one dlt builds for
    DuckDB from the filesystem destination's credentials (httpfs)."""
    filesystem = config.configuration(config.factory("filesystem", bucket_url=bucket_url),
                                      "onepin", _CONFIG_HELP)
    con = duckdb.connect()
    try:
        duckdb_extensions.use_packaged_extensions(con)
        reader = config.factory("duckdb", credentials=con)
        sql_client = reader.client(dlt.Schema("onepin"), config.configuration(
            reader, "onepin", "its credentials")).sql_client
        with reading(bucket_url):
            sql_client.open_connection()
            sql_client.create_secret(bucket_url, filesystem.credentials)
        yield con
    finally:
        con.close()
