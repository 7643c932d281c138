"""Flat rows to Arrow tables, typed exactly as dlt's dict normalizer would type the same rows.

dlt normalizes dict rows at about 10k rows/s; Arrow tables pass through at several times that.
To keep one table contract for both, every decision the dict normalizer makes per value is
made here per column, with dlt's own functions: column names (the schema's naming convention),
type inference (``iso_timestamp`` detection, Python type map), coercion (``coerce_value``) and
variant columns (``<column>__v_<type>``) for values that cannot be coerced. Types already in the
pipeline's schema win, as they do for dicts. One difference, on purpose: a new column takes the
type most of its first batch's values have, not the first value's (:func:`_typical`). Values
are checked column by column, so a batch of well-typed values costs a set of types and one
``pyarrow.array`` call per column.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, NamedTuple

import dlt
import pyarrow as pa
import pyarrow.compute as pc

from onepin_source.dlt_internals import (
    EMPTY_KEY_IDENTIFIER,
    VARIANT_FIELD_FORMAT,
    TColumnSchema,
    TDataType,
    autodetect_sc_type,
    coerce_value,
    json,
    normalize_identifier,
    py_type_to_sc_type,
)

ARROW_TYPES: dict[str, pa.DataType] = {
    "text": pa.string(), "bigint": pa.int64(), "double": pa.float64(), "bool": pa.bool_(),
    "timestamp": pa.timestamp("us", tz="UTC"), "json": pa.string(),
}
# Python types that go into a column of the given type without any coercion by dlt
# (an int in a double column becomes the same float either way).
_NATIVE: dict[str, frozenset[type]] = {
    "text": frozenset({str}), "bigint": frozenset({int}), "double": frozenset({float, int}),
    "bool": frozenset({bool}), "json": frozenset({list, dict}),
}
_NONE = type(None)


class _Typed(NamedTuple):
    data_type: TDataType
    values: Any  # a list, or an Arrow array already built
    variant: bool
    new: bool  # typed by this batch: dlt hears of it with this batch's hints


class ArrowRows:
    """Builds Arrow tables for one dlt table from batches of flat rows (thread-safe).

    Column types are remembered across batches of a load: the type a new column gets from its
    first batch (:func:`_typical`) stays its type, as does one the pipeline's schema already
    has, like the dict normalizer.
    """

    def __init__(self, table_name: str, hints: Mapping[str, TColumnSchema]) -> None:
        self.table_name = table_name
        self._hints = hints
        self._lock = threading.Lock()
        self._schema: dlt.Schema | None = None
        self._types: dict[str, TDataType] = {}
        self._names: dict[str, str] = {}

    def _bind(self, schema: dlt.Schema) -> None:
        """Start from the pipeline's schema: its column types win over inference."""
        self._schema = schema
        stored = schema.tables.get(self.table_name, {}).get("columns", {})
        for columns in (self._hints, stored):
            for name, column in columns.items():
                data_type = column.get("data_type")
                if data_type:
                    self._types[name] = data_type

    def table(self, rows: Iterable[Mapping[str, Any]]) -> Any:
        """One Arrow table for ``rows`` (not empty), with dlt hints for json/variant columns."""
        rows = list(rows)
        if not rows:
            raise ValueError("an Arrow table needs at least one row")
        with self._lock:
            if self._schema is None:
                self._bind(dlt.current.source_schema())
            columns, order = self._columns(rows)
            typed: dict[str, _Typed] = {}
            for name, values in columns.items():
                self._place(name, values, order, typed, variant=False)
        arrays = {name: _array(col.data_type, col.values) for name, col in typed.items()}
        new_hints = _new_hints(typed)
        # A column the hints declare not nullable (``id``) is not nullable in Arrow either:
        # dlt compares the two and warns when they differ.
        table = pa.Table.from_arrays(list(arrays.values()), schema=pa.schema([
            pa.field(name, array.type, nullable=self._hints.get(name, {}).get("nullable", True))
            for name, array in arrays.items()]))
        if new_hints:
            return dlt.mark.with_hints(table, dlt.mark.make_hints(columns=new_hints))
        return table

    # ---- internals (called under the lock) ---------------------------------------------------
    def _columns(self, rows: list[Mapping[str, Any]]) -> tuple[dict[str, list[Any]], list[int]]:
        """Column-wise values under normalized names; None where a row lacks the key.

        Rows with the same keys (steps of one node type, mostly) are transposed together with
        ``zip``, so the values are copied by C code, not one by one. The columns then list the
        rows grouped that way; the returned order maps a position back to the row's index, which
        type inference needs (the first value *in row order* of the typical type types a column).
        """
        n = len(rows)
        groups: dict[tuple[str, ...], list[int]] = {}
        for i, row in enumerate(rows):
            groups.setdefault(tuple(row), []).append(i)
        raw: dict[str, list[Any]] = {}
        start = 0
        for keys, members in groups.items():
            end = start + len(members)
            transposed = zip(*(rows[i].values() for i in members), strict=True)
            for key, group_values in zip(keys, transposed, strict=True):
                column = raw.get(key)
                if column is None:
                    column = raw[key] = [None] * n
                column[start:end] = group_values
            start = end
        order = [i for members in groups.values() for i in members]
        columns: dict[str, list[Any]] = {}
        for key, values in raw.items():
            name = self._name(key)
            if name in columns:  # two raw keys normalize alike: the later one wins, like a dict
                merged = columns[name]
                columns[name] = [v if v is not None else m for m, v in zip(merged, values,
                                                                            strict=True)]
            else:
                columns[name] = values
        return columns, order

    def _name(self, key: str) -> str:
        name = self._names.get(key)
        if name is None:
            assert self._schema is not None
            name = self._names[key] = (
                normalize_identifier(self._schema, self._schema.naming, key)
                if key and not key.isspace() else EMPTY_KEY_IDENTIFIER)
        return name

    def _place(self, name: str, values: list[Any], order: list[int],
               typed: dict[str, _Typed], *, variant: bool) -> None:
        """Type column ``name``; values that do not fit go to ``name__v_<type>`` columns."""
        col_type = self._types.get(name)
        new = col_type is None
        if col_type is None:
            col_type = self._types[name] = self._infer(values[_typical(values, order)], name)
        kinds = {type(v) for v in values}
        kinds.discard(_NONE)
        if kinds <= _NATIVE.get(col_type, frozenset()):
            typed[name] = _Typed(col_type, values, variant, new)
            return
        if col_type == "timestamp" and kinds == {str}:
            parsed = _iso_timestamps(values)
            if parsed is not None:
                typed[name] = _Typed(col_type, parsed, variant, new)
                return
        fitted: list[Any] = [None] * len(values)
        misfits: dict[str, list[Any]] = {}
        for i, value in enumerate(values):
            if value is None:
                continue
            py_type = py_type_to_sc_type(type(value))
            try:
                fitted[i] = _coerce(col_type, py_type, value)
            except (ValueError, SyntaxError):
                if variant:
                    raise
                assert self._schema is not None
                variant_name = self._schema.naming.shorten_fragments(
                    name, VARIANT_FIELD_FORMAT % py_type)
                misfits.setdefault(variant_name, [None] * len(values))[i] = value
        if any(v is not None for v in fitted):
            typed[name] = _Typed(col_type, fitted, variant, new)
        for variant_name, variant_values in misfits.items():
            self._place(variant_name, variant_values, order, typed, variant=True)

    def _infer(self, value: Any, name: str) -> TDataType:
        assert self._schema is not None
        detected = autodetect_sc_type(self._schema.settings.get("detections") or [], type(value),
                                      value)
        return detected or self._schema.get_preferred_type(name) or py_type_to_sc_type(type(value))


def _typical(values: list[Any], order: list[int]) -> int:
    """The position of the value that types a new column: the first, in row order, of the
    Python type most of the batch's values have (ties: the type seen first).

    dlt's dict normalizer takes the very first value's type. Most values' type gives the same
    answer unless the first value is a rare odd one (a count sent as a string, say), and it does
    not depend on which rows came first: shards loading different workflows at once type a
    field alike, so their rows fit one table.
    """
    counts: Counter[type] = Counter()
    first: dict[type, int] = {}
    for position, value in enumerate(values):
        if value is not None:
            kind = type(value)
            counts[kind] += 1
            if kind not in first or order[position] < order[first[kind]]:
                first[kind] = position
    kind = max(counts, key=lambda k: (counts[k], -order[first[k]]))
    return first[kind]


def _new_hints(typed: dict[str, _Typed]) -> dict[str, Any]:
    """Hints for new columns Arrow cannot describe (json, timestamps, variants)."""
    hints: dict[str, Any] = {}
    for name, col in typed.items():
        if col.new and (col.data_type in ("json", "timestamp") or col.variant):
            hints[name] = {"name": name, "data_type": col.data_type, "nullable": True}
            if col.variant:
                hints[name]["variant"] = True
    return hints


def _coerce(col_type: TDataType, py_type: TDataType, value: Any) -> Any:
    coerced = coerce_value(col_type, py_type, value)
    if col_type == "timestamp" and isinstance(coerced, datetime) and coerced.tzinfo is None:
        coerced = coerced.replace(tzinfo=UTC)  # dlt reads naive timestamps as UTC
    return coerced


def _iso_timestamps(values: list[Any]) -> Any:
    """ISO-8601 strings to a UTC timestamp array in one pass; None if any needs dlt's parser."""
    try:
        return pc.cast(pa.array(values, pa.string()), ARROW_TYPES["timestamp"])
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None


def _array(col_type: TDataType, values: Any) -> Any:
    if isinstance(values, pa.Array):
        return values
    if col_type == "json":
        values = [v if v is None or isinstance(v, str) else json.dumps(v) for v in values]
    return pa.array(values, ARROW_TYPES.get(col_type, pa.string()))
