"""Example pipelines: small ``load_*`` functions in the dlt style. Each is run by the tests.

They load the way the CLI and the README do, through :func:`onepin_etl.load`. The key comes from
``.dlt/secrets.toml`` ([sources.onepin] api_key), SOURCES__ONEPIN__API_KEY, ONEPIN_API_KEY or
~/.onepin/credentials; the base URL from ONEPIN_BASE_URL (default production).
"""

from __future__ import annotations

from collections.abc import Sequence

from onepin_etl import Target, load


def load_all_workflows_to_duckdb(duckdb_path: str = "onepin_etl.duckdb") -> None:
    """Every workflow the key can see, incrementally, into a local DuckDB file."""
    print(load(Target(duckdb_path=duckdb_path)))


def load_some_workflows_to_parquet(workflow_ids: Sequence[str],
                                   parquet_dir: str = "onepin_data") -> None:
    """A few workflows into Parquet files (a folder or a bucket URL such as s3://...)."""
    print(load(Target(destination="parquet", parquet_dir=parquet_dir),
               workflow_ids=list(workflow_ids)))


def load_with_full_refresh(duckdb_path: str = "onepin_etl.duckdb") -> None:
    """Drop this source's tables and state and load everything again."""
    print(load(Target(duckdb_path=duckdb_path), full_refresh=True))


if __name__ == "__main__":
    load_all_workflows_to_duckdb()
