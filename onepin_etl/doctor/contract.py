"""A sample of what the API serves, checked against the documented shapes (docs/api.md), each
finding with what the connector does about it. Pure functions over decoded JSON."""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass
from typing import Any

from onepin_source.checks import (
    RUN_FIELDS,
    RUN_REQUIRED,
    STEP_FIELDS,
    WORKFLOW_FIELDS,
    step_problems,
)

# What the connector does, by the kind of departure (docs/api.md "Tolerated").
COPES = {
    "unknown_field": "kept as a column of its table",
    "undocumented_status": "loaded as sent; metrics count completed, failed and cancelled "
                           "only; the run's steps are fetched again on every load",
    "missing_field": "loaded as sent (a step without an id gets <run id>#<position>)",
    "wrong_type": "loaded as sent; a value that does not fit its column goes to the column's "
                  "__v_<type> variant (a result that is not an object: the result column)",
    "bad_timestamp": "loaded as sent; the step's duration_ms stays null",
    "iteration_base": "retries are counted as iteration > 1: with 0-based iterations the first "
                      "retry of each node is not counted as one",
    "steps_paginated": "the connector reads one unpaginated list per run: steps past the first "
                       "page would not be loaded (report it: this needs a connector change)",
}
# A finding of these kinds means data a load would lose or get wrong: doctor exits 4.
LOSES_DATA = frozenset({"steps_paginated"})


@dataclass(frozen=True)
class Finding:
    """One way the sample departs from the documented shape, how often, and what we do."""

    check: str
    detail: str
    count: int

    @property
    def connector(self) -> str:
        return COPES[self.check]

    @property
    def loses_data(self) -> bool:
        return self.check in LOSES_DATA

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "connector": self.connector}


@dataclass
class Sample:
    """What the doctor read: workflow list items, the newest run of a few, their steps, and
    whether a steps answer carried paging."""

    workflows: list[dict[str, Any]]
    runs: list[dict[str, Any]]
    steps: list[dict[str, Any]]
    steps_paginated: bool | None  # None: no steps answer was read


def findings(sample: Sample) -> list[Finding]:
    """Every departure of ``sample`` from the documented shapes, most frequent first."""
    found: Counter[tuple[str, str]] = Counter()
    for kind, items, documented in (("workflow", sample.workflows, WORKFLOW_FIELDS),
                                    ("run", sample.runs, RUN_FIELDS),
                                    ("step", sample.steps, STEP_FIELDS)):
        for item in items:
            for name in sorted(set(item) - documented):
                found["unknown_field", f"{kind} field {name!r} is not documented"] += 1
    for run in sample.runs:
        for name in RUN_REQUIRED:
            if run.get(name) is None:
                found["missing_field", f"run without {name}"] += 1
    for step in sample.steps:
        for problem in step_problems(step):
            found[_kind(problem), f"step: {problem}"] += 1
    base = iteration_base(sample.steps)
    if base == 0:
        found["iteration_base", "step iteration starts at 0"] += 1
    if sample.steps_paginated:
        found["steps_paginated", "the steps endpoint answers with pagination"] += 1
    return [Finding(check, detail, n)
            for (check, detail), n in sorted(found.items(), key=lambda kv: (-kv[1], kv[0]))]


def _kind(problem: str) -> str:
    """The kind of one of :func:`step_problems`'s descriptions."""
    if problem.startswith("missing "):
        return "missing_field"
    if problem.startswith("unknown status"):
        return "undocumented_status"
    if "ISO-8601" in problem:
        return "bad_timestamp"
    return "wrong_type"


def iteration_base(steps: list[dict[str, Any]]) -> int | None:
    """0 or 1: the smallest whole-number iteration in the sample (None if there is none)."""
    values = [s.get("iteration") for s in steps]
    numbers = [v for v in values if type(v) is int]
    if not numbers:
        return None
    return 0 if min(numbers) <= 0 else 1
