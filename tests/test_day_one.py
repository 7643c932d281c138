"""What a new user met on day one (issue 22): a pending package that cannot load, readers of a
missing file, a check with nothing to judge, output that pipes, and the words of the CLI."""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from onepin_etl import health, html_report, lock
from onepin_etl.analysis import Filters
from onepin_etl.cli import main
from onepin_etl.destinations import Target
from onepin_sim import Simulator
from tests.helpers import ROOT, SMALL, api_snapshot, assert_matches_api

# A plain dlt pipeline under the CLI's default name and working folder, run without the
# parquet normalizer's settings: its Arrow rows lack _dlt_load_id, which the tables the CLI
# created declare NOT NULL, so its package stays pending and fails on every load after it.
FOREIGN_RUN = """
import sys, dlt
from onepin_source import onepin
pipeline = dlt.pipeline("onepin", pipelines_dir=sys.argv[1], dataset_name="onepin",
                        destination=dlt.destinations.duckdb(sys.argv[2]))
pipeline.run(onepin())
"""


def user_env(sim: Simulator, workdir: Path) -> dict[str, str]:
    """A user's environment for a subprocess: the key and URL of the simulator, dlt's data in
    ``workdir`` (as root dlt would use /var/dlt, shared by every test on the machine)."""
    return {"PATH": os.environ["PATH"], "HOME": str(workdir / "home"), "PYTHONPATH": str(ROOT),
            "ONEPIN_API_KEY": sim.api_key, "ONEPIN_BASE_URL": sim.base_url,
            "RUNTIME__DLT_TELEMETRY": "false", "DLT_DATA_DIR": str(workdir / "dlt")}


def run_foreign_pipeline(sim: Simulator, workdir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", FOREIGN_RUN, str(workdir / "pipelines"),
                           str(workdir / "onepin_etl.duckdb")], cwd=workdir,
                          env=user_env(sim, workdir), capture_output=True, text=True,
                          timeout=300, check=False)


def status(cli: Any, *args: str, expect: int = 0) -> Any:
    return cli("status", "--pipelines-dir", "pipelines", *args, expect=expect)


def test_a_pending_package_that_fails_again_says_so_and_drop_pending_recovers(
        sim: Simulator, cli: Any, workdir: Path) -> None:
    db = workdir / "onepin_etl.duckdb"
    cli("load")
    sim.advance(6 * 3600)  # new runs for the foreign pipeline to extract
    foreign = run_foreign_pipeline(sim, workdir)
    assert foreign.returncode == 1 and "NOT NULL constraint failed" in foreign.stderr
    pending = json.loads(status(cli, "--format", "json").output)["pending_packages"]
    assert len(pending) == 1
    assert f"pending packages: {pending[0]}" in status(cli).output
    stuck = subprocess.run([sys.executable, "-m", "onepin_etl.cli", "load", "--pipelines-dir",
                            "pipelines"], cwd=workdir, env=user_env(sim, workdir),
                           capture_output=True, text=True, timeout=300, check=False)
    assert stuck.returncode == 5
    # No traceback of dlt's failed jobs: what is being finished, then the error in one line
    notice, *lines = stuck.stderr.strip().splitlines()
    assert notice == ("WARNING onepin_etl.pipeline: finishing a load package left pending by "
                      "an earlier run")
    assert len(lines) == 1, stuck.stderr
    assert lines[0].startswith(f"error: the load package(s) {pending[0]} left pending by an "
                               "earlier run failed to load again: ")
    # whichever table's job dlt runs first
    assert re.search(r"NOT NULL constraint failed: (workflows|runs|run_steps)\._dlt_load_id",
                     lines[0]), lines[0]
    assert lines[0].endswith("run 'onepin-etl load --drop-pending' to drop them (their data is "
                             "fetched again: their incremental state was never committed)")
    assert "another program" not in lines[0]  # not a lock: no hint about closing the file

    sim.advance(3600)
    cli("load", "--drop-pending")
    assert status(cli).output.count("pending packages: none") == 1
    # The dropped package's runs were fetched again: nothing is missing, nothing twice
    assert_matches_api(db, api_snapshot(sim))


@pytest.mark.parametrize("command", [["status", "--pipelines-dir", "pipelines"], ["report"],
                                     ["check"], ["sql", "select 1"]])
def test_readers_of_a_missing_file_or_folder_exit_2(cli: Any, command: list[str]) -> None:
    cli("load")  # a pipeline and another file exist: the command must not read those
    missing = cli(*command, "--duckdb-path", "nope.duckdb", expect=2)
    assert missing.output == ("error: nope.duckdb does not exist: check --duckdb-path, or load "
                              "it first with 'onepin-etl load'\n")
    folder = cli(*command, "--destination", "parquet", "--parquet-dir", "no_such_dir", expect=2)
    # status names the missing pipeline first: no Parquet load has run
    assert ("no pipeline 'onepin_parquet' in " if command[0] == "status" else
            "no_such_dir does not exist: check --parquet-dir") in folder.output


def test_a_check_with_nothing_to_judge_fails_unless_allowed(cli: Any, workdir: Path) -> None:
    cli("load")
    later = "2030-01-01T00:00:00Z"  # the window holds no step
    empty = cli("check", "--as-of", later, expect=6)
    assert empty.output.splitlines()[0] == "nothing to judge: no steps in the last 24h"
    assert cli("check", "--as-of", later, "--allow-empty").output.startswith("healthy: 0 nodes")
    page = html_report.build_page(Target(), top=3, filters=Filters(), checks=health.CheckConfig(
        as_of=datetime(2030, 1, 1, tzinfo=UTC)))
    assert 'class="failing" id="checks-verdict"' in page
    assert "<li>nothing to judge: no steps in the last 24h</li>" in page


def test_piped_sql_and_report_are_plain_full_width_tables_and_csv_is_plain(cli: Any) -> None:
    cli("load")
    query = "select workflow_id, node_id, workflow_name, node_display_name from node_stats"
    table = cli("sql", query).output.splitlines()
    assert table[0].startswith("+-") and table[1].split() == [
        "|", "workflow_id", "|", "node_id", "|", "workflow_name", "|", "node_display_name", "|"]
    assert len(table) == 3 + SMALL.workflows * SMALL.nodes + 1  # one line per row
    assert len({len(line) for line in table}) == 1 and len(table[0]) > 80
    csv = cli("sql", "--format", "csv", "select 1 as a, 'x' as b").output
    assert csv == "a,b\n1,x\n"
    report = cli("report").output.splitlines()
    assert report[0] == "Runs per workflow"
    header = report[2].split("|")
    assert [cell.strip() for cell in header[1:3]] == ["workflow", "runs"]


def test_help_says_what_each_command_takes() -> None:
    runner = CliRunner()
    for command in ("report", "check", "status", "sql"):
        text = runner.invoke(main, [command, "--help"], terminal_width=200).output
        assert "any dlt destination" not in text, command
    assert "any dlt destination" in runner.invoke(main, ["load", "--help"],
                                                  terminal_width=200).output
    status_help = runner.invoke(main, ["status", "--help"], terminal_width=200).output
    assert "Load only shard" not in status_help and "Show shard K of N's pipeline" in status_help
    load_help = runner.invoke(main, ["load", "--help"], terminal_width=200).output
    assert "/var/dlt/pipelines when run as root" in load_help


def test_messages_keep_their_brackets(workdir: Path) -> None:
    result = CliRunner().invoke(main, ["load"], env={"ONEPIN_API_KEY": ""})
    assert result.exit_code == 2
    assert "add api_key to .dlt/secrets.toml [sources.onepin], or run" in result.output


def test_wait_says_what_it_waits_for_and_a_pipeline_lock_names_pipeline_name(
        cli: Any, workdir: Path, caplog: pytest.LogCaptureFixture) -> None:
    paths = lock.lock_paths(workdir / "pipelines", "onepin", None)
    with lock.held(paths, "onepin"), caplog.at_level(logging.WARNING, "onepin_etl.lock"):
        holder = lock.read_holder(paths[0])
        other = cli("load", "--duckdb-path", "other.duckdb", "--wait", "0.5", expect=7)
    assert holder is not None
    assert other.output.strip().endswith(
        "pass --wait SECONDS (wait_s in Python) to queue behind it; to load another destination "
        "at the same time, give it its own --pipeline-name (Target.pipeline_name)")
    assert [r.getMessage() for r in caplog.records] == [
        f"waiting up to 0.5 s for pipeline 'onepin', which {holder.describe()} holds"]


@pytest.mark.parametrize("env", [{"key": "op_live_" + "x" * 32},
                                 {"ONEPIN_BASE_URL": "http://127.0.0.1:9"}])
def test_a_failed_first_load_leaves_no_empty_duckdb_file(
        cli: Any, workdir: Path, env: dict[str, str]) -> None:
    cli("load", expect=3 if "key" in env else 4, **env)
    assert sorted(p.name for p in workdir.iterdir() if "duckdb" in p.name) == [
        ".onepin_etl.duckdb.onepin.lock"]


def test_a_parquet_load_prints_no_append_fallback_warnings(sim: Simulator, workdir: Path) -> None:
    """Files cannot merge; the load says append itself, so dlt has nothing to fall back from."""
    done = subprocess.run([sys.executable, "-m", "onepin_etl.cli", "load", "--destination",
                           "parquet", "--parquet-dir", "pq"], cwd=workdir,
                          env=user_env(sim, workdir),
                          capture_output=True, text=True, timeout=300, check=False)
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout.startswith(f"Loaded {SMALL.workflows} workflows, ")
