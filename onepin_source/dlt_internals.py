"""Every part of dlt this project uses that is not dlt's documented API, in one place.

dlt is pinned to ``>=1.31,<1.32`` because of what is listed here; ``tests/test_dlt_internals.py``
checks each item and fails with its name when an upgrade changes it. Nothing else in the project
imports from ``dlt.common``, ``dlt.extract`` or ``dlt.destinations.impl`` directly.

What we rely on, and why:

- **The dict normalizer's typing rules** (``arrow_rows``): Arrow rows are typed exactly as dlt
  would type the same dict rows, using dlt's own functions: identifier normalization
  (``normalize_identifier``, ``EMPTY_KEY_IDENTIFIER``), type inference (``autodetect_sc_type``,
  ``py_type_to_sc_type``), coercion (``coerce_value``) and variant column names
  (``VARIANT_FIELD_FORMAT``).
- **Items with hints** (``batches``): a resource item wrapped by ``dlt.mark.with_hints`` arrives
  at a transformer as ``DataItemWithMeta``.
- **The Arrow extractor's hint warning** (``HINT_OVERRIDE_WARNING``, ``In resource: <name>,``):
  logged for every Arrow table whose types differ from the hints; ours differ on purpose for
  JSON columns of ``run_steps`` only, and ``batches._JsonHintFilter`` drops that one.
- **The merge job's de-duplication** (``SqlMergeFollowupJob.gen_select_from_dedup_sql``,
  ``FollowupJobRequest`` and ``DuckDbClient._create_merge_followup_jobs``): the application's
  DuckDB destination (``onepin_etl.duckdb_merge``) replaces one SQL statement of dlt's
  delete-insert merge.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dlt.common.data_types import coerce_value, py_type_to_sc_type
from dlt.common.normalizers.json.helpers import normalize_identifier
from dlt.common.normalizers.json.relational import DataItemNormalizer as RelationalNormalizer
from dlt.common.schema.utils import autodetect_sc_type
from dlt.common.typing import VARIANT_FIELD_FORMAT
from dlt.destinations.job_impl import FollowupJobRequest
from dlt.destinations.sql_jobs import SqlMergeFollowupJob
from dlt.extract.items import DataItemWithMeta

EMPTY_KEY_IDENTIFIER: str = RelationalNormalizer.EMPTY_KEY_IDENTIFIER
# A fragment of the warning dlt's ArrowExtractor logs when our column hints differ from Arrow's
# types (json columns are Arrow strings, ``id`` is not nullable): keeping ours is what we ask for.
HINT_OVERRIDE_WARNING = "several column hints were different"
# dlt adds _dlt_load_id and _dlt_id to dict rows always, to Arrow tables only with these settings.
ARROW_ROW_IDS_CONFIG = ("normalize.parquet_normalizer.add_dlt_load_id",
                        "normalize.parquet_normalizer.add_dlt_id")


if TYPE_CHECKING:
    from dlt.destinations.impl.duckdb.duck import DuckDbClient


def __getattr__(name: str) -> Any:
    """``DuckDbClient`` on first use: it imports duckdb, which the source itself never needs."""
    if name == "DuckDbClient":
        from dlt.destinations.impl.duckdb.duck import DuckDbClient

        return DuckDbClient
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "ARROW_ROW_IDS_CONFIG", "EMPTY_KEY_IDENTIFIER", "HINT_OVERRIDE_WARNING", "VARIANT_FIELD_FORMAT",
    "DataItemWithMeta", "DuckDbClient", "FollowupJobRequest", "SqlMergeFollowupJob",
    "autodetect_sc_type", "coerce_value", "normalize_identifier", "py_type_to_sc_type",
]
