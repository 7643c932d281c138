"""``onepin-etl report``: the answers a person wants after a load, as tables or data."""

from __future__ import annotations

import io
import json
import math
from typing import Any

import pandas as pd
from rich import box
from rich.console import Console
from rich.table import Table

from onepin_etl import analysis
from onepin_etl.destinations import Target

WIDEST = 100_000  # "no limit" for a table's width when the output is not a terminal


def build(target: Target, top: int = 10, filters: analysis.Filters | None = None
          ) -> dict[str, pd.DataFrame]:
    """Every question's answer (``analysis.QUESTIONS``), read through one short-lived connection."""
    with analysis.connect(target, filters=filters) as con:
        return {name: analysis.ask(con, name, top) for name in analysis.QUESTIONS}


def is_empty(sections: dict[str, pd.DataFrame]) -> bool:
    return sections["workflows"].empty


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = json.loads(frame.to_json(orient="records", date_format="iso"))
    return records


def render(sections: dict[str, pd.DataFrame], fmt: str, console: Console) -> None:
    """Print ``sections`` in ``fmt`` (table, csv, json or markdown), titled as
    ``analysis.QUESTIONS`` (or by their name). One section alone in CSV is plain CSV (header
    first); several are each preceded by a ``# name`` line."""
    if fmt == "json":
        console.out(json.dumps({k: _records(v) for k, v in sections.items()},
                               ensure_ascii=False, indent=2), highlight=False)
        return
    for name, frame in sections.items():
        question = analysis.QUESTIONS.get(name)
        title = question.title if question else name
        if fmt == "csv":
            buffer = io.StringIO()
            frame.to_csv(buffer, index=False)
            heading = f"# {name}\n" if len(sections) > 1 else ""
            console.out(f"{heading}{buffer.getvalue()}", highlight=False, end="")
        elif fmt == "markdown":
            console.out(f"## {title}\n\n{_markdown(frame)}\n", highlight=False)
        else:
            _print_table(console, title if len(sections) > 1 else None, frame)


def _print_table(console: Console, title: str | None, frame: pd.DataFrame) -> None:
    """A terminal gets a table that fits its width; a pipe or a file gets a plain one (ASCII,
    no colour) as wide as its widest row, each row on one line, so that ``grep``, ``less -S``
    and ``cut`` see whole values."""
    if console.is_terminal:
        console.print(_rich_table(title, frame, plain=False))
        return
    if title:
        console.out(title, highlight=False)
    table = _rich_table(None, frame, plain=True)
    width = console.measure(table, options=console.options.update(width=WIDEST)).maximum
    Console(file=console.file, width=width, color_system=None).print(table)


def cell_text(column: str, value: Any) -> str:
    """A value as a person reads it: rates as percentages, floats to two decimals, – for none."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if column.endswith("rate"):
        return f"{value:.1%}"
    if isinstance(value, float):
        return f"{value:,.2f}".rstrip("0").rstrip(".")
    return str(value)


def _markdown(frame: pd.DataFrame) -> str:
    if frame.empty:
        return "_none_"
    lines = ["| " + " | ".join(frame.columns) + " |",
             "|" + "|".join("---" for _ in frame.columns) + "|"]
    for row in frame.itertuples(index=False):
        cells = (cell_text(c, v).replace("|", "\\|")
                 for c, v in zip(frame.columns, row, strict=True))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _rich_table(title: str | None, frame: pd.DataFrame, *, plain: bool) -> Table:
    table = Table(title=title, title_justify="left", show_lines=False,
                  box=box.ASCII if plain else box.HEAVY_HEAD)
    for column in frame.columns:
        numeric = pd.api.types.is_numeric_dtype(frame[column])
        table.add_column(column, justify="right" if numeric else "left",
                         overflow="fold", no_wrap=plain,
                         max_width=None if plain else 48)
    for row in frame.itertuples(index=False):
        table.add_row(*(cell_text(c, v) for c, v in zip(frame.columns, row, strict=True)))
    if frame.empty:
        table.caption = "none"
    return table
