"""Column hints and descriptions of the tables the source loads.

Types: columns that can be all-null in a first load still exist from it on. Names are
dlt-normalized (snake_case, ``__`` for nesting). Without a hint dlt drops a column that received
only nulls, and an analyst's query of ``run_steps.error`` would fail until the first failure is
loaded.

Descriptions: the one place that says what each column means (dlt's ``description`` hint, kept
in the dlt schema). ``onepin_etl.descriptions`` builds the data dictionary and the destinations'
comments from these, and from the rules for the column families that grow with the data
(``result__*``, ``run_status_counts__*``, ``usage_summary__*``).
"""

from __future__ import annotations

from typing import Any

from onepin_source.dlt_internals import TColumnSchema, TDataType
from onepin_source.settings import RUN_STATUSES


def _hints(columns: dict[str, tuple[TDataType, str]]) -> dict[str, TColumnSchema]:
    return {name: {"data_type": data_type, "nullable": name != "id", "description": text}
            for name, (data_type, text) in columns.items()}


TABLE_DESCRIPTIONS = {
    "workflows": "One row per Onepin workflow, as the workflow list shows it now (without its "
                 "definition). Merged on id: a load updates a workflow whose row changed.",
    "runs": "One row per workflow run, as the run list shows it now, plus its workflow_id and "
            "durations. Merged on id: an open run's row is updated until it ends.",
    "run_steps": "One row per node execution attempt of a run (a node retried has one row per "
                 "iteration). A run's steps are replaced as a unit whenever the run moved; "
                 "key (run_id, id).",
}

STATUS_COUNTS = "run_status_counts__"

# Columns whose names the data decides, by prefix: each member's description is the rule's,
# with the member's own key filled in.
COLUMN_FAMILIES: dict[str, dict[str, str]] = {
    "run_steps": {
        "result__": "result.{key} of the step: a key of its result payload (node-specific "
                    "output, flattened: recordsProcessed -> result__records_processed, "
                    "nested keys joined with __, lists kept as JSON).",
    },
    "runs": {
        "usage_summary__": "usage_summary.{key} of the run: a usage counter the API reports "
                           "(free-form, e.g. tokens_used, api_calls).",
    },
    "workflows": {
        STATUS_COUNTS: "Runs of the workflow whose status is {key}, over all time (the "
                       "workflow list's run_status_counts).",
    },
}

WORKFLOW_HINTS = _hints({
    "id": ("text", "Workflow id (UUID)."),
    "user_id": ("text", "Id of the user who owns the workflow."),
    "name": ("text", "Workflow name as shown in Onepin."),
    "name_source": ("text", "Where the name came from: placeholder, generated or user."),
    "description": ("text", "The workflow's description, if its owner wrote one."),
    "created_at": ("timestamp", "When the workflow was created (UTC)."),
    "updated_at": ("timestamp", "When the workflow was last changed (UTC)."),
    "runs_count": ("bigint", "Runs of the workflow over all time, as the workflow list "
                             "counts them (the sum of the run_status_counts__* columns)."),
    "last_run_at": ("timestamp", "When the workflow's newest run was created (UTC)."),
    "last_run_status": ("text", "Status of the workflow's newest run (pending, running, "
                                "paused, completed, failed, cancelled)."),
    **{f"{STATUS_COUNTS}{s}": ("bigint", COLUMN_FAMILIES["workflows"][STATUS_COUNTS].format(
        key=s)) for s in RUN_STATUSES},
})

RUN_HINTS = _hints({
    "id": ("text", "Run id (UUID)."),
    "workflow_id": ("text", "The run's workflow (workflows.id)."),
    "status": ("text", "Run status: pending, running, paused (open), completed, failed, "
                       "cancelled (terminal). A run pausing is running with "
                       "pause_requested_at set."),
    "run_number": ("bigint", "The run's number within its workflow, from 1."),
    "created_at": ("timestamp", "When the run was created, i.e. queued (UTC)."),
    "started_at": ("timestamp", "When the run started executing (UTC); null while "
                                "pending."),
    "completed_at": ("timestamp", "When the run ended (UTC); null while open."),
    "pause_requested_at": ("timestamp", "When a pause was asked for (UTC)."),
    "paused_at": ("timestamp", "When the run last paused (UTC)."),
    "paused_ms": ("bigint", "Milliseconds the run spent paused in all."),
    "pause_reason": ("text", "Why the run paused: user, provider_outage, "
                             "provider_rate_limited, provider_billing, ..."),
    "pause_error": ("text", "The error that paused the run, if a provider failed."),
    "total_nodes": ("bigint", "Nodes in the run's workflow graph."),
    "total_steps": ("bigint", "Steps (node execution attempts) the run has so far."),
    "finished_steps": ("bigint", "Steps that have ended (rows, retries included)."),
    "finished_nodes": ("bigint", "Nodes whose latest attempt has ended."),
    "credits": ("bigint", "Credits debited for the run (overage excluded)."),
    "output_line_count": ("bigint", "Lines the run delivered."),
    "delivered_audio_ms": ("bigint", "Milliseconds of audio the run delivered."),
    "triggered_by__user_id": ("text", "Id of the user who started the run."),
    "triggered_by__user_name": ("text", "Name of the user who started the run."),
    "duration_ms": ("bigint", "completed_at - started_at in milliseconds, paused time "
                              "included; null until the run has ended."),
    "active_duration_ms": ("bigint", "duration_ms - paused_ms: the time the run was working; "
                                     "null until the run has ended."),
})

STEP_HINTS = _hints({
    "id": ("text", "Step id (UUID; if the API sent none: the run id, #, the step's position)."),
    "workflow_id": ("text", "The step's workflow (workflows.id)."),
    "run_id": ("text", "The step's run (runs.id)."),
    "node_id": ("text", "The node of the workflow graph this step executed."),
    "node_type": ("text", "The node's type (e.g. source_csv, generator_voice, validator_wer)."),
    "node_display_name": ("text", "The node's name in the run's definition snapshot."),
    "status": ("text", "Step status: pending, running, completed, failed, cancelled, skipped, "
                       "... (as sent)."),
    "iteration": ("bigint", "Attempt number of the node within the run, from 1; > 1 is a "
                            "retry (a validator's regeneration, a resume)."),
    "started_at": ("timestamp", "When the step started (UTC)."),
    "completed_at": ("timestamp", "When the step ended (UTC); null while it runs."),
    "duration_ms": ("bigint", "completed_at - started_at in milliseconds (a step has no "
                              "paused time); null until the step has ended."),
    "has_result": ("bool", "Whether the step stored a result (its result__* columns)."),
    "active_ports": ("json", "Output ports the step activated (JSON list of names)."),
    "locales": ("json", "Locales of the lines the step processed (JSON list, sorted); null for "
                        "nodes without line input."),
    "pause_reason": ("text", "Why the run paused at this step (cancelled steps), e.g. "
                             "provider_outage."),
    "pause_error": ("text", "The provider error that paused the run at this step."),
    "error": ("text", "The step's error message; null unless it failed."),
})

# Columns that exist only when the data brings them (no type hint: it would create them).
OCCASIONAL_COLUMNS: dict[str, dict[str, str]] = {
    "run_steps": {"result": "The step's result when it is not an object (a list or a string), "
                            "as JSON or text."},
}


# The resources' table hints, shared by the source and by code that feeds the same tables.
# A run's steps are replaced as a unit when the run is fetched again: delete-insert on the merge
# key run_id. The primary key is (run_id, id), not id alone: dlt deletes rows matching the primary
# key OR the merge key, and "d.id = s.id OR d.run_id = s.run_id" is a join DuckDB cannot hash
# (5,000 steps into a 1M-step table took 8.6 s to load), while "(run_id AND id) OR run_id" it
# reduces to a hash join on run_id (0.55 s: the "5,000 steps" row of docs/performance.md). A
# primary key is still needed: dlt dedups the staged rows by it,
# and a load job that ran but was killed before dlt marked it done runs again on resume.
RUN_STEPS_TABLE: dict[str, Any] = {
    "name": "run_steps", "primary_key": ("run_id", "id"), "merge_key": "run_id",
    "max_table_nesting": 0, "columns": STEP_HINTS,
    "write_disposition": {"disposition": "merge", "strategy": "delete-insert"},
}
