"""``onepin-etl report``: the answers a person wants after a load, as tables or data."""

from __future__ import annotations

import io
import json
import math
from typing import Any

import pandas as pd
from rich.console import Console
from rich.table import Table

from onepin_source import analysis

FORMATS = ("table", "csv", "json", "markdown")

_SECTIONS: dict[str, tuple[str, str]] = {
    "workflows": ("Runs per workflow", """
        select workflow_name as workflow, total_runs as runs, completed, failed, cancelled,
               pending + running + paused as open, pass_rate,
               round(average_duration_seconds, 1) as avg_active_s,
               round(p95_active_ms / 1000, 1) as p95_active_s
        from workflow_summary order by workflow_name"""),
    "slowest_nodes": ("Slowest nodes (p95 of completed steps)", """
        select workflow_name as workflow, node_display_name as node, node_type, completed,
               round(p50_ms / 1000, 2) as p50_s, round(p95_ms / 1000, 2) as p95_s,
               round(max_ms / 1000, 2) as max_s
        from node_stats where p95_ms is not null
        order by p95_ms desc, workflow_name, node_id limit {top}"""),
    "failing_nodes": ("Most failing nodes", """
        select workflow_name as workflow, node_display_name as node, node_type, failed,
               completed, failure_rate, top_error
        from node_stats where failed > 0
        order by failure_rate desc, failed desc, workflow_name, node_id limit {top}"""),
    "failing_node_types": ("Failure rate by node type", """
        select node_type, executions, failed, completed, failure_rate,
               round(p95_ms / 1000, 2) as p95_s
        from node_type_stats where failed > 0
        order by failure_rate desc, node_type limit {top}"""),
    "retries": ("Retries and flaky nodes", """
        select workflow_name as workflow, node_display_name as node, node_type, retries, flaky
        from node_stats where retries > 0 or flaky > 0
        order by flaky desc, retries desc, workflow_name, node_id limit {top}"""),
}


def build(top: int = 10, **where: Any) -> dict[str, pd.DataFrame]:
    """Every section's DataFrame, read through one short-lived connection."""
    with analysis.connect(**where) as con:
        return {name: con.execute(sql.format(top=int(top))).df()
                for name, (_, sql) in _SECTIONS.items()}


def is_empty(sections: dict[str, pd.DataFrame]) -> bool:
    return sections["workflows"].empty


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = json.loads(frame.to_json(orient="records", date_format="iso"))
    return records


def render(sections: dict[str, pd.DataFrame], fmt: str, console: Console) -> None:
    """Print the report in ``fmt`` (one of :data:`FORMATS`)."""
    if fmt == "json":
        console.out(json.dumps({k: _records(v) for k, v in sections.items()},
                               ensure_ascii=False, indent=2), highlight=False)
        return
    for name, frame in sections.items():
        title = _SECTIONS[name][0]
        if fmt == "csv":
            buffer = io.StringIO()
            frame.to_csv(buffer, index=False)
            console.out(f"# {name}\n{buffer.getvalue()}", highlight=False)
        elif fmt == "markdown":
            console.out(f"## {title}\n\n{_markdown(frame)}\n", highlight=False)
        else:
            console.print(_rich_table(title, frame))


def _cell(column: str, value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if column.endswith("rate"):
        return f"{value:.1%}"
    return str(value)


def _markdown(frame: pd.DataFrame) -> str:
    if frame.empty:
        return "_none_"
    lines = ["| " + " | ".join(frame.columns) + " |",
             "|" + "|".join("---" for _ in frame.columns) + "|"]
    for row in frame.itertuples(index=False):
        cells = (_cell(c, v).replace("|", "\\|") for c, v in zip(frame.columns, row, strict=True))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _rich_table(title: str, frame: pd.DataFrame) -> Table:
    table = Table(title=title, title_justify="left", show_lines=False)
    for column in frame.columns:
        numeric = pd.api.types.is_numeric_dtype(frame[column])
        table.add_column(column, justify="right" if numeric else "left",
                         overflow="fold", max_width=48)
    for row in frame.itertuples(index=False):
        table.add_row(*(_cell(c, v) for c, v in zip(frame.columns, row, strict=True)))
    if frame.empty:
        table.caption = "none"
    return table
