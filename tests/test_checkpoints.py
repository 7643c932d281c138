"""Big loads in pieces (``onepin_source.pieces``): a killed first load resumes after its last
committed piece and fetches nothing that piece holds; a time-boxed load commits what it fetched,
says what is left, and the next loads converge to exact tables."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dlt
import pytest

from onepin_etl import Target, load
from onepin_sim import Simulator, WorldConfig
from onepin_source.pieces import Pieces, estimated_runs
from onepin_source.state import WorkflowState
from tests.helpers import (
    TERMINAL,
    Db,
    api_snapshot,
    assert_matches_api,
    invoke_cli,
    kill_during_extract,
    start_load,
    table,
    unsettled,
)

# 6 workflows of 60 runs: a first load takes six pieces of one workflow (a piece takes 8% of
# the load's runs, at least 25).
BIG = WorldConfig(seed=5, workflows=6, runs=60, nodes=4)
# The same with a run every 10 minutes: every workflow has open (paused or pending) runs, which
# a new pass reads again and a continued pass does not.
OPEN = WorldConfig(seed=5, workflows=6, runs=60, nodes=4, run_interval_s=600)
TIMEBOX_LINE = re.compile(r"^Time is up after \d+ s: (\d+) workflows \(~\d+ runs\) remaining; "
                          r"the next load continues\.$", re.MULTILINE)


@pytest.fixture
def big() -> Iterator[Simulator]:
    with Simulator(BIG) as simulator:
        yield simulator


@pytest.fixture
def opened() -> Iterator[Simulator]:
    with Simulator(OPEN) as simulator:
        yield simulator


def assert_holds_whole_workflows(db: Db, snap: dict[str, Any]) -> None:
    """What the committed pieces hold is exact: each workflow with every run and every step the
    API shows (or nothing of it). A package whose load step the kill cut (dlt merges one table
    after another, each in a transaction of its own; the package is committed by its row in
    ``_dlt_loads``, last) is finished by the next load: its rows are not counted."""
    committed = ("where _dlt_load_id in (select load_id from onepin._dlt_loads "
                 "where status = 0)")
    runs = {r for r, in table(db, f"select id from onepin.runs {committed}")}
    workflows = {w for w, in table(db, f"select id from onepin.workflows {committed}")}
    assert {snap["runs"][r]["workflow_id"] for r in runs} == workflows
    assert runs == {i for i, r in snap["runs"].items() if r["workflow_id"] in workflows}
    steps = {s for s, in table(db, f"select id from onepin.run_steps {committed}")}
    assert steps == {i for i, s in snap["steps"].items() if s["run_id"] in runs}


def committed_workflows(workdir: Path) -> set[str]:
    """The workflows the one pipeline under ``workdir`` committed (its local state's marks)."""
    state_files = list((workdir / "pipelines").glob("*/state.json"))
    if not state_files:  # killed before the pipeline saved anything
        return set()
    (state_file,) = state_files
    pipeline = dlt.attach(state_file.parent.name, pipelines_dir=str(workdir / "pipelines"))
    source = pipeline.state.get("sources", {}).get("onepin", {})  # none before a commit
    workflows = source.get("resources", {}).get("runs", {}).get("workflows", {})
    return {w for w, marks in workflows.items() if marks.get("workflow") is not None}


def kill_then_resume(sim: Simulator, workdir: Path, *args: str, after_steps: int,
                     row_format: str = "arrow", db: Db | None = None) -> None:
    """A first load (``args``: its destination) SIGKILLed after ``after_steps`` steps
    requests, then the next load: what the kill left is exact, and the next load fetches only
    what no committed piece holds."""
    db = db or workdir / "onepin_etl.duckdb"
    flags = ("--row-format", row_format, *args)
    snap = api_snapshot(sim)
    sim.stats.reset()
    sim.set_faults(latency_ms=10)  # slow enough to be killed where asked
    process = start_load(sim, workdir, "none", "--concurrency", "2", *flags)
    kill_during_extract(sim, process, after_steps=after_steps)
    _, stderr = process.communicate(timeout=180)
    assert process.returncode == -signal.SIGKILL, stderr[-2000:]
    # The killed load's last requests are counted when answered, after their latency: before,
    # one could land after the reset below and count as the resumed load's (361 for 360).
    assert sim.stats.wait_idle()
    sim.set_faults(latency_ms=0)

    if after_steps > BIG.runs:
        assert_holds_whole_workflows(db, snap)
    # Committed: the pieces loaded, and a piece extracted but not yet loaded when killed (the
    # next load loads its package first, and fetches nothing of it): the local state has both.
    held_workflows = committed_workflows(workdir)
    held = {r for r, run in snap["runs"].items() if run["workflow_id"] in held_workflows}
    # All but one piece (a piece here is one workflow): the piece in flight, or the one read
    # ahead while the last was loaded. Answered steps <= runs * (pieces committed + 1).
    assert len(held) >= (-(-after_steps // BIG.runs) - 1) * BIG.runs
    sim.stats.reset()
    invoke_cli(sim, workdir)("load", *flags)
    assert_matches_api(db, snap)
    # The resumed load continues the killed load's pass: the workflow list (one page), then
    # for each workflow no committed piece holds a runs page and every run's steps; nothing
    # for the workflows held, not even their open runs (the next pass reads those again).
    assert sim.stats.snapshot()["requests"] == {
        "workflows": 1, **({"runs": BIG.workflows - len(held_workflows)} if held_workflows
                           != set(snap["workflows"]) else {}),
        "steps": len(snap["runs"]) - len(held)}
    # (Every workflow has open runs: a new pass reads them again, as the next load shows.)
    assert {snap["runs"][r]["workflow_id"] for r in snap["runs"]
            if snap["runs"][r]["status"] not in TERMINAL} == set(snap["workflows"])
    sim.stats.reset()
    invoke_cli(sim, workdir)("load", *flags)  # a new pass: the open runs are read again
    requests = sim.stats.snapshot()["requests"]
    assert requests.get("run", 0) + requests.get("runs", 0) > 0
    assert requests.get("steps", 0) == len(
        {r for r, run in snap["runs"].items() if run["status"] not in TERMINAL
         and unsettled(snap, r)})
    assert_matches_api(db, snap)


def test_a_killed_first_load_resumes_after_its_last_piece(opened: Simulator, workdir: Path
                                                         ) -> None:
    kill_then_resume(opened, workdir, after_steps=150)  # in the third piece: two are held


@pytest.mark.slow
@pytest.mark.parametrize("row_format", ["arrow", "dicts"])
@pytest.mark.parametrize("after_steps", [20, 100, 250, 340])
def test_kill_matrix(opened: Simulator, workdir: Path, after_steps: int, row_format: str
                     ) -> None:
    kill_then_resume(opened, workdir, after_steps=after_steps, row_format=row_format)


def test_a_first_load_commits_in_pieces_with_exact_tables(big: Simulator, workdir: Path) -> None:
    big.stats.reset()
    result = invoke_cli(big, workdir)("load")
    # Each request once: the answers read ahead for the next piece (while one is loaded) are
    # taken by its extract, never asked again (onepin_source.readahead).
    assert big.stats.snapshot()["requests"] == {"workflows": 1, "runs": 6, "steps": 360}
    assert result.output.splitlines()[-1] == (
        "Loaded 6 workflows, 360 runs, 1445 run_steps into onepin_etl.duckdb (dataset onepin); "
        "6 load package(s).")
    progress = re.findall(r"^committed piece (\d): [\d,]+ requests done in \d+ s "
                          r"\([\d.]+/s\); ~[\d,]+ requests left for (\d) workflows \(~\d+ runs\), "
                          r"ETA (unknown|\d+ s)$", result.output, re.MULTILINE)
    # between the pieces; the rate for an ETA is measured from the second piece on
    assert progress == [("1", "5", "unknown")] + [(str(n), str(6 - n), progress[n - 1][2])
                                                   for n in range(2, 6)]
    assert all(eta != "unknown" for _, _, eta in progress[1:]), progress
    assert_matches_api(workdir / "onepin_etl.duckdb", api_snapshot(big))


def test_a_reader_gets_the_duckdb_file_between_pieces(big: Simulator, workdir: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """The file is held open while a piece's package loads (``DuckDb.held_open``), and let go
    after it: another process (a notebook) opens it between pieces and sees whole workflows,
    one more each piece."""
    monkeypatch.setenv("ONEPIN_API_KEY", big.api_key)
    monkeypatch.setenv("ONEPIN_BASE_URL", big.base_url)
    path = workdir / "onepin_etl.duckdb"
    read = ("import duckdb, sys; con = duckdb.connect(sys.argv[1], read_only=True); "
            "print(con.execute('select count(*) from onepin.runs').fetchone()[0])")
    seen: list[int] = []

    def reader(info: Any, plan: Any) -> None:
        done = subprocess.run([sys.executable, "-c", read, str(path)], capture_output=True,
                              text=True, timeout=60, check=False)
        assert done.returncode == 0, done.stderr[-1000:]
        seen.append(int(done.stdout))

    load(Target(duckdb_path=str(path), pipelines_dir=str(workdir / "pipelines")),
         on_piece=reader)
    assert seen == [BIG.runs * n for n in range(1, 7)]
    assert_matches_api(path, api_snapshot(big))


@pytest.mark.parametrize(("tables", "requests"), [
    (["workflows"], {"workflows": 1}),
    (["workflows", "runs"], {"workflows": 1, "runs": 6}),
])
def test_a_subset_of_the_tables_finishes_and_reads_nothing_ahead(
        big: Simulator, workdir: Path, monkeypatch: pytest.MonkeyPatch, tables: list[str],
        requests: dict[str, int]) -> None:
    """A Dagster asset alone, on a new DuckDB file: the workflows alone are one piece (pieces
    are cut by the runs listing: before, this load never ended); with the runs, pieces, but
    no steps fetched ahead that nobody would take; no views (they read all three tables)."""
    monkeypatch.setenv("ONEPIN_API_KEY", big.api_key)
    monkeypatch.setenv("ONEPIN_BASE_URL", big.base_url)
    big.stats.reset()
    path = workdir / "onepin_etl.duckdb"
    load(Target(duckdb_path=str(path), pipelines_dir=str(workdir / "pipelines")), tables=tables)
    assert big.stats.wait_idle()
    assert big.stats.snapshot()["requests"] == requests
    snap = api_snapshot(big)
    assert {w for w, in table(path, "select id from onepin.workflows")} == set(snap["workflows"])
    if "runs" in tables:
        assert {r for r, in table(path, "select id from onepin.runs")} == set(snap["runs"])


@pytest.mark.parametrize(("row_format", "destination"),
                         [("arrow", "duckdb"), ("dicts", "duckdb"), ("arrow", "parquet")])
def test_time_boxed_loads_converge(workdir: Path, row_format: str, destination: str) -> None:
    where: Db = workdir / "onepin_etl.duckdb"
    args: tuple[str, ...] = ()
    if destination == "parquet":
        where, args = {"parquet_dir": str(workdir / "pq")}, ("--destination", "parquet",
                                                              "--parquet-dir", "pq")
    with Simulator(WorldConfig(seed=5, workflows=4, runs=30, nodes=4)) as sim:
        time_boxed_loads_converge(sim, workdir, where, "--row-format", row_format, *args)


def time_boxed_loads_converge(sim: Simulator, workdir: Path, where: Db, *args: str) -> None:
    """Loads boxed to half a second, one after another: each commits at least one workflow
    and says what is left, the last one says nothing, and the tables are exact."""
    cli = invoke_cli(sim, workdir)
    sim.set_faults(latency_ms=15)  # one workflow alone outlasts the time box
    outputs = []
    for _ in range(5):
        result = cli("load", "--max-duration", "0.5", "--concurrency", "1", *args)
        outputs.append(result.output)
        if not TIMEBOX_LINE.search(result.output):
            break
    left = [int(m.group(1)) for o in outputs for m in [TIMEBOX_LINE.search(o)] if m]
    # Every load commits at least one workflow, and the last one says nothing is left.
    assert left[0] < 4 and all(a > b for a, b in zip(left, left[1:], strict=False))
    assert len(outputs) == len(left) + 1
    sim.set_faults(latency_ms=0)
    assert_matches_api(where, api_snapshot(sim))


def test_max_duration_from_config_status_and_bad_values(big: Simulator, workdir: Path) -> None:
    cli = invoke_cli(big, workdir)
    big.set_faults(latency_ms=15)
    result = cli("load", "--concurrency", "1", SOURCES__ONEPIN__MAX_DURATION="0.5")
    left = TIMEBOX_LINE.search(result.output)
    assert left
    status = cli("status", "--pipelines-dir", "pipelines").output
    assert re.search(rf"last checkpoint: piece 1 of the last load; {left.group(1)} workflows "
                     r"\(~\d+ runs\) left; the next load continues$", status, re.MULTILINE), status
    big.set_faults(latency_ms=0)
    cli("load")
    status = cli("status", "--pipelines-dir", "pipelines").output
    assert re.search(r"last checkpoint: piece \d+ of the last load; nothing left$", status,
                     re.MULTILINE), status
    bad = cli("load", SOURCES__ONEPIN__MAX_DURATION="-3", expect=2)
    assert bad.output.strip() == "error: max_duration must be a number of seconds above 0, " \
                                 "not -3.0"
    assert "Invalid value for '--max-duration'" in cli("load", "--max-duration", "0",
                                                        expect=2).output


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def never_loaded(workflow_id: str) -> WorkflowState:
    return WorkflowState()


def workflows(*runs_counts: int) -> list[dict[str, Any]]:
    return [{"id": f"w{i}", "runs_count": n} for i, n in enumerate(runs_counts)]


def test_pieces_take_workflows_by_budget_and_requeue_those_not_started() -> None:
    clock = Clock()
    plan = Pieces(max_duration_s=100, clock=clock)
    plan.checkpoints = True
    first = plan.next_piece(lambda: workflows(60, 60, 60, 6000, 10), never_loaded)
    assert [w["id"] for w in first] == ["w0", "w1"]  # 100 estimated runs for the first piece
    assert plan.may_start("w0")
    clock.now = 61  # a piece starts no workflow after a minute
    assert not plan.may_start("w1")
    plan.fetched_steps(60)
    second = plan.next_piece(lambda: [], never_loaded)
    assert [w["id"] for w in second] == ["w1"]  # ~1 run/s measured, 39 s left in the box
    assert plan.left() == (4, 6130) and plan.may_start("w1") and plan.left() == (3, 6070)
    clock.now = 100
    assert plan.next_piece(lambda: [], never_loaded) == [] and plan.time_is_up()
    assert not plan.finished and plan.left() == (3, 6070)


def test_the_next_piece_is_reserved_once_a_piece_is_extracted_and_taken_as_reserved() -> None:
    now = [0.0]
    read: list[list[str]] = []
    plan = Pieces(max_duration_s=100, fetch_ahead=lambda ws: read.append([w["id"] for w in ws]),
                  clock=lambda: now[0])
    plan.checkpoints = True
    workflows = [{"id": f"w{i}", "runs_count": 30} for i in range(30)]  # 900 runs: 8% is 72
    first = plan.next_piece(lambda: workflows, lambda _: WorkflowState())
    assert [w["id"] for w in first] == ["w0", "w1", "w2"]  # 72 runs
    for workflow in first:
        assert plan.may_start(workflow["id"])
    plan.fetched_steps(90)
    now[0] = 1.0
    plan.extracted()
    assert read == [["w3", "w4", "w5"]]
    plan.fetched_steps(900)  # the rate changed: the next budget would differ, not this piece
    assert [w["id"] for w in plan.next_piece(lambda: [], lambda _: WorkflowState())] == \
        ["w3", "w4", "w5"]
    # A piece that left a workflow unstarted reserves nothing (it goes back to the front).
    assert plan.may_start("w3") and plan.may_start("w4")
    plan.extracted()
    assert len(read) == 1
    assert [w["id"] for w in plan.next_piece(lambda: [], lambda _: WorkflowState())][0] == "w5"
    for workflow in plan._piece:
        plan.may_start(workflow["id"])
    now[0] = 100.0  # the time box is up: nothing is read ahead
    plan.extracted()
    assert len(read) == 1


def test_a_plan_without_checkpoints_reads_nothing_ahead() -> None:
    read: list[Any] = []
    plan = Pieces(fetch_ahead=read.append)
    plan.next_piece(lambda: [{"id": "w", "runs_count": 3}], lambda _: WorkflowState())
    plan.extracted()
    assert read == []


def test_a_piece_is_a_small_share_of_a_small_load() -> None:
    plan = Pieces()
    plan.checkpoints = True
    assert len(plan.next_piece(lambda: workflows(*[10] * 100), never_loaded)) == 8  # 8% of 1,000


@pytest.mark.parametrize("open_every", [2, 1])
def test_a_re_load_that_only_re_reads_open_runs_is_one_piece(open_every: int) -> None:
    """A re-load whose workflows have no new runs, only runs open at the last load to read
    again, costs a listing a workflow and whatever steps moved: pieces are cut by new runs, so
    it is one package however many workflows it re-reads (cut by the open runs, the unchanged
    re-load of 3,000 workflows took 382 packages and 13 minutes)."""
    clock = Clock()
    plan = Pieces(clock=clock)
    plan.checkpoints = True
    seen: dict[str, Any] = {"workflow": [None, 10, {}], "open": {}}  # what the list says: unchanged
    opened = {f"w{i}": WorkflowState({**seen, "open": {"r": "t"}})
              for i in range(0, 400, open_every)}

    def state(workflow_id: str) -> WorkflowState:  # those with an open run, or unchanged
        return opened.get(workflow_id, WorkflowState(seen))

    pieces: list[int] = []
    while not plan.finished and len(pieces) < 50:
        piece = plan.next_piece(lambda: workflows(*[10] * 400), state)
        assert all(plan.may_start(w["id"]) for w in piece)
        pieces.append(len(piece))
        clock.now += 1
    assert plan.runs_total == 0 and plan.left() == (0, 0)
    assert pieces == [400], pieces


def test_a_time_boxed_re_load_without_new_runs_stops_starting_workflows_when_time_is_up(
        ) -> None:
    clock = Clock()
    plan = Pieces(max_duration_s=60, clock=clock)
    plan.checkpoints = True
    seen = WorkflowState({"workflow": [None, 10, {}], "open": {"r": "t"}})
    piece = plan.next_piece(lambda: workflows(*[10] * 30), lambda _: seen)
    assert len(piece) == 30 and plan.may_start("w0")
    clock.now = 61
    assert not plan.may_start("w1") and plan.time_is_up()


def test_new_runs_cut_pieces_and_workflows_without_any_ride_along() -> None:
    plan = Pieces()
    plan.checkpoints = True
    seen = WorkflowState({"workflow": [None, 10, {}], "open": {"r": "t"}})
    items = [{"id": f"w{i}", "runs_count": 10 if i % 10 else 60} for i in range(100)]
    states = {w["id"]: seen if w["runs_count"] == 10 else WorkflowState() for w in items}
    assert plan.next_piece(lambda: items, states.__getitem__) == items[:1]
    assert plan.runs_total == 600  # 10 never loaded, 60 runs each: 8% is 48
    assert plan.may_start("w0")
    assert plan.next_piece(lambda: [], states.__getitem__) == items[1:11]


def test_every_load_starts_one_workflow_with_new_runs_even_when_the_time_is_up() -> None:
    clock = Clock()
    plan = Pieces(max_duration_s=1, clock=clock)
    clock.now = 5
    loaded = {"w0": WorkflowState({"workflow": [None, 3, {}], "open": {"r1": "t"}})}  # no new
    assert len(plan.next_piece(lambda: workflows(3, 4, 5),
                               lambda w: loaded.get(w, WorkflowState()))) == 3
    assert plan.may_start("w0") and plan.may_start("w1") and not plan.may_start("w2")


def test_estimated_runs_from_the_list_item_and_the_state() -> None:
    item = {"id": "w", "runs_count": 50, "last_run_at": "2026-01-01T00:00:00Z"}
    assert estimated_runs(item, WorkflowState()) == 50
    seen = {"workflow": ["2026-01-01T00:00:00+00:00", 50, {}], "open": {}}
    assert estimated_runs(item, WorkflowState(seen)) == 0
    with_open = WorkflowState({**seen, "open": {"r": "t"}})
    assert estimated_runs({**item, "runs_count": 53}, with_open) == 4


class Limiter:
    def __init__(self) -> None:
        self.sent = 104

    def describe(self) -> str:
        return "quota learned: 1000 requests / 60 s"


def test_progress_says_requests_done_and_left_rate_eta_and_quota() -> None:
    """The ETA's rate is measured from the second piece on: the first, small, is mostly the
    load's fixed costs (at 10,000 workflows its rate put the ETA 4.5x too far)."""
    clock = Clock()
    limiter = Limiter()
    plan = Pieces(limiter=limiter, clock=clock)
    plan.checkpoints = True
    plan.next_piece(lambda: workflows(100, 100, 200), never_loaded)
    plan.may_start("w0")
    clock.now = 50
    assert plan.describe() == (
        "piece 1: 104 requests done in 50 s (2.1/s); ~303 requests left for 2 workflows "
        "(~300 runs), ETA unknown; quota learned: 1000 requests / 60 s")
    plan.fetched_steps(100)
    assert plan.next_piece(lambda: [], never_loaded) == workflows(100, 100, 200)[1:2]
    plan.may_start("w1")
    limiter.sent, clock.now = 205, 60
    assert plan.describe() == (
        "piece 2: 205 requests done in 60 s (3.4/s); ~202 requests left for 1 workflows "
        "(~200 runs), ETA 20 s; quota learned: 1000 requests / 60 s")


def test_the_eta_says_it_does_not_know_when_open_runs_may_double_the_requests_left() -> None:
    """Runs open at the last load cost a steps request only if they moved: the requests left
    are a range, and an ETA from it is given only when the range is within 2x."""
    clock = Clock()
    limiter = Limiter()
    plan = Pieces(limiter=limiter, clock=clock)
    plan.checkpoints = True
    seen: dict[str, Any] = {"workflow": [None, 10, {}], "open": {f"r{i}": "t" for i in range(150)}}
    items = [{"id": "w0", "runs_count": 300}, *workflows(10, 10, 10)[1:]]

    def state(workflow_id: str) -> WorkflowState:
        return WorkflowState() if workflow_id == "w0" else WorkflowState(seen)

    assert plan.next_piece(lambda: items, state) == items[:1]
    plan.may_start("w0")
    clock.now = 50
    plan.fetched_steps(100)
    assert plan.next_piece(lambda: [], state) == items[1:]
    plan.may_start("w1")
    limiter.sent, clock.now = 204, 60
    assert plan.describe() == (
        "piece 2: 204 requests done in 60 s (3.4/s); ~2-152 requests left for 1 workflows "
        "(~150 runs), ETA unknown (0 s to 15 s); quota learned: 1000 requests / 60 s")
