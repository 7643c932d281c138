"""Real servers for the shared destinations (:mod:`bench.servers`): PostgreSQL 18 and S3,
started once per session and stopped at its end; each test gets its own databases and bucket,
and the dlt configuration (``DESTINATION__…`` variables) that points at them.

These tests run in the second environment (``make test-shared``, DuckDB 1.4.4 with its
extensions from the ``duckdb-ext-*`` packages); the main suite does not collect them.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from bench.servers import S3, Postgres, postgres_server, s3_server, shared_environment

_names = itertools.count(1)


@pytest.fixture(scope="session")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Postgres]:
    with postgres_server(tmp_path_factory.mktemp("pgdata")) as server:
        yield server


@pytest.fixture(scope="session")
def s3() -> Iterator[S3]:
    with s3_server() as server:
        yield server


@dataclass(frozen=True)
class Shared:
    """One test's shared destinations: a PostgreSQL database for the postgres destination, a
    second for the lake's catalog, and a bucket for the lake's files and Parquet."""

    postgres: Postgres
    s3: S3
    database: str
    catalog: str
    bucket: str

    @property
    def parquet_url(self) -> str:
        return f"s3://{self.bucket}/parquet"


@pytest.fixture
def shared(workdir: Path, postgres: Postgres, s3: S3,
           monkeypatch: pytest.MonkeyPatch) -> Shared:
    """Fresh databases and a fresh bucket, configured the dlt way (``DESTINATION__…``)."""
    n = next(_names)
    found = Shared(postgres, s3, f"onepin_{n}", f"lake_catalog_{n}", f"onepin-{n}")
    postgres.create_database(found.database)
    postgres.create_database(found.catalog)
    s3.create_bucket(found.bucket)
    for name, value in shared_environment(postgres, s3, found.database, found.catalog,
                                          found.bucket).items():
        monkeypatch.setenv(name, value)
    return found
