"""Scheduled loads: one load per pipeline at a time, a killed holder never blocks the next."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import duckdb

from onepin_etl import lock
from onepin_etl.cli import main
from onepin_sim import Simulator
from tests.helpers import (
    ROOT,
    SMALL,
    TERMINAL,
    api_snapshot,
    assert_matches_api,
    kill_during_extract,
    start_load,
)


def pipeline_lock(workdir: Path, name: str = "onepin") -> Path:
    return workdir / "pipelines" / f".{name}.lock"


def wait_for_holder(path: Path, process: Any) -> lock.Holder:
    deadline = time.monotonic() + 60
    while (holder := lock.read_holder(path)) is None:
        assert process.poll() is None, process.stderr.read()
        assert time.monotonic() < deadline, "the first load never took the lock"
        time.sleep(0.01)
    return holder


def test_a_second_load_exits_7_with_one_line_and_the_first_finishes(
        sim: Simulator, cli: Any, workdir: Path) -> None:
    sim.set_faults(latency_ms=150)  # the first load takes a few seconds
    first = start_load(sim, workdir, "none")
    holder = wait_for_holder(pipeline_lock(workdir), first)
    assert holder.pid == first.pid and holder.host == socket.gethostname()

    second = cli("load", expect=7)
    message = second.output.strip()
    assert len(message.splitlines()) == 1 and "Traceback" not in message
    assert message.startswith(f"error: pipeline 'onepin' is being loaded by process {first.pid} "
                              f"on {holder.host} since {holder.since}; this load did not start")
    assert "--wait SECONDS" in message

    _, stderr = first.communicate(timeout=120)
    assert first.returncode == 0, stderr
    sim.set_faults(latency_ms=0)
    assert_matches_api(workdir / "onepin_etl.duckdb", api_snapshot(sim))
    assert lock.read_holder(pipeline_lock(workdir)) is None  # released


def test_a_second_load_with_wait_queues_behind_the_first(sim: Simulator, cli: Any,
                                                         workdir: Path) -> None:
    sim.set_faults(latency_ms=100)
    first = start_load(sim, workdir, "none")
    wait_for_holder(pipeline_lock(workdir), first)
    sim.advance(3 * 3600)  # new runs for the second load to find
    cli("load", "--wait", "120")
    assert first.wait(timeout=120) == 0
    sim.set_faults(latency_ms=0)
    assert_matches_api(workdir / "onepin_etl.duckdb", api_snapshot(sim))


def test_two_pipelines_cannot_write_one_duckdb_file_at_once(sim: Simulator, cli: Any,
                                                            workdir: Path) -> None:
    sim.set_faults(latency_ms=150)
    first = start_load(sim, workdir, "none")
    wait_for_holder(pipeline_lock(workdir), first)
    other = cli("load", "--pipeline-name", "other", expect=7)
    assert "the destination 'onepin_etl.duckdb' (pipeline 'onepin') is being loaded by " \
           f"process {first.pid}" in other.output
    assert first.wait(timeout=120) == 0


def test_a_sigkilled_holder_frees_the_lock(sim: Simulator, cli: Any, workdir: Path) -> None:
    sim.set_faults(latency_ms=40)
    first = start_load(sim, workdir, "none", "--concurrency", "2")
    wait_for_holder(pipeline_lock(workdir), first)
    kill_during_extract(sim, first, after_steps=8)
    first.wait(timeout=30)
    assert first.returncode == -signal.SIGKILL
    assert lock.read_holder(pipeline_lock(workdir)) is None  # the kernel let go of it
    sim.set_faults(latency_ms=0)
    cli("load")  # no wait needed
    assert_matches_api(workdir / "onepin_etl.duckdb", api_snapshot(sim))


def test_status_shows_loads_freshness_open_runs_pending_and_lock(
        sim: Simulator, cli: Any, workdir: Path) -> None:
    cli("load")
    sim.advance(3 * 3600)
    cli("load")
    data = json.loads(cli("status", "--pipelines-dir", "pipelines", "--format", "json").output)
    snap = api_snapshot(sim)
    with duckdb.connect("onepin_etl.duckdb", read_only=True) as con:
        loads = con.execute("select load_id, inserted_at from onepin._dlt_loads "
                            "where status = 0 order by inserted_at desc").fetchall()
    assert (data["loads"], data["last_load_id"]) == (2, loads[0][0])
    open_now = sum(r["status"] not in TERMINAL for r in snap["runs"].values())
    assert (data["open_runs"], data["workflows_tracked"]) == (open_now, SMALL.workflows)
    assert data["newest_run_at"].startswith(max(r["created_at"] for r in snap["runs"].values())
                                            .replace("Z", "")[:19])
    new_runs = 3 * SMALL.workflows
    assert data["last_load_rows"]["runs"] >= new_runs  # new runs and the open ones re-read
    assert data["last_run"]["failed_step"] is None and data["pending_packages"] == []
    assert data["lock"] is None

    # A load that fails says so; one killed mid-load leaves its package pending
    holder = subprocess.Popen(
        [sys.executable, "-c", "import duckdb, sys, time; c = duckdb.connect(sys.argv[1], "
         "read_only=True); print('ready', flush=True); time.sleep(60)", "onepin_etl.duckdb"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
        cli("load", expect=5)
    finally:
        holder.kill()
        holder.wait()
    assert "last run: " in (text := cli("status", "--pipelines-dir", "pipelines").output)
    assert "failed in run: Pipeline execution failed at `step=sync`" in text, text
    sim.advance(3600)
    killed = start_load(sim, workdir, "load")
    assert killed.wait(timeout=120) == -signal.SIGKILL
    pending = json.loads(cli("status", "--pipelines-dir", "pipelines", "--format",
                             "json").output)["pending_packages"]
    assert len(pending) == 1
    assert f"pending packages: {pending[0]}" in cli("status", "--pipelines-dir",
                                                   "pipelines").output
    with lock.held(lock.lock_paths(workdir / "pipelines", "onepin", None), "onepin"):
        held = cli("status", "--pipelines-dir", "pipelines").output
    assert f"lock: held by process {os.getpid()} on {socket.gethostname()}" in held


def test_status_of_a_pipeline_never_run_is_one_line(cli: Any) -> None:
    result = cli("status", "--pipelines-dir", "pipelines", expect=2)
    assert result.output.strip().startswith("error: no pipeline 'onepin' in ")
    assert result.output.strip().endswith(
        "nothing has been loaded with it yet (or pass --pipeline-name / --pipelines-dir; "
        "Target.pipeline_name / pipelines_dir in Python)")
    assert len(result.output.strip().splitlines()) == 1


def deployed_commands() -> list[list[str]]:
    """Every ``onepin-etl`` invocation in deploy/ (cron line, systemd units), as arguments."""
    commands = []
    for path in sorted((ROOT / "deploy").iterdir()):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.startswith("#"):
                continue
            for part in re.split(r"&&|>>", line):
                words = shlex.split(part.split("=", 1)[1] if part.startswith("Exec") else part)
                if words and words[0].endswith("/onepin-etl"):
                    commands.append(words[1:])
    return commands


def test_deployed_commands_parse_and_use_the_lock() -> None:
    commands = deployed_commands()
    assert sorted(c[0] for c in commands) == ["check", "check", "load", "load"]
    for args in commands:
        command = main.commands[args[0]]
        command.make_context(args[0], list(args[1:]))  # raises on an unknown option
        if args[0] == "load":
            assert args[1:] == ["--wait", "600", "--max-duration", "840"]


# Each process makes the pipeline in ROUNDS new folders, every round at the same instant as
# the others (dlt wipes, then makes, a new working folder: without the creation lock 8 rounds
# in 10 failed with 4 processes, in FileExistsError or "Directory not empty"). Once it has
# imported dlt a process says so (a file); the test then writes when the first round starts.
_MAKE_AT_ONCE = """
import os, sys, time
from pathlib import Path
from onepin_etl.destinations import Target
from onepin_etl.pipeline import build_pipeline
base, rounds = Path(sys.argv[1]), int(sys.argv[2])
(base / f"ready-{os.getpid()}").touch()
while not (base / "go").is_file() or not (base / "go").read_text():
    time.sleep(0.01)
start = float((base / "go").read_text())
for k in range(rounds):
    at = start + 0.25 * k
    time.sleep(max(0.0, at - time.time() - 0.02))
    while time.time() < at:
        pass
    build_pipeline(Target(duckdb_path=f"{base}/{k}.duckdb", pipelines_dir=f"{base}/{k}"))
"""


def test_processes_making_one_pipeline_at_once_all_succeed(workdir: Path) -> None:
    """As Dagster's processes each build the definitions (``dagster_onepin.py`` makes the
    pipeline): four processes make one new pipeline at the same instant, ten times over."""
    rounds = 10
    processes = [subprocess.Popen([sys.executable, "-c", _MAKE_AT_ONCE, str(workdir),
                                   str(rounds)], cwd=ROOT, text=True,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
                 for _ in range(4)]
    deadline = time.monotonic() + 120
    while len(list(workdir.glob("ready-*"))) < 4:
        assert all(p.poll() is None for p in processes), [p.communicate()[0] for p in processes]
        assert time.monotonic() < deadline, "the processes never got ready"
        time.sleep(0.05)
    (workdir / "go.tmp").write_text(str(time.time() + 0.5))
    (workdir / "go.tmp").rename(workdir / "go")
    outputs = [process.communicate(timeout=120)[0] for process in processes]
    assert [process.returncode for process in processes] == [0] * 4, outputs
    for k in range(rounds):
        state = json.loads((workdir / str(k) / "onepin" / "state.json").read_text())
        assert state["pipeline_name"] == "onepin"
