"""Which parts of dlt are its documented API (:data:`PUBLIC_API`), and every part the source uses
that is not, in one place. The application's own reliances are in ``onepin_etl.dlt_internals``.

dlt is pinned to ``>=1.31,<1.32`` because of what is listed here; ``tests/test_dlt_internals.py``
checks each item and fails with its name when an upgrade changes it, and ``tests/test_layers.py``
checks every ``dlt`` import in the repository against :data:`PUBLIC_API` (only the two fence
modules may import anything else).

What the source relies on, and why:

- **The dict normalizer's typing rules** (``arrow_rows``): Arrow rows are typed exactly as dlt
  would type the same dict rows, using dlt's own functions: identifier normalization
  (``normalize_identifier``, ``EMPTY_KEY_IDENTIFIER``), type inference (``autodetect_sc_type``,
  ``py_type_to_sc_type``), coercion (``coerce_value``), variant column names
  (``VARIANT_FIELD_FORMAT``), and dlt's JSON encoder (``json``) for json columns.
- **Column hints' types** (``hints``, ``arrow_rows``): ``TColumnSchema`` and ``TDataType``.
- **Items with hints** (``batches``): a resource item wrapped by ``dlt.mark.with_hints`` arrives
  at a transformer as ``DataItemWithMeta``.
- **A compiled JSON path** (``client``): the ``OffsetPaginator`` compiles a ``total_path`` given
  as text with a new jsonpath parser each time it is made (one per workflow listed, ~5% of a
  first load's CPU); ``compile_path`` compiles it once, and the paginator takes it as it is.
- **The Arrow extractor's hint warning** (``HINT_OVERRIDE_WARNING``, ``In resource: <name>,``):
  logged for every Arrow table whose types differ from the hints; ours differ on purpose for
  JSON columns of ``run_steps`` only, and ``batches._JsonHintFilter`` drops that one.
"""

from __future__ import annotations

from dlt.common.data_types import coerce_value, py_type_to_sc_type
from dlt.common.json import json
from dlt.common.jsonpath import compile_path
from dlt.common.normalizers.json.helpers import normalize_identifier
from dlt.common.normalizers.json.relational import DataItemNormalizer as RelationalNormalizer
from dlt.common.schema.typing import TColumnSchema, TDataType
from dlt.common.schema.utils import autodetect_sc_type
from dlt.common.typing import VARIANT_FIELD_FORMAT
from dlt.extract.items import DataItemWithMeta

# dlt's documented API: the modules its user guides (dlthub.com/docs: general usage, walkthroughs,
# running in production) import from, and the names they import (None: any name). Importing
# these is fine anywhere; anything else goes through a fence module.
PUBLIC_API: dict[str, frozenset[str] | None] = {
    "dlt": None,  # dlt.pipeline, dlt.source, dlt.resource, dlt.Schema, dlt.config, ...
    "dlt.destinations": None,  # destination factories (general-usage/destination)
    "dlt.sources": frozenset({"DltResource", "DltSource"}),  # general-usage/source
    "dlt.sources.helpers.requests": None,  # general-usage/http/requests
    "dlt.sources.helpers.rest_client": None,  # general-usage/http/rest-client
    "dlt.sources.helpers.rest_client.auth": None,
    "dlt.sources.helpers.rest_client.paginators": None,
    "dlt.sources.rest_api": None,  # dlt-ecosystem/verified-sources/rest_api
    "dlt.pipeline.exceptions": frozenset({"PipelineStepFailed"}),  # running-in-production
}

EMPTY_KEY_IDENTIFIER: str = RelationalNormalizer.EMPTY_KEY_IDENTIFIER
# A fragment of the warning dlt's ArrowExtractor logs when our column hints differ from Arrow's
# types (json columns are Arrow strings, ``id`` is not nullable): keeping ours is what we ask for.
HINT_OVERRIDE_WARNING = "several column hints were different"
# dlt adds _dlt_load_id and _dlt_id to dict rows always, to Arrow tables only with these settings.
ARROW_ROW_IDS_CONFIG = ("normalize.parquet_normalizer.add_dlt_load_id",
                        "normalize.parquet_normalizer.add_dlt_id")

__all__ = [
    "ARROW_ROW_IDS_CONFIG", "EMPTY_KEY_IDENTIFIER", "HINT_OVERRIDE_WARNING", "PUBLIC_API",
    "VARIANT_FIELD_FORMAT", "DataItemWithMeta", "TColumnSchema", "TDataType",
    "autodetect_sc_type", "coerce_value", "compile_path", "json", "normalize_identifier",
    "py_type_to_sc_type",
]
