"""Unit tests of pure logic: row shaping and incremental bookkeeping."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from onepin_source.incremental import RunTracker
from onepin_source.shaping import duration_ms, flatten, run_row, step_row
from onepin_source.state import WorkflowState


@pytest.mark.parametrize(("start", "end", "expected"), [
    pytest.param("2026-01-15T09:30:00Z", "2026-01-15T09:35:00.250Z", 300_250, id="z"),
    pytest.param("2026-01-15T10:30:00+01:00", "2026-01-15T09:30:01Z", 1_000, id="offsets"),
    pytest.param("2026-01-15T09:30:00Z", None, None, id="open"),
    pytest.param(None, "2026-01-15T09:30:00Z", None, id="pending"),
    pytest.param("garbage", "2026-01-15T09:30:00Z", None, id="unparseable"),
])
def test_duration_ms(start: str | None, end: str | None, expected: int | None) -> None:
    assert duration_ms(start, end) == expected


def test_flatten_nests_dicts_and_keeps_lists() -> None:
    assert flatten({"a": {"b": {"c": 1}, "l": [1, {"x": 2}]}, "e": {}, "n": None}) == {
        "a__b__c": 1, "a__l": [1, {"x": 2}], "e": {}, "n": None}


def test_step_row_adds_ids_duration_and_result_columns() -> None:
    step = {"id": "s1", "status": "completed", "started_at": "2026-01-15T09:30:00Z",
            "completed_at": "2026-01-15T09:30:02Z",
            "result": {"recordsProcessed": 150, "model": {"name": "m"}, "note": None}}
    assert step_row(step, "w1", "r1") == {
        "id": "s1", "status": "completed", "started_at": "2026-01-15T09:30:00Z",
        "completed_at": "2026-01-15T09:30:02Z", "workflow_id": "w1", "run_id": "r1",
        "duration_ms": 2000, "result__recordsProcessed": 150, "result__model__name": "m"}


@pytest.mark.parametrize("result", [["a", 1], "plain text", 42])
def test_non_object_result_is_kept_raw(result: object) -> None:
    assert step_row({"id": "s", "result": result}, "w", "r")["result"] == result


def test_run_row_projects_detail_fields_away_and_derives_durations() -> None:
    detail = {"id": "r", "status": "completed", "started_at": "2026-01-15T09:00:00Z",
              "completed_at": "2026-01-15T10:00:00Z", "paused_ms": 600_000, "token_cost": 3,
              "definition_snapshot": {"nodes": []}, "error": None, "usage_summary": None,
              "triggered_by": {"user_id": "u", "user_name": "Zoë"}}
    assert run_row(detail, "w") == {
        "id": "r", "status": "completed", "started_at": "2026-01-15T09:00:00Z",
        "completed_at": "2026-01-15T10:00:00Z", "paused_ms": 600_000, "workflow_id": "w",
        "duration_ms": 3_600_000, "active_duration_ms": 3_000_000,
        "triggered_by__user_id": "u", "triggered_by__user_name": "Zoë"}


def _run(i: int, status: str = "completed", hour: int | None = None) -> dict[str, str]:
    return {"id": f"r{i}", "status": status,
            "created_at": f"2026-01-05T{hour if hour is not None else i:02d}:00:00Z"}


def _commit(state: dict, pages: list[list[dict]], *, since: datetime | None = None,
            reread: dict[str, dict] | None = None) -> tuple[list[str], list[str], int]:
    tracker = RunTracker(WorkflowState(state), lookback=timedelta(minutes=90), since=since)
    listed = []
    for page in tracker.listed(pages):
        assert page, "the tracker yields no empty pages"
        for run in page:
            tracker.loaded(run)
            listed.append(run["id"])
    stale = tracker.stale_open_ids()
    for run_id in stale:
        if reread and run_id in reread:
            tracker.loaded(reread[run_id])
    tracker.commit()
    return listed, stale, tracker.pages_read


def test_tracker_first_load_takes_everything_and_records_open_runs() -> None:
    state: dict = {}
    pages = [[_run(9, "running"), _run(8)], [_run(7, "paused"), _run(6)]]
    listed, stale, pages_read = _commit(state, pages)
    assert listed == ["r9", "r8", "r7", "r6"] and stale == [] and pages_read == 2
    assert state["mark"] == "2026-01-05T09:00:00Z"
    assert state["open"] == {"r9": "2026-01-05T09:00:00Z", "r7": "2026-01-05T07:00:00Z"}
    assert set(state["recent"]) == {"r8"}  # finished within 90 min of the mark


def test_tracker_stops_at_cutoff_skips_recent_and_rereads_stale_open() -> None:
    state: dict = {"mark": "2026-01-05T09:00:00Z",
                   "open": {"r9": "2026-01-05T09:00:00Z", "r3": "2026-01-05T03:00:00Z"},
                   "recent": {"r8": "2026-01-05T08:00:00Z"}}
    pages = [[_run(11), _run(10, "running"), _run(9), _run(8), _run(7)], [_run(6)]]
    listed, stale, pages_read = _commit(state, pages, reread={"r3": _run(3, "completed")})
    assert listed == ["r11", "r10", "r9"]  # r8 finished and loaded; r7 is before the cutoff
    assert pages_read == 1 and stale == ["r3"]
    assert state["mark"] == "2026-01-05T11:00:00Z"
    assert state["open"] == {"r10": "2026-01-05T10:00:00Z"}
    assert set(state["recent"]) == {"r11"}  # r9 is older than mark - 90 min now


def test_tracker_since_bounds_the_first_load() -> None:
    state: dict = {}
    since = datetime(2026, 1, 5, 7, 30, tzinfo=UTC)
    listed, _, _ = _commit(state, [[_run(9), _run(8), _run(7), _run(6)]], since=since)
    assert listed == ["r9", "r8"]


def test_tracker_leaves_state_alone_until_commit() -> None:
    state: dict = {"mark": "2026-01-05T09:00:00Z", "open": {}, "recent": {}}
    tracker = RunTracker(WorkflowState(state), lookback=timedelta(minutes=10))
    for page in tracker.listed([[_run(10)]]):
        tracker.loaded(page[0])
    assert state["mark"] == "2026-01-05T09:00:00Z"
