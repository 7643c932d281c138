"""The analysis views, in DuckDB SQL, in one place (PostgreSQL gets them through sqlglot:
:mod:`onepin_etl.postgres_views`; keep to SQL both speak, ``max`` rather than ``any_value``).

Every view reads three base relations, named by placeholders: ``{workflows}``, ``{runs}`` and
``{steps}`` (and ``{step_durations}``, the first view). Over a DuckDB dataset they are the
loaded tables; over Parquet (append-only files
per load) they are the latest loaded version of each workflow, run and run's steps, so both
destinations give identical answers.

Definitions (docs/architecture.md, matching Onepin's Runs Summary):
- step ``duration_ms`` = completed_at - started_at; percentiles over completed steps,
  interpolated linearly (DuckDB ``quantile_cont``, numpy's default);
- failure rate = failed / (completed + failed); cancelled is reported, not counted;
- run pass rate = completed / (completed + failed); average duration = mean active duration
  (duration - paused) of completed runs;
- retry = a step with iteration > 1; flaky = a node in a run with a failed iteration followed by
  a completed one.
"""

from __future__ import annotations

from typing import NamedTuple

from onepin_source.settings import TERMINAL_RUN_STATUSES


class ViewDoc(NamedTuple):
    """What a view is for and what each of its columns means (the data dictionary, the
    comments in the destinations: :mod:`onepin_etl.descriptions`)."""

    description: str
    columns: dict[str, str]


_TERMINAL = ", ".join(f"'{status}'" for status in sorted(TERMINAL_RUN_STATUSES))

STEP_DURATIONS = """
select s.id as step_id, s.workflow_id, w.name as workflow_name, s.run_id, r.run_number,
       r.status as run_status, r.created_at as run_created_at, s.node_id, s.node_type,
       s.node_display_name, s.iteration, s.status, s.started_at, s.completed_at,
       s.duration_ms, coalesce(s.iteration, 1) > 1 as is_retry, s.error
from {steps} s
left join {runs} r on r.id = s.run_id
left join {workflows} w on w.id = s.workflow_id
"""

STEP_DURATIONS_DOC = ViewDoc(
    "One row per step (node execution attempt) with its run and workflow: the base of the "
    "other views.", {
        "step_id": "Step id (run_steps.id).",
        "workflow_id": "The step's workflow (workflows.id).",
        "workflow_name": "The workflow's name.",
        "run_id": "The step's run (runs.id).",
        "run_number": "The run's number within its workflow.",
        "run_status": "The run's status (pending, running, paused, completed, failed, "
                      "cancelled).",
        "run_created_at": "When the run was created (UTC): the time the trend views group by.",
        "node_id": "The node of the workflow graph this step executed.",
        "node_type": "The node's type.",
        "node_display_name": "The node's name in the run's definition snapshot.",
        "iteration": "Attempt number of the node within the run, from 1.",
        "status": "Step status (completed, failed, cancelled, running, pending, ...).",
        "started_at": "When the step started (UTC).",
        "completed_at": "When the step ended (UTC); null while it runs.",
        "duration_ms": "completed_at - started_at in milliseconds; null until the step ended.",
        "is_retry": "True when iteration > 1: the node had run before in this run.",
        "error": "The step's error message; null unless it failed.",
    })

_STATS = """
with steps as (select * from {step_durations}),
flaky as (
    select {keys}, run_id
    from steps
    group by {keys}, node_id, run_id
    having max(iteration) filter (where status = 'completed')
         > min(iteration) filter (where status = 'failed')
),
errors as (
    select {keys}, error, count(*) as n,
           row_number() over (partition by {keys} order by count(*) desc, error) as rank
    from steps where error is not null
    group by {keys}, error
)
select {keys_select},
       count(*) as executions,
       count(*) filter (where status = 'completed') as completed,
       count(*) filter (where status = 'failed') as failed,
       count(*) filter (where status = 'cancelled') as cancelled,
       count(*) filter (where status = 'failed')
         / nullif(count(*) filter (where status in ('completed', 'failed')), 0) as failure_rate,
       quantile_cont(duration_ms, 0.5) filter (where status = 'completed') as p50_ms,
       quantile_cont(duration_ms, 0.9) filter (where status = 'completed') as p90_ms,
       quantile_cont(duration_ms, 0.95) filter (where status = 'completed') as p95_ms,
       quantile_cont(duration_ms, 0.99) filter (where status = 'completed') as p99_ms,
       avg(duration_ms) filter (where status = 'completed') as mean_ms,
       max(duration_ms) filter (where status = 'completed') as max_ms,
       count(*) filter (where is_retry) as retries,
       (select count(*) from flaky f where {flaky_join}) as flaky,
       max(coalesce(completed_at, started_at)) filter (where status = 'failed')
         as last_failure_at,
       (select e.error from errors e where {errors_join} and e.rank = 1) as top_error
from steps s
group by {keys_group}
"""


def _stats(keys: list[str], extra: list[str]) -> str:
    # Leaves the base-relation placeholders for create_views to fill.
    return _STATS.replace("{step_durations}", "{{step_durations}}").format(
        keys=", ".join(keys),
        keys_select=", ".join([f"s.{k}" for k in keys] + extra),
        keys_group=", ".join(f"s.{k}" for k in keys),
        flaky_join=" and ".join(f"f.{k} = s.{k}" for k in keys),
        errors_join=" and ".join(f"e.{k} = s.{k}" for k in keys),
    )


NODE_STATS = _stats(["workflow_id", "node_id"],
                    ["max(s.workflow_name) as workflow_name",
                     "max(s.node_type) as node_type",
                     "max(s.node_display_name) as node_display_name"])
NODE_TYPE_STATS = _stats(["node_type"], [])

_STATS_COLUMNS = {
    "executions": "Steps (execution attempts), any status.",
    "completed": "Steps that completed.",
    "failed": "Steps that failed.",
    "cancelled": "Steps cancelled (reported, not counted in failure_rate).",
    "failure_rate": "failed / (completed + failed), 0 to 1; null without such steps.",
    "p50_ms": "Median duration_ms of completed steps (interpolated).",
    "p90_ms": "90th percentile duration_ms of completed steps (interpolated).",
    "p95_ms": "95th percentile duration_ms of completed steps (interpolated).",
    "p99_ms": "99th percentile duration_ms of completed steps (interpolated).",
    "mean_ms": "Mean duration_ms of completed steps.",
    "max_ms": "Longest duration_ms of a completed step.",
    "retries": "Steps with iteration > 1 (retries), any status.",
    "flaky": "Runs in which a node failed and a later iteration of it completed.",
    "last_failure_at": "When the latest failed step ended (or started, if it has no end), UTC.",
    "top_error": "The most frequent error message (ties: the first alphabetically).",
}

NODE_STATS_DOC = ViewDoc(
    "Per node of each workflow: executions by status, failure rate, duration percentiles of "
    "completed steps, retries, flaky runs and the most frequent error.", {
        "workflow_id": "The workflow (workflows.id).",
        "node_id": "The node of the workflow graph.",
        "workflow_name": "The workflow's name.",
        "node_type": "The node's type.",
        "node_display_name": "The node's name.",
        **_STATS_COLUMNS,
    })

NODE_TYPE_STATS_DOC = ViewDoc(
    "Per node type across all workflows: the same measures as node_stats.",
    {"node_type": "The node type.", **_STATS_COLUMNS})

WORKFLOW_SUMMARY = """
select r.workflow_id, max(w.name) as workflow_name,
       count(*) as total_runs,
       count(*) filter (where r.status = 'completed') as completed,
       count(*) filter (where r.status = 'failed') as failed,
       count(*) filter (where r.status = 'cancelled') as cancelled,
       count(*) filter (where r.status = 'pending') as pending,
       count(*) filter (where r.status = 'running') as running,
       count(*) filter (where r.status = 'paused') as paused,
       count(*) filter (where r.status = 'completed')
         / nullif(count(*) filter (where r.status in ('completed', 'failed')), 0) as pass_rate,
       avg(r.active_duration_ms) filter (where r.status = 'completed') / 1000
         as average_duration_seconds,
       quantile_cont(r.active_duration_ms, 0.5) filter (where r.status = 'completed')
         as p50_active_ms,
       quantile_cont(r.active_duration_ms, 0.95) filter (where r.status = 'completed')
         as p95_active_ms,
       max(r.created_at) as last_run_at
from {runs} r left join {workflows} w on w.id = r.workflow_id
group by r.workflow_id
"""

_RUN_RATES = {
    "completed": "Runs completed.",
    "failed": "Runs failed.",
    "cancelled": "Runs cancelled (not counted in pass_rate).",
    "pass_rate": "completed / (completed + failed), 0 to 1; null without such runs (Onepin's "
                 "Runs Summary).",
    "p50_active_ms": "Median active_duration_ms (paused time excluded) of completed runs.",
    "p95_active_ms": "95th percentile active_duration_ms of completed runs.",
}

WORKFLOW_SUMMARY_DOC = ViewDoc(
    "Per workflow: runs by status, pass rate and active run durations (Onepin's Runs "
    "Summary).", {
        "workflow_id": "The workflow (workflows.id).",
        "workflow_name": "The workflow's name.",
        "total_runs": "Runs loaded, any status.",
        **_RUN_RATES,
        "pending": "Runs pending (queued, not started).",
        "running": "Runs running.",
        "paused": "Runs paused.",
        "average_duration_seconds": "Mean active duration (duration - paused) of completed "
                                    "runs, in seconds.",
        "last_run_at": "When the newest run was created (UTC).",
    })

WORKFLOW_DAILY = """
with daily_steps as (
    select workflow_id, cast(timezone('UTC', run_created_at) as date) as day, count(*) as steps,
           count(*) filter (where status = 'failed') as failed_steps
    from {step_durations}
    group by workflow_id, cast(timezone('UTC', run_created_at) as date)
)
select r.workflow_id, max(w.name) as workflow_name,
       cast(timezone('UTC', r.created_at) as date) as day,
       count(*) as runs,
       count(*) filter (where r.status = 'completed') as completed,
       count(*) filter (where r.status = 'failed') as failed,
       count(*) filter (where r.status = 'cancelled') as cancelled,
       count(*) filter (where r.status not in (_TERMINAL_)) as open,
       count(*) filter (where r.status = 'completed')
         / nullif(count(*) filter (where r.status in ('completed', 'failed')), 0) as pass_rate,
       quantile_cont(r.active_duration_ms, 0.5) filter (where r.status = 'completed')
         as p50_active_ms,
       quantile_cont(r.active_duration_ms, 0.95) filter (where r.status = 'completed')
         as p95_active_ms,
       coalesce(max(d.steps), 0) as steps,
       coalesce(max(d.failed_steps), 0) as failed_steps
from {runs} r
left join {workflows} w on w.id = r.workflow_id
left join daily_steps d
  on d.workflow_id = r.workflow_id and d.day = cast(timezone('UTC', r.created_at) as date)
group by r.workflow_id, cast(timezone('UTC', r.created_at) as date)
""".replace("_TERMINAL_", _TERMINAL)

WORKFLOW_DAILY_DOC = ViewDoc(
    "Per workflow per UTC day of run creation: runs by status, pass rate, active durations "
    "and steps.", {
        "workflow_id": "The workflow (workflows.id).",
        "workflow_name": "The workflow's name.",
        "day": "The UTC day the runs were created.",
        "runs": "Runs created that day, any status.",
        **_RUN_RATES,
        "open": "Runs still open (pending, running or paused).",
        "steps": "Steps of that day's runs.",
        "failed_steps": "Failed steps of that day's runs.",
    })

# In dependency order: later views read earlier ones.
VIEWS: dict[str, str] = {
    "step_durations": STEP_DURATIONS,
    "node_stats": NODE_STATS,
    "node_type_stats": NODE_TYPE_STATS,
    "workflow_summary": WORKFLOW_SUMMARY,
    "workflow_daily": WORKFLOW_DAILY,
}

VIEW_DOCS: dict[str, ViewDoc] = {
    "step_durations": STEP_DURATIONS_DOC,
    "node_stats": NODE_STATS_DOC,
    "node_type_stats": NODE_TYPE_STATS_DOC,
    "workflow_summary": WORKFLOW_SUMMARY_DOC,
    "workflow_daily": WORKFLOW_DAILY_DOC,
}

LATEST_BY_ID = """
select * exclude (_rank) from (
    select *, row_number() over (partition by id order by _dlt_load_id desc) as _rank
    from read_parquet({files}, union_by_name = true)
) where _rank = 1
"""

LATEST_STEPS = """
with files as (select * from read_parquet({files}, union_by_name = true))
select f.* from files f
join (select run_id, max(_dlt_load_id) as load_id from files group by run_id) latest
  on latest.run_id = f.run_id and latest.load_id = f._dlt_load_id
"""
