"""The one owner of the source's incremental state: its layout (the on-disk format of existing
pipelines), the reset when the destination changes, and the summary ``status`` shows."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import dlt
import pytest

from onepin_sim import Simulator
from onepin_source.quota import Quota
from onepin_source.state import SOURCE_NAME, LoadState, Summary, WorkflowState, summary
from tests.helpers import Cli

MARKS: dict[str, Any] = {"mark": "2026-01-05T09:00:00Z", "open": {"r9": "2026-01-05T09:00:00Z"},
         "rows": {"r9": "d9"}, "recent": {"r8": "2026-01-05T08:00:00Z"},
         "workflow": ["2026-01-05T09:00:00+00:00", 2, {}]}


def bound(source_state: dict[str, Any], target_key: str | None = "duckdb:a") -> LoadState:
    state = LoadState(target_key)
    state.bind(source_state)
    return state


def written(source_state: dict[str, Any]) -> LoadState:
    """A state with one of everything written through the class."""
    state = bound(source_state)
    state.workflow("w1").write(mark=MARKS["mark"], open_runs=MARKS["open"],
                               open_rows=MARKS["rows"], recent=MARKS["recent"],
                               fingerprint=MARKS["workflow"])
    assert state.workflow_row_changed("w1", "dw1")
    state.steps_settled("r9", "fp9")
    state.remember_quota(Quota(1000, 60.0, "headers"))
    state.checkpoint(2, 5, 400)
    return state


def test_the_layout_is_the_one_existing_pipelines_have() -> None:
    source_state: dict[str, Any] = {}
    pass_id = written(source_state).pass_id
    assert pass_id is not None and re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", pass_id)
    assert source_state == {
        "resources": {"runs": {"target": "duckdb:a",
                               "workflows": {"w1": {**MARKS, "pass": pass_id}}},
                      "run_steps": {"fetched": {"r9": "fp9"}},
                      "workflows": {"rows": {"w1": "dw1"}}},
        "quota": {"limit": 1000, "window_s": 60.0, "source": "headers"},
        "checkpoint": {"piece": 2, "workflows_left": 5, "runs_left": 400, "pass": pass_id},
    }


def test_a_load_continues_an_unfinished_pass_and_begins_a_new_one_after_a_finished() -> None:
    """A load cut short (the checkpoint says workflows are left) is continued by the next: the
    workflows it committed are done in this pass. Once a pass finishes, a new one begins."""
    source_state: dict[str, Any] = {}
    first = written(source_state)  # its checkpoint: 5 workflows left
    again = bound(source_state)
    assert again.pass_id == first.pass_id and again.recorded("w1").done_in_this_pass
    assert not again.recorded("w2").done_in_this_pass  # never committed
    again.checkpoint(3, 0, 0)  # the pass finished
    after = bound(source_state)
    assert after.pass_id != first.pass_id and not after.recorded("w1").done_in_this_pass
    # A state written before passes existed (no "pass"): a new pass, nothing done in it.
    del source_state["checkpoint"]["pass"], source_state["resources"]["runs"]["workflows"]["w1"][
        "pass"]
    source_state["checkpoint"]["workflows_left"] = 5
    older = bound(source_state)
    assert older.pass_id != first.pass_id and not older.recorded("w1").done_in_this_pass


def test_a_state_written_before_reads_back_through_the_class() -> None:
    source_state: dict[str, Any] = {}
    written(source_state)
    state = bound(source_state)
    marks = state.recorded("w1")
    assert (marks.mark, marks.open_runs, marks.open_rows, marks.recent, marks.fingerprint) == (
        MARKS["mark"], MARKS["open"], MARKS["rows"], MARKS["recent"], MARKS["workflow"])
    assert dict(state.steps_fetched) == {"r9": "fp9"}
    assert state.quota == Quota(1000, 60.0, "headers")
    assert not state.workflow_row_changed("w1", "dw1")
    assert state.workflow_row_changed("w1", "dw1-new")


def test_reading_marks_tracks_nothing_and_processing_tracks_the_workflow() -> None:
    source_state: dict[str, Any] = {}
    state = bound(source_state, target_key=None)
    never = state.recorded("w2")
    assert (never.mark, never.open_runs, never.fingerprint) == (None, {}, None)
    assert source_state == {"resources": {"runs": {"workflows": {}}}}
    state.workflow("w2")  # a workflow named only for some runs: tracked, with no marks yet
    assert summary({"sources": {SOURCE_NAME: source_state}}) == Summary(1, 0, None)


def test_another_destination_starts_marks_fingerprints_and_digests_over() -> None:
    source_state: dict[str, Any] = {}
    pass_id = written(source_state).pass_id
    bound(source_state, target_key="duckdb:a")  # the same destination: nothing changes
    assert source_state["resources"]["runs"]["workflows"] == {"w1": {**MARKS, "pass": pass_id}}
    bound(source_state, target_key=None)  # a plain pipeline.run(onepin()): nothing changes
    assert source_state["resources"]["runs"]["workflows"] == {"w1": {**MARKS, "pass": pass_id}}

    bound(source_state, target_key="parquet:b")
    assert source_state["resources"] == {"runs": {"target": "parquet:b", "workflows": {}},
                                         "run_steps": {"fetched": {}},
                                         "workflows": {"rows": {}}}
    assert source_state["quota"]["limit"] == 1000  # the API's quota is the same anywhere
    assert source_state["checkpoint"] == {"piece": 2, "workflows_left": 5, "runs_left": 400,
                                          "pass": pass_id}


def test_steps_fingerprints_are_forgotten_when_not_settled_and_read_only_outside() -> None:
    source_state: dict[str, Any] = {}
    state = written(source_state)
    state.steps_settled("r9", None)
    state.steps_settled("r10", None)  # never recorded: nothing to forget
    assert source_state["resources"]["run_steps"] == {"fetched": {}}
    with pytest.raises(TypeError):
        state.steps_fetched["r9"] = "fp"  # type: ignore[index]


def test_no_quota_learned_writes_none_and_a_bad_one_reads_as_none() -> None:
    source_state: dict[str, Any] = {"quota": {"limit": "many"}}
    state = bound(source_state)
    assert state.quota is None
    state.remember_quota(None)
    assert source_state["quota"] == {"limit": "many"}


def test_an_unbound_state_says_so() -> None:
    state = LoadState()
    state.remember_quota(Quota(5, None, "429"))  # from a thread before any extract: dropped
    with pytest.raises(RuntimeError, match=r"before bind\(\)"):
        state.checkpoint(1, 0, 0)


def test_workflow_state_writes_every_key_and_keeps_others() -> None:
    data: dict[str, Any] = {"mark": "old", "later": 1}
    WorkflowState(data).write(mark=None, open_runs={}, open_rows={}, recent={},
                              fingerprint=None)
    assert data == {"mark": None, "open": {}, "rows": {}, "recent": {}, "workflow": None,
                    "later": 1}


def test_summary_of_a_pipeline_without_the_source() -> None:
    assert summary({}) == Summary(workflows_tracked=0, open_runs=0, checkpoint=None)


def test_a_real_load_writes_the_layout_and_status_reads_it(sim: Simulator, cli: Cli,
                                                           workdir: Path) -> None:
    cli("load")
    pipeline_state = dlt.attach("onepin", pipelines_dir=str(workdir / "pipelines")).state
    source_state = pipeline_state["sources"][SOURCE_NAME]
    resources = source_state["resources"]
    assert set(resources) == {"runs", "run_steps", "workflows"}
    assert set(resources["runs"]) == {"target", "workflows"}
    workflows = resources["runs"]["workflows"]
    assert {key for marks in workflows.values() for key in marks} == {*MARKS, "pass"}
    assert set(resources["workflows"]["rows"]) == set(workflows)
    assert set(resources["run_steps"]) == {"fetched"}
    assert set(source_state["checkpoint"]) == {"piece", "workflows_left", "runs_left", "pass"}

    assert len(workflows) == 3 and sum(len(marks["open"]) for marks in workflows.values()) == 2
    assert summary(pipeline_state) == Summary(3, 2, source_state["checkpoint"])
    shown = json.loads(cli("status", "--pipelines-dir", "pipelines", "--format", "json").output)
    assert (shown["workflows_tracked"], shown["open_runs"], shown["checkpoint"]) == (
        3, 2, {"piece": 1, "workflows_left": 0, "runs_left": 0,
               "pass": source_state["checkpoint"]["pass"]})
