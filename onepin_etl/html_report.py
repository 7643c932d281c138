"""``onepin-etl report --format html``: one self-contained page with charts, for everybody who
does not open the notebook (the team lead, whoever is on call, a workflow's owner).

Everything is inline (CSS, SVG charts from :mod:`onepin_etl.charts`); no script, no request.
The numbers come from the same questions as the other formats (``analysis.QUESTIONS``) and the
checks from ``onepin-etl check``'s rules; each table cell carries its raw value in
``data-value`` so tests (and scripts) can read the numbers back.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import jinja2
import pandas as pd

from onepin_etl import analysis, charts, descriptions, health
from onepin_etl.destinations import Target
from onepin_etl.report import cell_text
from onepin_etl.status import completed_loads

TEMPLATE = "report.html.j2"
LAST_LOADS = 5  # loads listed under "Data freshness"


@dataclass(frozen=True)
class Table:
    """A rendered table: a title, columns, and rows of (raw value, text) cells."""

    id: str
    title: str
    columns: list[str]
    rows: list[list[tuple[str, str]]]
    tips: list[str]  # each column's meaning (a header's tooltip), "" if it has none


def build_page(target: Target, *, top: int = 10, filters: analysis.Filters | None = None,
               checks: health.CheckConfig | None = None,
               generated_at: datetime | None = None) -> str:
    """The whole page as HTML text."""
    checks = checks or health.CheckConfig()
    with analysis.connect(**target.where(), filters=filters) as con:
        answers = {name: analysis.ask(con, name, top) for name in analysis.QUESTIONS}
        report = health.run_checks(con, checks)
        charts_svg = _charts(con, top)
        loads = [(load_id, _when(at) or "")
                 for load_id, at in completed_loads(target, con)[:LAST_LOADS]]
    tables = {name: table_of(name, frame) for name, frame in answers.items()}
    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("onepin_etl", "templates"),
        autoescape=True, trim_blocks=True, lstrip_blocks=True)
    return environment.get_template(TEMPLATE).render(
        generated_at=_when(generated_at or datetime.now(UTC)), location=target.location,
        dataset=target.dataset, newest_run=_when(report.newest_run_at), loads=loads,
        tables=tables, charts=charts_svg, checks=report,
        window=health.span_text(checks.window),
        titles={name: q.title for name, q in analysis.QUESTIONS.items()})


def write_page(path: str | Path, html: str) -> Path:
    """Write the page next to its final name, then rename it (a reader never sees half)."""
    final = Path(path)
    partial = final.with_name(final.name + ".partial")
    partial.write_text(html, encoding="utf-8")
    partial.replace(final)
    return final


def table_of(name: str, frame: pd.DataFrame) -> Table:
    question = analysis.QUESTIONS[name]
    rows = [[(_raw(value), cell_text(column, value)) for column, value in zip(frame.columns, row,
                                                                         strict=True)]
            for row in frame.itertuples(index=False)]
    columns = [str(c) for c in frame.columns]
    view = _FROM_VIEW.search(question.sql)
    tips = [descriptions.view_column(view[1], c) if view else "" for c in columns]
    return Table(name, question.title, columns, rows, tips)


_FROM_VIEW = re.compile(r"\bfrom (\w+)")  # the view a question reads


def _raw(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return repr(float(value)) if isinstance(value, float) else str(value)


def _when(value: Any) -> str | None:
    if not isinstance(value, datetime):
        return None
    moment = value if value.tzinfo else value.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _charts(con: duckdb.DuckDBPyConnection, top: int) -> dict[str, str]:
    found: dict[str, str] = {}
    daily = con.execute("select workflow_name, day, pass_rate from workflow_daily "
                        "where pass_rate is not null order by workflow_name, day").df()
    if not daily.empty:
        found["trend"] = charts.pass_rate_trend(daily)
    slow = con.execute(f"""
        select workflow_id, node_id, workflow_name || ' / ' || node_display_name as label
        from node_stats where p95_ms is not null
        {analysis.SLOWEST_FIRST} limit {int(top)}""").df()
    if not slow.empty:
        con.register("slowest", slow)
        steps = con.execute("""
            select s.label, d.duration_ms from step_durations d
            join slowest s on s.workflow_id = d.workflow_id and s.node_id = d.node_id
            where d.status = 'completed' and d.duration_ms > 0""").df()
        found["durations"] = charts.duration_distributions(steps, list(slow["label"]))
    types = con.execute("select node_type, failed, completed, failure_rate "
                        "from node_type_stats order by node_type").df()
    if not types.empty:
        found["failure_types"] = charts.failure_rate_by_type(types)
    failed = con.execute("""
        select run_id, any_value(workflow_name) as workflow, any_value(run_number) as number
        from step_durations where run_status = 'failed' and started_at is not null
        group by run_id order by max(run_created_at) desc, run_id limit 1""").fetchone()
    if failed:
        run_id, workflow, number = failed
        steps = con.execute("""
            select node_display_name, iteration, status, started_at, completed_at
            from step_durations where run_id = ? and started_at is not null
            order by started_at, step_id""", [run_id]).df()
        found["timeline"] = charts.run_timeline(
            steps, f"Latest failed run: {workflow} #{number}")
    return found
