"""Where a load goes: a DuckDB file (the default), a Parquet folder or bucket, a DuckLake or a
PostgreSQL database (shared destinations, :mod:`onepin_etl.remote`), or any other dlt
destination; the identity of that place for the source's incremental state; and the shard."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from dlt.common.pipeline import get_dlt_pipelines_dir

from onepin_etl import remote
from onepin_etl.duckdb_merge import KeyDedupDuckDb
from onepin_etl.settings import (
    DEFAULT_DATASET,
    DEFAULT_DUCKDB_PATH,
    DEFAULT_PARQUET_DIR,
    DEFAULT_PIPELINE_NAME,
    DUCKDB_MEMORY_LIMIT,
)
from onepin_source.errors import ConfigError
from onepin_source.shards import Shard

READABLE = ("duckdb", "parquet", *remote.SHARED_DESTINATIONS)


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
    def name(self) -> str:
        """The pipeline's name: each shard has its own, and so its own incremental state."""
        if self.pipeline_name:
            name = self.pipeline_name
        elif self.destination == "duckdb":
            name = DEFAULT_PIPELINE_NAME
        else:
            name = f"{DEFAULT_PIPELINE_NAME}_{self.destination}"
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
        """The file, folder or destination name, as a person would recognise it."""
        if self.destination == "duckdb":
            return self.duckdb_path
        if self.destination == "parquet":
            return self.parquet_dir
        if self.destination in remote.SHARED_DESTINATIONS:
            return remote.location(self.destination, self.dataset)
        return self.destination

    @property
    def working_dir(self) -> Path:
        """dlt's folder for this pipeline's working folders (``pipelines_dir``)."""
        return Path(self.pipelines_dir or get_dlt_pipelines_dir()).absolute()

    @property
    def local_files(self) -> Path | None:
        """The DuckDB file or local Parquet folder written, or None for a remote destination."""
        if self.destination == "duckdb":
            return Path(self.duckdb_path)
        if self.destination == "parquet" and "://" not in self.parquet_dir:
            return Path(self.parquet_dir)
        return None

    def where(self) -> dict[str, Any]:
        """Where readers (``analysis.connect``: report, check, sql, status) find the data."""
        if self.destination == "duckdb":
            return {"duckdb_path": self.duckdb_path, "dataset": self.dataset}
        if self.destination == "parquet":
            return {"parquet_dir": self.parquet_dir, "dataset": self.dataset}
        if self.destination in remote.SHARED_DESTINATIONS:
            return {"destination": self.destination, "dataset": self.dataset}
        raise ConfigError(f"reading (report, check, sql, status) works on --destination "
                          f"{', '.join(READABLE)}, not {self.destination!r}")

    @property
    def key(self) -> str:
        """Where the data goes. The source's incremental state is only valid for this place:
        a pipeline pointed at another file or folder starts its marks over."""
        if self.destination == "duckdb":
            location = str(Path(self.duckdb_path).absolute())
        elif self.destination == "parquet":
            location = self.parquet_dir if "://" in self.parquet_dir else \
                str(Path(self.parquet_dir).absolute())
        elif self.destination in remote.SHARED_DESTINATIONS:
            location = self.location
        else:
            location = ""
        return f"{self.destination}|{location}|{self.dataset}"

    def check(self) -> None:
        """Refuse what cannot work, before any request: a DuckDB file whose stem equals the
        dataset name (DuckDB cannot tell them apart: "Ambiguous reference to catalog or
        schema") or in a folder that does not exist."""
        if self.shard:
            Shard.parse(self.shard)  # a malformed --shard is a usage error, before any request
        if self.destination not in ("duckdb", "parquet"):
            _check_dlt_destination(self.destination)
        if self.destination in remote.SHARED_DESTINATIONS:
            remote.configuration(self.destination, self.dataset)
        if self.destination != "duckdb":
            return
        path = Path(self.duckdb_path)
        if path.stem == self.dataset:
            raise ConfigError(f"DuckDB file {self.duckdb_path!r} has the same name as the dataset "
                              f"{self.dataset!r}, which DuckDB cannot tell apart; choose another "
                              "--duckdb-path or --dataset")
        if not path.absolute().parent.is_dir():
            raise ConfigError(f"folder {str(path.absolute().parent)!r} of --duckdb-path does not "
                              "exist; create it or choose another path")

    def dlt_destination(self) -> Any:
        if self.destination == "duckdb":
            return duckdb_destination(self.duckdb_path)
        if self.destination == "parquet":
            url = self.parquet_dir
            if "://" not in url:
                url = str(Path(url).absolute())
            return remote.factory("filesystem", bucket_url=url)
        return remote.factory(self.destination, staging_layout=self.staging_layout)

    @property
    def file_format(self) -> str | None:
        """Parquet files for the parquet destination (dlt's filesystem default is JSONL)."""
        return "parquet" if self.destination == "parquet" else None


def _check_dlt_destination(name: str) -> None:
    """Any other destination must be one dlt knows (by type, or by name configured in .dlt/)."""
    from dlt.common.destination import Destination
    from dlt.common.destination.exceptions import UnknownDestinationModule

    try:
        Destination.from_reference(name)
    except UnknownDestinationModule:
        raise ConfigError(f"unknown destination {name!r}: use one of {', '.join(READABLE)} "
                          "(duckdb is the default), or the name of another dlt destination"
                          ) from None


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
