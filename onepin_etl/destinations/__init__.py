"""Where data is: :class:`Target`, and one module per kind of destination, each owning its dlt
factory, identity for the incremental state, location and local files, read-only DuckDB
connection, persisted views, completed loads, compaction, retries and write errors
(:class:`~onepin_etl.destinations.base.Kind`).

    Target(duckdb_path="onepin_etl.duckdb")                  # duckdb.py, the default
    Target("parquet", parquet_dir="s3://bucket/onepin")      # parquet.py, a folder or a bucket
    Target("ducklake"), Target("postgres", shard="1/4")      # ducklake.py, postgres.py
    Target("bigquery")                                       # other.py: any dlt destination

Outside this package no code compares a destination's name: it asks ``target.kind``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from onepin_etl.destinations.base import Compacted, Kind, Tables, readable
from onepin_etl.destinations.duckdb import DuckDb, duckdb_destination
from onepin_etl.destinations.ducklake import DuckLake
from onepin_etl.destinations.other import OtherDestination
from onepin_etl.destinations.parquet import Parquet
from onepin_etl.destinations.postgres import Postgres
from onepin_etl.dlt_internals import get_dlt_pipelines_dir
from onepin_etl.settings import DEFAULT_DATASET, DEFAULT_DUCKDB_PATH, DEFAULT_PARQUET_DIR
from onepin_source.errors import ConfigError
from onepin_source.shards import Shard

if TYPE_CHECKING:
    from datetime import datetime

    import dlt
    import duckdb

KINDS: dict[str, Kind] = {kind.name: kind for kind in (DuckDb(), Parquet(), DuckLake(),
                                                        Postgres())}


def kind_named(destination: str) -> Kind:
    """The kind of ``destination`` (``--destination``'s value)."""
    return KINDS.get(destination) or OtherDestination(destination)


def kind_of(pipeline: dlt.Pipeline) -> Kind:
    """The kind a pipeline loads through, by dlt's destination type (a destination configured
    under a name of its own is still its type's kind)."""
    dlt_type = str(pipeline.destination.destination_type).rsplit(".", 1)[-1]
    return next((k for k in KINDS.values() if k.dlt_type == dlt_type),
                OtherDestination(dlt_type))


@dataclass(frozen=True)
class Target:
    """Where a load goes. ``destination`` is ``duckdb``, ``parquet``, ``ducklake``,
    ``postgres`` or any dlt destination; ``shard`` is ``"K/N"`` for one of N loaders."""

    destination: str = "duckdb"
    duckdb_path: str = DEFAULT_DUCKDB_PATH
    parquet_dir: str = DEFAULT_PARQUET_DIR
    dataset: str = DEFAULT_DATASET
    pipeline_name: str | None = None  # default: "onepin" for duckdb, "onepin_<destination>"
    pipelines_dir: str | None = None
    shard: str | None = None

    @property
    def kind(self) -> Kind:
        return kind_named(self.destination)

    @property
    def name(self) -> str:
        """The pipeline's name: each shard has its own, and so its own incremental state."""
        name = self.pipeline_name or self.kind.pipeline_name()
        return f"{name}_{self.parsed_shard.suffix}" if self.parsed_shard else name

    @property
    def parsed_shard(self) -> Shard | None:
        return Shard.parse(self.shard) if self.shard else None

    @property
    def staging_layout(self) -> str | None:
        """Each shard merges through a staging dataset of its own: dlt empties the staging
        tables at the start of a load, which would drop another shard's rows staged there."""
        shard = self.parsed_shard
        return f"%s_staging_{shard.suffix}" if shard else None

    @cached_property  # a shared destination's comes from resolving dlt's configuration
    def location(self) -> str:
        """The file, folder or destination, as a person would recognise it (no secret)."""
        return self.kind.location(self)

    @property
    def working_dir(self) -> Path:
        """dlt's folder for this pipeline's working folders (``pipelines_dir``)."""
        return Path(self.pipelines_dir or get_dlt_pipelines_dir()).absolute()

    @property
    def local_files(self) -> Path | None:
        """The DuckDB file or local Parquet folder written, or None for a remote destination."""
        return self.kind.local_files(self)

    @property
    def key(self) -> str:
        """Where the data goes. The source's incremental state is only valid for this place:
        a pipeline pointed at another file or folder starts its marks over."""
        return f"{self.destination}|{self.kind.identity(self)}|{self.dataset}"

    @property
    def concurrent_shards(self) -> bool:
        """Whether shards may load into this place at once (else they queue on its lock)."""
        return self.kind.concurrent_shards

    def check(self) -> None:
        """Refuse what cannot work, before any request: a malformed shard, an unknown or
        unconfigured destination, a DuckDB file DuckDB could not use."""
        if self.shard:
            Shard.parse(self.shard)
        self.kind.check(self)

    def check_readable(self) -> None:
        """Refuse a destination readers (report, check, sql, status) cannot open."""
        if self.destination not in readable():
            raise ConfigError(f"reading (report, check, sql, status) works on destinations "
                              f"{', '.join(readable())}, not {self.destination!r}")

    def dlt_destination(self) -> Any:
        return self.kind.factory(self)

    @property
    def file_format(self) -> str | None:
        """dlt's loader file format for this kind (Parquet files for parquet)."""
        return self.kind.file_format

    @contextmanager
    def open(self) -> Iterator[tuple[duckdb.DuckDBPyConnection, Tables]]:
        """A read-only DuckDB connection over the loaded tables (see ``Kind.open``)."""
        with self.kind.open(self) as opened:
            yield opened

    def completed_loads(self, con: duckdb.DuckDBPyConnection) -> list[tuple[str, datetime]]:
        """``(load_id, inserted_at)`` of the completed loads, newest first, through ``con``
        (from :meth:`open` or :func:`onepin_etl.analysis.connect`)."""
        return self.kind.completed_loads(self, con)

    def compact(self) -> list[Compacted]:
        """Rewrite the files to the latest version of each row (a local Parquet folder)."""
        return self.kind.compact(self)


__all__ = ["KINDS", "Compacted", "Kind", "Target", "duckdb_destination", "kind_named",
           "kind_of"]
