"""What every table, view and column means: the data dictionary's one source of truth.

The source's tables and columns are described where their types are declared
(:mod:`onepin_source.hints`, dlt's ``description`` hints, plus rules for the column families
that grow with the data: ``result__*``, ``run_status_counts__*``, ``usage_summary__*``); the
analysis views beside their SQL (:data:`onepin_etl.analysis_sql.VIEW_DOCS`); dlt's own tables
and ``_dlt_*`` columns here. Everything that shows a meaning reads it through this module: the
comments written after each load (:mod:`onepin_etl.comments`), ``onepin-etl schema``
(:mod:`onepin_etl.schema`), the health page's column tips and the notebook.
"""

from __future__ import annotations

import re

from dlt.common.schema.typing import TColumnSchema

from onepin_etl.analysis_sql import VIEW_DOCS
from onepin_source.hints import (
    COLUMN_FAMILIES,
    OCCASIONAL_COLUMNS,
    RUN_HINTS,
    STEP_HINTS,
    TABLE_DESCRIPTIONS,
    WORKFLOW_HINTS,
)

SOURCE_COLUMNS: dict[str, dict[str, TColumnSchema]] = {
    "workflows": WORKFLOW_HINTS, "runs": RUN_HINTS, "run_steps": STEP_HINTS}

DLT_COLUMNS = {
    "_dlt_load_id": "The load that last wrote this row (_dlt_loads.load_id; a Unix timestamp "
                    "as text, so a later load sorts after an earlier one).",
    "_dlt_id": "dlt's unique id of this row.",
}

DLT_TABLES: dict[str, tuple[str, dict[str, str]]] = {
    "_dlt_loads": ("dlt's record of the loads: one row per load package completed.", {
        "load_id": "The load's id (the _dlt_load_id of the rows it wrote).",
        "schema_name": "The dlt schema loaded (onepin).",
        "status": "0 when the load completed.",
        "inserted_at": "When the load completed (UTC).",
        "schema_version_hash": "Hash of the dlt schema version the load used "
                               "(_dlt_version.version_hash).",
    }),
    "_dlt_version": ("dlt's record of the schema's versions: one row per version stored.", {
        "version": "The schema's version number.",
        "engine_version": "The version of dlt's schema format.",
        "inserted_at": "When this version was stored (UTC).",
        "schema_name": "The dlt schema (onepin).",
        "version_hash": "Hash of this schema version.",
        "schema": "The whole dlt schema as JSON (tables, columns, hints, descriptions).",
    }),
    "_dlt_pipeline_state": ("dlt's pipeline state, stored with the data: the incremental "
                            "marks a load resumes from.", {
        "version": "The state's version number.",
        "engine_version": "The version of dlt's state format.",
        "pipeline_name": "The dlt pipeline that wrote the state.",
        "state": "The state, compressed and encoded (dlt's format).",
        "created_at": "When this state was stored (UTC).",
        "version_hash": "Hash of this state version.",
    }),
}

_VARIANT = re.compile(r"^(?P<base>.+)__v_(?P<type>[a-z_]+)$")


def table_description(name: str) -> str:
    """What a table or view holds (empty for a relation that is not ours)."""
    if name in TABLE_DESCRIPTIONS:
        return TABLE_DESCRIPTIONS[name]
    if name in VIEW_DOCS:
        return "Analysis view. " + VIEW_DOCS[name].description
    if name in DLT_TABLES:
        return DLT_TABLES[name][0]
    return ""


def view_column(view: str, column: str) -> str:
    """What a view's column means, or "" when ``column`` is not one of its columns (a label
    a question gave a computed value)."""
    return VIEW_DOCS[view].columns.get(column, "") if view in VIEW_DOCS else ""


def known_columns(table: str) -> list[str]:
    """The columns described one by one, in their declared order."""
    if table in SOURCE_COLUMNS:
        return list(SOURCE_COLUMNS[table])
    if table in VIEW_DOCS:
        return list(VIEW_DOCS[table].columns)
    return list(DLT_TABLES[table][1]) if table in DLT_TABLES else []


def column_description(table: str, column: str) -> str:
    """What ``table.column`` means; a column nobody described yet (a field the API added) is
    said to be one, so a comment is never empty."""
    return _described(table, column) or (
        f"A field the Onepin API sent that this dictionary does not describe yet ({column}); "
        "loaded as sent.")


def is_described(table: str, column: str) -> bool:
    """Whether ``table.column`` has a description of its own or of its family."""
    return _described(table, column) is not None


def _described(table: str, column: str) -> str | None:
    variant = _VARIANT.match(column)
    if variant:
        base = _described(table, variant["base"])
        return base and (f"{base} Values of type {variant['type']} only: dlt's variant column "
                         f"for values that did not fit {variant['base']}'s type.")
    if column in DLT_COLUMNS:
        return DLT_COLUMNS[column]
    if table in SOURCE_COLUMNS and column in SOURCE_COLUMNS[table]:
        return SOURCE_COLUMNS[table][column].get("description")
    if table in VIEW_DOCS:
        return VIEW_DOCS[table].columns.get(column)
    if table in DLT_TABLES:
        return DLT_TABLES[table][1].get(column)
    for prefix, rule in COLUMN_FAMILIES.get(table, {}).items():
        if column.startswith(prefix):
            return rule.format(key=column[len(prefix):].replace("__", "."))
    return OCCASIONAL_COLUMNS.get(table, {}).get(column)
