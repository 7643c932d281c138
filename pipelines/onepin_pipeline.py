"""Example pipelines: small ``load_*`` functions in the dlt style. Each is run by the tests.

The key comes from ``.dlt/secrets.toml`` ([sources.onepin] api_key), SOURCES__ONEPIN__API_KEY,
ONEPIN_API_KEY or ~/.onepin/credentials; the base URL from ONEPIN_BASE_URL (default production).
"""

from __future__ import annotations

from collections.abc import Sequence

from onepin_source import onepin_source
from onepin_source.pipeline import Target, run_load


def load_all_workflows_to_duckdb(duckdb_path: str = "onepin_etl.duckdb") -> None:
    """Every workflow the key can see, incrementally, into a local DuckDB file."""
    target = Target(duckdb_path=duckdb_path)
    info = run_load(target.pipeline(), onepin_source(target_key=target.key))
    print(info)


def load_some_workflows_to_parquet(workflow_ids: Sequence[str],
                                   parquet_dir: str = "onepin_data") -> None:
    """A few workflows into Parquet files (a folder or a bucket URL such as s3://...)."""
    target = Target(destination="parquet", parquet_dir=parquet_dir)
    source = onepin_source(workflow_ids=list(workflow_ids), target_key=target.key)
    info = run_load(target.pipeline(), source,
                    file_format=target.file_format)
    print(info)


def load_with_full_refresh(duckdb_path: str = "onepin_etl.duckdb") -> None:
    """Drop this source's tables and state and load everything again."""
    target = Target(duckdb_path=duckdb_path)
    info = run_load(target.pipeline(), onepin_source(target_key=target.key), full_refresh=True)
    print(info)


if __name__ == "__main__":
    load_all_workflows_to_duckdb()
