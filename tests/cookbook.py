"""The SQL cookbook's queries (``docs/sql-cookbook.md``), and what each must answer with, for
the tests that run them in DuckDB and in PostgreSQL."""

from __future__ import annotations

import re

import sqlglot
from sqlglot.errors import ErrorLevel

from onepin_sim import WorldConfig
from tests.helpers import ROOT

COOKBOOK = ROOT / "docs" / "sql-cookbook.md"
# 15 days of runs, so "this week against last week" and the weekly trends have two weeks; a
# run every 3 hours leaves some open at the end, for "which runs are still open".
WORLD = WorldConfig(seed=11, workflows=3, runs=120, nodes=8, run_interval_s=3 * 3600)

COLUMNS = {
    1: ["workflow_name", "node_id", "node", "node_type", "completed_steps", "p50_ms", "p95_ms"],
    2: ["node_type", "week", "failed", "decided", "failure_rate"],
    3: ["error", "this_week", "last_week", "change"],
    4: ["workflow", "week", "completed_runs", "p95_active_ms", "vs_previous_week"],
    5: ["hour_utc", "runs", "mean_queue_s", "max_queue_s"],
    6: ["reason", "runs", "still_paused", "paused_minutes", "an_error"],
    7: ["workflow_name", "node_display_name", "node_type", "executions", "retries",
        "retry_share", "flaky"],
    8: ["locale", "node_type", "steps", "p50_ms", "p95_ms"],
    9: ["workflow", "node_id", "node", "steps_reporting", "records_processed", "mean_per_step"],
    10: ["user_name", "runs", "completed", "failed", "pass_rate"],
    11: ["workflow_name", "node_display_name", "runs", "mean_share", "max_share"],
    12: ["workflow", "run_number", "status", "created_at", "started_at", "paused_at",
         "pause_reason", "finished_steps", "total_steps", "age_hours"],
    13: ["workflow_name", "day", "runs", "completed", "failed", "pass_rate", "p95_active_ms",
         "failed_steps"],
    14: ["node_type", "node_display_name", "steps", "mean_score", "min_score", "threshold",
          "below_threshold"],
}

_QUESTION = re.compile(r"^## (\d+)\. (.+?)\n.*?```sql\n(.*?)```", re.MULTILINE | re.DOTALL)


def queries() -> dict[int, str]:
    """Question number -> its query, as written on the page (one query per question)."""
    text = COOKBOOK.read_text(encoding="utf-8")
    found = {int(m[1]): m[3] for m in _QUESTION.finditer(text)}
    assert len(found) == text.count("\n## "), "a question without exactly one sql block"
    return found


def postgres(query: str) -> str:
    """The query as PostgreSQL runs it: sqlglot's translation, as the views get."""
    return sqlglot.transpile(query, read="duckdb", write="postgres",
                             unsupported_level=ErrorLevel.RAISE)[0]
