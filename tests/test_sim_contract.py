"""Contract tests of the simulator over real HTTP: shapes, paging, errors, filters, time, faults."""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter

import pytest
import requests

from onepin_sim import FaultConfig, Simulator, WorldConfig
from onepin_sim.clock import parse_iso_ms
from tests.helpers import SMALL, api_get


def first_workflow(sim: Simulator) -> str:
    return str(api_get(sim, "/workflows", sort="name").json()["data"][0]["id"])


def all_runs(sim: Simulator, wf: str) -> list[dict]:
    return list(api_get(sim, f"/workflows/{wf}/runs", limit=100).json()["data"])


def test_envelopes_and_whoami(sim: Simulator) -> None:
    body = api_get(sim, "/auth/whoami").json()
    assert body["data"]["auth_kind"] == "api_key"
    assert body["data"]["workspace_id"] == sim.world.workspace_id
    assert set(body["meta"]) == {"request_id", "timestamp"}
    assert body["meta"]["timestamp"].endswith("Z")


def test_workflow_paging_across_pages(sim: Simulator) -> None:
    seen, offset, links = [], 0, []
    while True:
        body = api_get(sim, "/workflows", limit=2, offset=offset).json()
        assert body["pagination"]["total"] == SMALL.workflows
        assert body["pagination"]["limit"] == 2
        seen += [w["id"] for w in body["data"]]
        links.append(body["pagination"]["next"])
        if body["pagination"]["next"] is None:
            break
        assert body["pagination"]["next"].startswith(sim.base_url)
        assert f"offset={offset + 2}" in body["pagination"]["next"]
        offset += 2
    assert len(seen) == len(set(seen)) == SMALL.workflows
    assert links == [links[0], None] and links[0] is not None


def test_runs_newest_first_with_totals_and_links(sim: Simulator) -> None:
    wf = first_workflow(sim)
    page1 = api_get(sim, f"/workflows/{wf}/runs", limit=10).json()
    page3 = api_get(sim, f"/workflows/{wf}/runs", limit=10, offset=20).json()
    assert page1["pagination"]["total"] == SMALL.runs == 24
    created = [r["created_at"] for r in page1["data"]]
    assert created == sorted(created, reverse=True)
    assert [r["run_number"] for r in page1["data"]] == list(range(24, 14, -1))
    assert len(page3["data"]) == 4 and page3["pagination"]["next"] is None
    assert "offset=10" in page3["pagination"]["prev"]
    assert "workflow_id" not in page1["data"][0]  # list items carry no workflow_id


def test_run_status_filter_sort_and_search(sim: Simulator) -> None:
    wf = first_workflow(sim)
    runs = all_runs(sim, wf)
    counts = Counter(r["status"] for r in runs)
    failed_or_cancelled = api_get(sim, f"/workflows/{wf}/runs", status="failed,cancelled",
                                  limit=100).json()
    assert failed_or_cancelled["pagination"]["total"] == counts["failed"] + counts["cancelled"]
    assert {r["status"] for r in failed_or_cancelled["data"]} <= {"failed", "cancelled"}
    ascending = api_get(sim, f"/workflows/{wf}/runs", sort="created_at", order="asc").json()
    assert ascending["data"][0]["run_number"] == 1
    name = runs[0]["triggered_by"]["user_name"]
    searched = api_get(sim, f"/workflows/{wf}/runs", search=name.upper(), limit=100).json()
    assert searched["data"] and all(r["triggered_by"]["user_name"] == name
                                    for r in searched["data"])


def test_workspace_has_every_run_status_and_step_status(sim: Simulator) -> None:
    statuses: Counter[str] = Counter()
    step_statuses: Counter[str] = Counter()
    iterations: Counter[int] = Counter()
    sim.advance(0)
    for wf in api_get(sim, "/workflows").json()["data"]:
        for run in all_runs(sim, wf["id"]):
            statuses[run["status"]] += 1
            steps = api_get(sim, f"/workflows/{wf['id']}/runs/{run['id']}/steps").json()["data"]
            step_statuses.update(s["status"] for s in steps)
            iterations.update(s["iteration"] for s in steps)
    assert {"completed", "failed", "cancelled", "paused"} <= set(statuses)
    assert {"completed", "failed", "cancelled"} <= set(step_statuses)
    assert iterations[2] > 0  # retries exist
    # Running and pending appear mid-run: look at a run 10 s after it started.
    plan = sim.world.plan(0, 5)
    started = sim.world.run_at(0, 5, plan.started_ms + 10)
    assert started.status == "running"
    assert [s.status for s in started.steps] == ["running"] or \
        started.steps[-1].status == "pending"


def test_get_run_status_and_summary(sim: Simulator) -> None:
    wf = first_workflow(sim)
    runs = all_runs(sim, wf)
    detail = api_get(sim, f"/workflows/{wf}/runs/{runs[0]['id']}").json()["data"]
    assert detail["workflow_id"] == wf and "token_cost" in detail
    assert "definition_snapshot" in detail
    status = api_get(sim, f"/workflows/{wf}/runs/{runs[0]['id']}/status").json()["data"]
    assert "definition_snapshot" not in status and status["status"] == detail["status"]
    summary = api_get(sim, f"/workflows/{wf}/runs/summary").json()["data"]
    counts = Counter(r["status"] for r in runs)
    assert summary["total_runs"] == len(runs)
    assert summary["pass_rate"] == counts["completed"] / (counts["completed"] + counts["failed"])
    durations = [(parse_iso_ms(r["completed_at"]) - parse_iso_ms(r["started_at"])  # type: ignore
                  - r["paused_ms"]) / 1000 for r in runs if r["status"] == "completed"]
    assert summary["average_duration_seconds"] == pytest.approx(sum(durations) / len(durations))
    window = api_get(sim, f"/workflows/{wf}/runs/summary", **{
        "from": runs[4]["created_at"], "to": runs[0]["created_at"]}).json()["data"]
    assert window["total_runs"] == 5


def test_steps_include_result_and_filters(sim: Simulator) -> None:
    wf = first_workflow(sim)
    run = next(r for r in all_runs(sim, wf) if r["status"] == "completed")
    path = f"/workflows/{wf}/runs/{run['id']}/steps"
    plain = api_get(sim, path).json()
    assert "pagination" not in plain
    assert all(s["result"] is None for s in plain["data"])
    assert all(s["has_result"] for s in plain["data"] if s["status"] == "completed")
    full = api_get(sim, path, include_result="true").json()["data"]
    assert [s["id"] for s in full] == [s["id"] for s in plain["data"]]
    assert all(isinstance(s["result"], dict) for s in full if s["status"] == "completed")
    assert "recordsProcessed" in full[0]["result"]
    node = full[-1]
    by_id = api_get(sim, path, node_id=node["node_id"]).json()["data"]
    assert {s["node_id"] for s in by_id} == {node["node_id"]}
    by_type = api_get(sim, path, node_type="source_script").json()["data"]
    assert [s["node_type"] for s in by_type] == ["source_script"]


def test_overview_node_states(sim: Simulator) -> None:
    wf = first_workflow(sim)
    run = all_runs(sim, wf)[0]
    data = api_get(sim, f"/workflows/{wf}/runs/{run['id']}/overview").json()["data"]
    states = data["workflow_snapshot"]["node_states"]
    assert data["run"]["id"] == run["id"] and data["workflow"]["id"] == wf
    assert len(states) == len({s["node_id"] for s in states}) == run["finished_nodes"]


@pytest.mark.parametrize(("headers", "status", "code"), [
    pytest.param({}, 401, "INVALID_API_KEY", id="missing-key"),
    pytest.param({"Authorization": "Bearer nope"}, 401, "INVALID_API_KEY", id="malformed-key"),
    pytest.param({"Authorization": "Bearer op_live_" + "A" * 32}, 401, "INVALID_API_KEY",
                 id="unknown-key"),
    pytest.param({"X-Workspace-Id": "00000000-0000-4000-8000-000000000000"}, 403, "FORBIDDEN",
                 id="workspace-mismatch"),
])
def test_auth_errors(sim: Simulator, headers: dict[str, str], status: int, code: str) -> None:
    if "Authorization" not in headers and status == 403:
        headers = {**headers, "Authorization": f"Bearer {sim.api_key}"}
    response = requests.get(f"{sim.base_url}/api/v1/workflows", headers=headers, timeout=5)
    assert response.status_code == status
    assert response.json()["error"]["code"] == code
    assert response.json()["meta"]["request_id"]


def test_matching_workspace_header_is_accepted(sim: Simulator) -> None:
    response = requests.get(f"{sim.base_url}/api/v1/workflows", timeout=5, headers={
        "Authorization": f"Bearer {sim.api_key}", "X-Workspace-Id": sim.world.workspace_id})
    assert response.status_code == 200


@pytest.mark.parametrize(("path", "params", "status", "field"), [
    pytest.param("/workflows/not-a-uuid", {}, 422, "workflow_id", id="malformed-uuid"),
    pytest.param("/workflows/3fa85f64-5717-4562-b3fc-2c963f66afa6", {}, 404, None,
                 id="unknown-workflow"),
    pytest.param("/workflows", {"limit": "101"}, 422, "limit", id="limit-over-100"),
    pytest.param("/workflows", {"limit": "0"}, 422, "limit", id="limit-zero"),
    pytest.param("/workflows", {"last_run_after": "2026-01-01T00:00:00"}, 422, "last_run_after",
                 id="naive-datetime"),
    pytest.param("/RUNS", {"status": "completed,,failed"}, 422, "status", id="empty-token"),
    pytest.param("/RUNS", {"status": "done"}, 422, "status", id="unknown-status"),
    pytest.param("/RUNS/3fa85f64-5717-4562-b3fc-2c963f66afa6", {}, 404, None, id="unknown-run"),
    pytest.param("/SUMMARY", {"from": "2026-02-01T00:00:00Z", "to": "2026-01-01T00:00:00Z"},
                 422, "from", id="inverted-range"),
])
def test_request_errors(sim: Simulator, path: str, params: dict, status: int,
                        field: str | None) -> None:
    wf = first_workflow(sim)
    path = path.replace("/RUNS", f"/workflows/{wf}/runs").replace(
        "/SUMMARY", f"/workflows/{wf}/runs/summary")
    response = api_get(sim, path, **params)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == ("VALIDATION_ERROR" if status == 422 else "NOT_FOUND")
    if field:
        assert error["details"][0]["field"] == field


def test_other_workspace_ids_are_not_found(sim: Simulator) -> None:
    with Simulator(WorldConfig(seed=99, workflows=2, runs=3)) as other:
        foreign = api_get(other, "/workflows").json()["data"][0]["id"]
    assert api_get(sim, f"/workflows/{foreign}").status_code == 404


def test_determinism_across_restarts() -> None:
    answers = []
    for _ in range(2):
        with Simulator(SMALL) as simulator:
            wf = first_workflow(simulator)
            run = all_runs(simulator, wf)[3]
            steps = api_get(simulator, f"/workflows/{wf}/runs/{run['id']}/steps",
                            include_result="true").json()["data"]
            answers.append((run, steps))
    assert answers[0] == answers[1]


def test_clock_advance_finishes_open_runs_and_adds_new_ones(sim: Simulator) -> None:
    wf = first_workflow(sim)
    before = {r["id"]: r for r in all_runs(sim, wf)}
    open_before = [r for r in before.values() if r["status"] in ("running", "paused", "pending")]
    assert open_before, "the small world must have open runs at the initial clock"
    response = requests.post(f"{sim.base_url}/_sim/clock/advance?seconds=86400", timeout=5)
    assert response.json()["now_ms"] == SMALL.start_ms + 86_400_000
    after = {r["id"]: r for r in all_runs(sim, wf)}
    assert len(after) == len(before) + 24  # one run an hour
    assert all(after[r["id"]]["status"] in ("completed", "failed", "cancelled")
               for r in open_before)


def test_stats_count_requests_per_endpoint(sim: Simulator) -> None:
    wf = first_workflow(sim)
    api_get(sim, f"/workflows/{wf}/runs")
    api_get(sim, f"/workflows/{wf}/runs")
    stats = requests.get(f"{sim.base_url}/_sim/stats", timeout=5).json()
    assert stats["requests"] == {"workflows": 1, "runs": 2}
    requests.post(f"{sim.base_url}/_sim/stats/reset", timeout=5)
    assert sim.stats.snapshot()["total"] == 0


def _hit(sim: Simulator, n: int) -> Counter:
    outcomes: Counter = Counter()
    for _ in range(n):
        try:
            response = api_get(sim, "/auth/whoami")
        except requests.ConnectionError:
            outcomes["dropped"] += 1
            continue
        try:
            response.json()
            outcomes[response.status_code] += 1
        except ValueError:
            outcomes[f"{response.status_code}-{response.headers['Content-Type']}"] += 1
    return outcomes


@pytest.mark.parametrize(("knob", "expect"), [
    pytest.param({"share_429": 1.0, "retry_after_s": 3}, 429, id="429"),
    pytest.param({"share_5xx": 1.0, "html_share_of_5xx": 0.0}, "5xx-json", id="5xx-json"),
    pytest.param({"share_5xx": 1.0, "html_share_of_5xx": 1.0}, "5xx-html", id="5xx-html"),
    pytest.param({"share_malformed": 1.0}, "200-application/json", id="malformed"),
    pytest.param({"share_dropped": 1.0}, "dropped", id="dropped"),
])
def test_fault_knobs(sim: Simulator, knob: dict, expect: object) -> None:
    sim.set_faults(**knob)
    outcomes = _hit(sim, 4)
    if expect == 429:
        assert outcomes == Counter({429: 4})
        response = api_get(sim, "/auth/whoami")
        assert response.headers["Retry-After"] == "3"
    elif expect == "5xx-json":
        assert sum(outcomes.values()) == 4 and all(isinstance(k, int) and k >= 500
                                                   for k in outcomes)
    elif expect == "5xx-html":
        assert all(str(k).endswith("text/html") for k in outcomes)
    else:
        assert outcomes == Counter({expect: 4})
    assert sum(sim.stats.snapshot()["faults"].values()) >= 4


def test_fault_shares_and_latency_are_seeded_and_observable() -> None:
    faults = FaultConfig(share_5xx=0.3, latency_ms=20, seed=3)
    with Simulator(SMALL, faults) as sim:
        started = time.perf_counter()
        outcomes = _hit(sim, 40)
        elapsed = time.perf_counter() - started
    assert 4 <= sum(v for k, v in outcomes.items() if str(k)[0] == "5") <= 20
    assert elapsed >= 40 * 0.020


def test_rate_limit_per_key() -> None:
    # An hour-long fixed window: five requests cannot straddle two windows
    with Simulator(SMALL, FaultConfig(rate_limit_per_min=3, rate_window_s=3600)) as sim:
        outcomes = _hit(sim, 5)
        assert outcomes == Counter({200: 3, 429: 2})
        response = api_get(sim, "/auth/whoami")
        assert 1 <= int(response.headers["Retry-After"]) <= 3600
        assert "X-RateLimit-Limit" not in response.headers  # headers are off by default


def test_rate_limit_headers_tell_the_quota() -> None:
    faults = FaultConfig(rate_limit_per_min=3, rate_window_s=3600, rate_limit_headers=True)
    with Simulator(SMALL, faults) as sim:
        answers = [api_get(sim, "/auth/whoami") for _ in range(4)]
        assert [r.status_code for r in answers] == [200, 200, 200, 429]
        assert [r.headers["X-RateLimit-Remaining"] for r in answers] == ["2", "1", "0", "0"]
        assert {r.headers["X-RateLimit-Limit"] for r in answers} == {"3"}
        assert {r.headers["RateLimit-Policy"] for r in answers} == {'"default";q=3;w=3600'}
        assert answers[1].headers["RateLimit"].startswith('"default";r=1;t=')
        reset = int(answers[0].headers["X-RateLimit-Reset"]) - time.time()
        assert 0 < reset <= 3601
        assert answers[3].headers["Retry-After"] == answers[3].headers["RateLimit"].split("t=")[1]
        admin = requests.get(f"{sim.base_url}/_sim/stats", timeout=10)
        assert "X-RateLimit-Limit" not in admin.headers


def test_sliding_window_quota_and_the_most_requests_in_any_window() -> None:
    faults = FaultConfig(rate_limit_per_min=3, rate_window_s=2, rate_sliding=True)
    with Simulator(SMALL, faults) as sim:
        assert _hit(sim, 5) == Counter({200: 3, 429: 2})  # rejected requests use no quota
        time.sleep(2.05)  # the first three leave the window
        assert _hit(sim, 4) == Counter({200: 3, 429: 1})
        stats = requests.get(f"{sim.base_url}/_sim/stats", params={"window": 2}, timeout=10)
        most = stats.json()["most_in_any_window"]
        assert most == {"window_s": 2.0, "requests": 5, "answered": 3}
        assert sim.stats.most_in_any_window(3600, answered=True) == 6


def test_faults_admin_endpoint(sim: Simulator) -> None:
    response = requests.post(f"{sim.base_url}/_sim/faults", data=json.dumps({"share_429": 0.5}),
                             timeout=5)
    assert response.json()["share_429"] == 0.5 and sim.faults.share_429 == 0.5
    bad = requests.post(f"{sim.base_url}/_sim/faults", data=json.dumps({"nope": 1}), timeout=5)
    assert bad.status_code == 400 and "unknown fault knob" in bad.json()["error"]


def test_large_world_is_lazy() -> None:
    """A million-step workspace answers without generating it all."""
    big = WorldConfig(seed=5, workflows=100, runs=1000, nodes=10)
    with Simulator(big) as sim:
        wf = sim.world.workflow_id(57)
        page = api_get(sim, f"/workflows/{wf}/runs", limit=100, offset=900).json()
        assert page["pagination"]["total"] == 1000
        run = page["data"][-1]
        steps = api_get(sim, f"/workflows/{wf}/runs/{run['id']}/steps").json()["data"]
        assert len(steps) >= 10
        assert sim.world.plan.cache_info().currsize < 200


def test_sim_command_serves_until_interrupted(tmp_path: object) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "onepin_etl.cli", "sim", "--port", "0", "--workflows", "2"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=os.environ.copy())
    try:
        assert process.stdout is not None
        lines = [process.stdout.readline() for _ in range(3)]
        url = re.search(r"ONEPIN_BASE_URL=(\S+)", lines[1]).group(1)  # type: ignore[union-attr]
        key = re.search(r"ONEPIN_API_KEY=(\S+)", lines[2]).group(1)  # type: ignore[union-attr]
        host, port = url[len("http://"):].split(":")
        conn = http.client.HTTPConnection(host, int(port), timeout=5)
        conn.request("GET", "/api/v1/workflows", headers={"Authorization": f"Bearer {key}"})
        assert json.loads(conn.getresponse().read())["pagination"]["total"] == 2
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=10)
    assert process.returncode == 0


def test_workflow_run_counts_follow_the_runs_as_the_clock_moves(sim: Simulator) -> None:
    """last_run_at, runs_count and run_status_counts agree with the runs list at every instant."""
    for _ in range(3):
        for item in api_get(sim, "/workflows", limit=100).json()["data"]:
            runs = all_runs(sim, item["id"])
            assert item["runs_count"] == len(runs)
            assert item["run_status_counts"] == {
                s: sum(r["status"] == s for r in runs)
                for s in ("pending", "running", "completed", "failed", "cancelled", "paused")}
            assert item["last_run_at"] == max(r["created_at"] for r in runs)
        sim.advance(5 * 3600 + 17 * 60)


def test_open_status_filter_or_matches(sim: Simulator) -> None:
    wf = first_workflow(sim)
    open_runs = [r for r in all_runs(sim, wf) if r["status"] in ("pending", "running", "paused")]
    listed = api_get(sim, f"/workflows/{wf}/runs", status="pending,running,paused",
                     limit=100).json()
    assert listed["pagination"]["total"] == len(open_runs) > 0
    assert [r["id"] for r in listed["data"]] == [r["id"] for r in open_runs]  # newest first


def test_last_run_after_filters_workflows() -> None:
    with Simulator(WorldConfig(seed=5, workflows=4, runs=5, run_interval_s=7200)) as sim:
        items = api_get(sim, "/workflows", limit=100).json()["data"]
        cut = sorted(i["last_run_at"] for i in items)[2]
        after = api_get(sim, "/workflows", last_run_after=cut, limit=100).json()
        assert {i["id"] for i in after["data"]} == {i["id"] for i in items
                                                    if i["last_run_at"] >= cut}
        naive = api_get(sim, "/workflows", last_run_after="2026-01-01T00:00:00")
        assert naive.status_code == 422


def test_new_workflows_appear_as_the_clock_moves() -> None:
    config = WorldConfig(seed=5, workflows=2, runs=3, new_workflow_every_s=3600)
    with Simulator(config) as sim:
        late_id = sim.world.workflow_id(2)
        assert api_get(sim, "/workflows").json()["pagination"]["total"] == 2
        assert api_get(sim, f"/workflows/{late_id}").status_code == 404
        sim.advance(3600)
        listed = api_get(sim, "/workflows", limit=100).json()["data"]
        born = next(i for i in listed if i["id"] == late_id)
        assert born["runs_count"] == 0 and born["last_run_at"] is None
        assert born["created_at"] > max(i["created_at"] for i in listed if i["id"] != late_id)
        sim.advance(2 * 3600)
        runs = all_runs(sim, late_id)
        assert len(runs) == 2 and min(r["created_at"] for r in runs) > born["created_at"]


def test_late_runs_show_up_after_their_created_at() -> None:
    config = WorldConfig(seed=5, workflows=1, runs=9, late_run_every=3, late_by_s=1800)
    with Simulator(config) as sim:
        wf = sim.world.workflow_id(0)
        late = [i for i in range(12) if sim.world.is_late(i)]
        assert late == [2, 5, 8, 11]
        # Run 8 (the 9th) was created less than 30 minutes before the initial clock: hidden
        created_8 = sim.world.run_created_ms(0, 8)
        sim.clock.set(created_8 + 60_000)
        runs = all_runs(sim, wf)
        assert [r["run_number"] for r in runs] == [8, 7, 6, 5, 4, 3, 2, 1]
        late_run = sim.world.plan(0, 8).run_id
        assert api_get(sim, f"/workflows/{wf}/runs/{late_run}").status_code == 404
        sim.clock.set(created_8 + 1_800_000)
        runs = all_runs(sim, wf)
        assert [r["run_number"] for r in runs][:2] == [9, 8]
        assert api_get(sim, f"/workflows/{wf}/runs/{late_run}").status_code == 200


def test_a_client_gone_mid_request_is_no_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    """A killed load resets its connections: the simulator says nothing of it (the resume
    benchmark printed hundreds of tracebacks), but any other error of a request is printed."""
    with Simulator(WorldConfig(workflows=1, runs=1)) as sim:
        for error in (ConnectionResetError(104, "reset by peer"), BrokenPipeError(32, "pipe"),
                      ValueError("a bug")):
            try:
                raise error
            except (ConnectionError, ValueError):
                sim._server.handle_error(None, ("127.0.0.1", 40000))
    printed = capsys.readouterr().err
    assert printed.count("Traceback") == 1 and "ValueError: a bug" in printed
