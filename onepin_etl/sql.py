"""Quoting for the SQL we write by hand (DuckDB's and PostgreSQL's rules agree on both): every
name and value put into a statement goes through here, so a quote in a dataset name, a path or a
filter value cannot break it."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


def literal(value: Any) -> str:
    """``value`` as a SQL string literal: ``'it''s'``."""
    return "'" + str(value).replace("'", "''") + "'"


def literals(values: Iterable[Any]) -> str:
    """A comma-separated list of literals, for ``in (...)`` and DuckDB lists."""
    return ", ".join(literal(v) for v in values)


def identifier(name: str) -> str:
    """``name`` as a quoted SQL identifier: ``"my ""odd"" schema"``."""
    return '"' + name.replace('"', '""') + '"'
