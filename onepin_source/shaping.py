"""Row shaping: API objects to table rows (flattening, ids, durations). Pure functions."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from onepin_source.settings import TERMINAL_RUN_STATUSES

SEP = "__"  # dlt's path separator for flattened columns
# Run Get/Status carry these on top of the list item; runs rows keep the list item's shape
# so that a run re-read by id and a run listed look the same in the table.
RUN_DETAIL_ONLY = frozenset({"token_cost", "updated_at", "held_nodes", "error", "has_export",
                             "credits_absorbed", "definition_snapshot", "public_share_id",
                             "shared_at"})
NULLABLE_OBJECTS = frozenset({"usage_summary", "triggered_by"})


def parse_ts(value: Any) -> datetime | None:
    """Parse an API timestamp (ISO-8601, any offset); None when absent or unparseable."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)  # Python 3.11+ reads "Z" and any offset
    except ValueError:
        return None
    return parsed if parsed.tzinfo else None


def duration_ms(start: Any, end: Any) -> int | None:
    """``end - start`` in whole milliseconds; None while either is missing."""
    started, completed = parse_ts(start), parse_ts(end)
    if started is None or completed is None:
        return None
    return round((completed - started).total_seconds() * 1000)


def flatten(record: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Flatten nested dicts into ``a__b`` keys; lists and scalars stay values.

    dlt then snake_cases the names (``result__recordsProcessed`` -> ``result__records_processed``)
    and, with ``max_table_nesting=0``, stores lists as JSON in one column (no child tables).
    """
    flat: dict[str, Any] = {}
    _flatten_into(flat, record, prefix, skip_none=False)
    return flat


def _flatten_into(flat: dict[str, Any], record: dict[str, Any], prefix: str, *,
                  skip_none: bool) -> None:
    for key, value in record.items():
        if isinstance(value, dict) and value:
            _flatten_into(flat, value, f"{prefix}{key}{SEP}", skip_none=skip_none)
        elif value is not None or not skip_none:
            flat[prefix + key] = value


def workflow_row(item: dict[str, Any]) -> dict[str, Any]:
    """A workflows row: the list item without the (optional, large) graph definition."""
    return flatten({k: v for k, v in item.items() if k != "definition"})


def run_row(item: dict[str, Any], workflow_id: str) -> dict[str, Any]:
    """A runs row: list-item fields + ``workflow_id``, ``duration_ms``, ``active_duration_ms``."""
    # Objects that are null (usage_summary of a pending run) have no columns to fill.
    row = {k: v for k, v in item.items()
           if k not in RUN_DETAIL_ONLY and not (v is None and k in NULLABLE_OBJECTS)}
    row["workflow_id"] = workflow_id
    total = duration_ms(item.get("started_at"), item.get("completed_at"))
    row["duration_ms"] = total
    paused = item.get("paused_ms")
    row["active_duration_ms"] = (total - (paused if isinstance(paused, int) else 0)
                                 if total is not None else None)
    return flatten(row)


def step_row(item: Any, workflow_id: str, run_id: str, position: int = 0) -> dict[str, Any]:
    """A run_steps row: the step plus ``workflow_id``, ``run_id``, ``duration_ms``, ``result__*``.

    A ``result`` that is not an object (a list, a string) is kept as-is in ``result``; a step
    without an ``id`` gets ``<run id>#<position>`` (``id`` is never null), and a step
    that is not even an object is kept whole in ``result``. (One pass: this runs for every step.)
    """
    if not isinstance(item, dict):
        item = {"result": item}
    flat: dict[str, Any] = {}
    result = None
    for key, value in item.items():
        if key == "result":
            result = value
        elif isinstance(value, dict) and value:
            _flatten_into(flat, value, key + SEP, skip_none=False)
        else:
            flat[key] = value
    if flat.get("id") is None:
        flat["id"] = f"{run_id}#{position}"
    flat["workflow_id"] = workflow_id
    flat["run_id"] = run_id
    flat["duration_ms"] = duration_ms(item.get("started_at"), item.get("completed_at"))
    if isinstance(result, dict):
        # A null leaf is the same as an absent key in a column; dropping it spares dlt's
        # "column received no data" warning for keys that are null everywhere.
        _flatten_into(flat, result, "result" + SEP, skip_none=True)
    elif result is not None:
        flat["result"] = result
    return flat


def is_open(run: dict[str, Any]) -> bool:
    """Whether the run may still change (anything but completed/failed/cancelled)."""
    return run.get("status") not in TERMINAL_RUN_STATUSES
