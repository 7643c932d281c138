"""The application's twin of :mod:`onepin_source.dlt_internals`: every part of dlt the
application uses that is not dlt's documented API (``onepin_source.dlt_internals.PUBLIC_API``),
in one place. ``tests/test_dlt_internals.py`` checks each item against the pinned dlt.

What the application relies on, and why:

- **Destination factories by reference** (``Destination``, ``UnknownDestinationModule``,
  ``ConfigFieldMissingException``): ``--destination NAME`` is resolved the way ``dlt.pipeline``
  resolves a string, and its configuration is resolved (or refused in one line) before a load.
- **dlt's working folder** (``get_dlt_pipelines_dir``): where the lock files go by default.
- **Load results and attaching** (``LoadInfo``, ``CannotRestorePipelineException``): the type
  ``pipeline.run`` returns, and what ``dlt.attach`` raises for a pipeline never run.
- **The merge job's de-duplication** (``SqlMergeFollowupJob.gen_select_from_dedup_sql``,
  ``FollowupJobRequest``, ``DuckDbClient._create_merge_followup_jobs``, ``PreparedTableSchema``,
  ``TSortOrder``): the DuckDB destination (``onepin_etl.destinations.duckdb_merge``) replaces one
  SQL statement of dlt's delete-insert merge.
- **Where a setting came from** (``ConfigProvider``): ``doctor`` asks dlt's providers in order
  (environment, ``.dlt/secrets.toml``, ``.dlt/config.toml``) which one holds each setting.
- **Destination capabilities** (``Destination.capabilities``, ``adjust_capabilities``,
  ``DestinationCapabilitiesContext``): the DuckDB destination resolves them once a load
  (``onepin_etl.destinations.capabilities_once``), which holds while dlt's ``duckdb`` keeps the
  base ``adjust_capabilities`` (it ignores the configuration).
- **PostgreSQL's DDL** (``PostgresClient.initialize_storage``, ``maybe_ddl_transaction``): the
  PostgreSQL destination (``onepin_etl.destinations.postgres_ddl``) takes an advisory lock
  around dlt's schema creation and updates, so concurrent shards do not race.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dlt.common.configuration.exceptions import ConfigFieldMissingException
from dlt.common.configuration.providers.provider import ConfigProvider
from dlt.common.destination import Destination, DestinationCapabilitiesContext
from dlt.common.destination.exceptions import UnknownDestinationModule
from dlt.common.destination.typing import PreparedTableSchema
from dlt.common.pipeline import LoadInfo, get_dlt_pipelines_dir
from dlt.common.schema.typing import TSortOrder
from dlt.destinations.impl.duckdb.duck import DuckDbClient
from dlt.destinations.job_impl import FollowupJobRequest
from dlt.destinations.sql_jobs import SqlMergeFollowupJob
from dlt.pipeline.exceptions import CannotRestorePipelineException

if TYPE_CHECKING:
    from dlt.destinations.impl.postgres.postgres import PostgresClient


def __getattr__(name: str) -> Any:
    """``PostgresClient`` on first use: it imports psycopg2, which only the ``[shared]`` extra
    installs."""
    if name == "PostgresClient":
        from dlt.destinations.impl.postgres.postgres import PostgresClient

        return PostgresClient
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

__all__ = [
    "CannotRestorePipelineException", "ConfigFieldMissingException", "ConfigProvider",
    "Destination", "DestinationCapabilitiesContext",
    "DuckDbClient", "FollowupJobRequest", "LoadInfo", "PostgresClient", "PreparedTableSchema",
    "SqlMergeFollowupJob", "TSortOrder", "UnknownDestinationModule", "get_dlt_pipelines_dir",
]
