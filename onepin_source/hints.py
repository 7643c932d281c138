"""Column type hints: columns that can be all-null in a first load still exist from it on.

Names are dlt-normalized (snake_case, ``__`` for nesting). Without a hint dlt drops a column
that received only nulls, and an analyst's query of ``run_steps.error`` would fail until the
first failure is loaded.
"""

from __future__ import annotations

from typing import Any

from onepin_source.dlt_internals import TColumnSchema, TDataType
from onepin_source.settings import RUN_STATUSES


def _hints(types: dict[str, TDataType]) -> dict[str, TColumnSchema]:
    return {name: {"data_type": data_type, "nullable": name != "id"}
            for name, data_type in types.items()}


WORKFLOW_HINTS = _hints({
    "id": "text", "user_id": "text", "name": "text", "name_source": "text",
    "description": "text", "created_at": "timestamp", "updated_at": "timestamp",
    "runs_count": "bigint", "last_run_at": "timestamp", "last_run_status": "text",
    **{f"run_status_counts__{s}": "bigint" for s in RUN_STATUSES},
})

RUN_HINTS = _hints({
    "id": "text", "workflow_id": "text", "status": "text", "run_number": "bigint",
    "created_at": "timestamp", "started_at": "timestamp", "completed_at": "timestamp",
    "pause_requested_at": "timestamp", "paused_at": "timestamp", "paused_ms": "bigint",
    "pause_reason": "text", "pause_error": "text", "total_nodes": "bigint",
    "total_steps": "bigint", "finished_steps": "bigint", "finished_nodes": "bigint",
    "credits": "bigint", "output_line_count": "bigint", "delivered_audio_ms": "bigint",
    "triggered_by__user_id": "text", "triggered_by__user_name": "text",
    "duration_ms": "bigint", "active_duration_ms": "bigint",
})

STEP_HINTS = _hints({
    "id": "text", "workflow_id": "text", "run_id": "text", "node_id": "text",
    "node_type": "text", "node_display_name": "text", "status": "text", "iteration": "bigint",
    "started_at": "timestamp", "completed_at": "timestamp", "duration_ms": "bigint",
    "has_result": "bool", "active_ports": "json", "locales": "json", "pause_reason": "text",
    "pause_error": "text", "error": "text",
})


# The resources' table hints, shared by the source and by code that feeds the same tables.
# A run's steps are replaced as a unit when the run is fetched again: delete-insert on the merge
# key run_id. The primary key is (run_id, id), not id alone: dlt deletes rows matching the primary
# key OR the merge key, and "d.id = s.id OR d.run_id = s.run_id" is a join DuckDB cannot hash
# (5,000 steps into a 1M-step table took 8.6 s to load), while "(run_id AND id) OR run_id" it
# reduces to a hash join on run_id (0.55 s: the benchmark's "5,000 steps" row, README). A
# primary key is still needed: dlt dedups the staged rows by it,
# and a load job that ran but was killed before dlt marked it done runs again on resume.
RUN_STEPS_TABLE: dict[str, Any] = {
    "name": "run_steps", "primary_key": ("run_id", "id"), "merge_key": "run_id",
    "max_table_nesting": 0, "columns": STEP_HINTS,
    "write_disposition": {"disposition": "merge", "strategy": "delete-insert"},
}
