"""What in an API step differs from its documented shape. For warnings only: nothing is dropped.

A step that breaks the shape is still loaded as it came: a value that cannot take its column's
type lands in a dlt variant column (``iteration__v_text``), a ``result`` that is not an object
in the ``result`` column, a missing ``id`` gets a stable stand-in (``<run id>#<position>``).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from onepin_source.shaping import parse_ts

REQUIRED = ("id", "node_id", "node_type", "status")  # required by the SDK's RunStep model
# Seen or implied statuses: the API does not enumerate them (docs/api.md).
KNOWN_STATUSES = frozenset({"pending", "running", "completed", "failed", "cancelled", "skipped",
                            "paused"})
# Exact types, as JSON decodes them (so a bool is not taken for an int).
_TYPES: dict[str, frozenset[type]] = {
    **dict.fromkeys(("id", "node_id", "node_type", "status", "node_display_name",
                     "pause_reason", "pause_error", "error"), frozenset({str})),
    "iteration": frozenset({int}), "has_result": frozenset({bool}),
    "active_ports": frozenset({list}), "locales": frozenset({list}),
    "result": frozenset({dict}),
}
TIMESTAMPS = ("started_at", "completed_at")
# Every field of the SDK's models (docs/api.md "Documented shapes"); an API that sends more is
# not wrong (the models allow extra fields), and the connector keeps extra fields as columns.
STEP_FIELDS = frozenset({*_TYPES, *TIMESTAMPS})
RUN_REQUIRED = ("id", "status", "run_number", "created_at")  # WorkflowRunListItem
RUN_FIELDS = frozenset({
    *RUN_REQUIRED, "total_nodes", "total_steps", "finished_steps", "finished_nodes", "credits",
    "usage_summary", "started_at", "completed_at", "pause_requested_at", "paused_at", "paused_ms",
    "pause_reason", "pause_error", "triggered_by", "output_line_count", "delivered_audio_ms"})
WORKFLOW_FIELDS = frozenset({  # WorkflowListItem
    "id", "user_id", "name", "name_source", "description", "definition", "created_at",
    "updated_at", "runs_count", "last_run_at", "last_run_status", "run_status_counts"})


def step_problems(step: Any, *, times_parsed: bool = False) -> list[str]:
    """Short descriptions of how ``step`` departs from the documented RunStep shape.

    ``times_parsed``: both timestamps are known to parse (its row has a ``duration_ms``), so
    they are not parsed a second time.
    """
    if not isinstance(step, dict):
        return [f"step is a {type(step).__name__}, not an object"]
    problems = [f"missing {name}" for name in REQUIRED if step.get(name) is None]
    for name, types in _TYPES.items():
        value = step.get(name)
        if value is not None and type(value) not in types:
            problems.append(f"{name} is {type(value).__name__}")
    status = step.get("status")
    if isinstance(status, str) and status not in KNOWN_STATUSES:
        problems.append(f"unknown status {status!r}")
    for name in () if times_parsed else TIMESTAMPS:
        value = step.get(name)
        if value is not None and parse_ts(value) is None:
            problems.append(f"{name} is not an ISO-8601 time with offset")
    return problems


class ProblemTally:
    """Counts problems over a batch, for one warning line instead of one per step."""

    def __init__(self) -> None:
        self.steps = 0
        self.kinds: Counter[str] = Counter()

    def add(self, problems: list[str]) -> None:
        if problems:
            self.steps += 1
            self.kinds.update(problems)

    def summary(self) -> str:
        kinds = ", ".join(f"{kind} ({n})" for kind, n in self.kinds.most_common(6))
        return (f"{self.steps} steps differ from the documented shape: {kinds}; loaded as "
                "sent (values that do not fit a column are kept in its __v_<type> column)")
