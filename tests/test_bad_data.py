"""Steps in shapes the API does not document are loaded without loss, with a warning."""

from __future__ import annotations

import json
import logging
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import pytest

from onepin_sim import Simulator
from onepin_sim.odd import BENDS, bend_kind
from onepin_source.checks import step_problems
from tests.helpers import api_snapshot, ms_between

SHARE = 0.2


SHAPE_PROBLEMS = {"missing_fields", "unknown_status", "wrong_types", "list_result",
                  "string_result"}


def _rows(db: Path) -> dict[str, dict[str, Any]]:
    """run_steps by id; JSON columns decoded."""
    with duckdb.connect(str(db), read_only=True) as con:
        relation = con.sql("select * from onepin.run_steps")
        json_columns = {n for n, t in zip(relation.columns, relation.types, strict=True)
                        if str(t) == "JSON"}
        rows = [dict(zip(relation.columns, r, strict=True)) for r in relation.fetchall()]
    return {row["id"]: {k: json.loads(v) if k in json_columns and v is not None else v
                        for k, v in row.items()} for row in rows}


def stored(row: dict[str, Any], column: str) -> Any:
    """The value as loaded: in its column, or in its text variant if it did not fit."""
    value = row.get(column)
    return value if value is not None else row.get(f"{column}__v_text")


@pytest.mark.parametrize("row_format", ["arrow", "dicts"])
def test_odd_steps_are_loaded_as_sent_with_one_warning_per_batch(
        sim: Simulator, cli: Any, workdir: Path, caplog: pytest.LogCaptureFixture,
        row_format: str) -> None:
    sim.set_faults(odd_steps=SHARE)
    with caplog.at_level(logging.WARNING, logger="onepin_source"):
        cli("load", "--row-format", row_format)
    warnings = [r.getMessage() for r in caplog.records if "documented shape" in r.getMessage()]
    assert warnings and all("loaded as sent" in w for w in warnings)

    snap = api_snapshot(sim)
    kinds = {sid: bend_kind(sid, SHARE) for sid in snap["steps"]}
    assert set(Counter(k for k in kinds.values() if k)) == set(BENDS), "every bend is served"
    rows = _rows(workdir / "onepin_etl.duckdb")
    assert set(rows) == set(snap["steps"]), "no step lost, none invented"
    for step_id, step in snap["steps"].items():
        row, kind = rows[step_id], kinds[step_id]
        assert (row["workflow_id"], row["run_id"]) == (step["workflow_id"], step["run_id"])
        assert bool(step_problems(step)) == (kind in SHAPE_PROBLEMS), kind
        assert stored(row, "status") == step["status"]
        assert stored(row, "node_type") == step.get("node_type")
        assert stored(row, "iteration") == step.get("iteration")
        assert stored(row, "error") == (step.get("error") if row_format == "arrow" or
                                        kind != "nul_characters" else "badbyte")
        assert row["duration_ms"] == ms_between(step["started_at"], step["completed_at"])
        if step["started_at"]:
            assert row["started_at"] == datetime.fromisoformat(step["started_at"])
        if kind == "wrong_types":
            assert stored(row, "has_result") == "sometimes" and stored(row, "locales") == "en-US"
        if kind == "list_result":  # a JSON column, or JSON text if a string came first
            value = stored(row, "result")
            assert (value if isinstance(value, list) else json.loads(value)) == step["result"]
        if kind == "string_result":
            assert stored(row, "result") == step["result"]
        if kind == "huge_result":
            assert len(row["result__transcript"]) == 1_000_000
        if kind == "nul_characters" and row_format == "arrow":
            assert row["result__sample"] == "nul\x00inside"
