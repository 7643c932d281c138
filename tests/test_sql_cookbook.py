"""Every query of docs/sql-cookbook.md runs as written in DuckDB, over a simulated load, with
the columns the page promises, rows, and (where cheap) the API's numbers; through
``onepin-etl sql``'s reader over a Parquet folder, with the same rows."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest

from onepin_etl import analysis
from onepin_sim import Simulator
from tests import cookbook
from tests.helpers import api_snapshot, invoke_cli, ms_between


@pytest.fixture
def loaded(workdir: Path) -> Iterator[tuple[Path, dict[str, Any]]]:
    with Simulator(cookbook.WORLD) as sim:
        cli = invoke_cli(sim, workdir)
        cli("load")
        cli("load", "--destination", "parquet", "--parquet-dir", "pq")
        yield workdir / "onepin_etl.duckdb", api_snapshot(sim)


def test_the_cookbook_has_a_dozen_questions() -> None:
    assert sorted(cookbook.queries()) == sorted(cookbook.COLUMNS)
    assert len(cookbook.queries()) >= 12


def test_every_cookbook_query_runs_in_duckdb(loaded: tuple[Path, dict[str, Any]]) -> None:
    db, snap = loaded
    answers = {}
    with duckdb.connect(str(db), read_only=True) as con:
        con.execute("use onepin; set TimeZone = 'UTC'")  # as the page says
        for number, query in cookbook.queries().items():
            result = con.execute(query)
            columns = [c[0] for c in result.description]
            rows = result.fetchall()
            assert columns == cookbook.COLUMNS[number], f"question {number}"
            assert rows, f"question {number} returned no rows"
            answers[number] = [dict(zip(columns, row, strict=True)) for row in rows]

    runs = list(snap["runs"].values())
    users = Counter(r["triggered_by"]["user_name"] for r in runs)
    assert {a["user_name"]: a["runs"] for a in answers[10]} == users
    queued = [ms for r in runs if (ms := ms_between(r["created_at"], r["started_at"])) is not None]
    assert sum(a["runs"] for a in answers[5]) == len(queued)
    assert max(a["max_queue_s"] for a in answers[5]) == max(queued) / 1000
    records = sum(s["result"]["recordsProcessed"] for s in snap["steps"].values()
                  if s["status"] == "completed" and isinstance(s.get("result"), dict)
                  and isinstance(s["result"].get("recordsProcessed"), int))
    assert sum(a["records_processed"] for a in answers[9]) == records
    paused = [r for r in runs if (r["paused_ms"] or 0) > 0 or r["status"] == "paused"]
    assert sum(a["runs"] for a in answers[6]) == len(paused)
    assert {a["this_week"] > 0 for a in answers[3]} == {True}
    open_runs = sorted((r["run_number"], r["status"]) for r in runs
                       if r["status"] in ("pending", "running", "paused"))
    assert sorted((a["run_number"], a["status"]) for a in answers[12]) == open_runs

    # onepin-etl sql runs them over any destination: a Parquet folder gives the same rows.
    for number, query in cookbook.queries().items():
        frame = analysis.query(query, parquet_dir=db.parent / "pq")
        assert list(frame.columns) == cookbook.COLUMNS[number]
        assert len(frame) == len(answers[number]), f"question {number}"
    assert len({a["week"] for a in answers[4]}) >= 2
