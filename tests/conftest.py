"""Shared fixtures: a real simulator on loopback and an isolated dlt/CLI environment."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from click.testing import CliRunner, Result

from onepin_sim import Simulator, WorldConfig
from onepin_source.cli import main

SMALL = WorldConfig(seed=11, workflows=3, runs=24, nodes=8)


@pytest.fixture
def sim() -> Iterator[Simulator]:
    """A small simulated workspace served over real HTTP on 127.0.0.1."""
    with Simulator(SMALL) as simulator:
        yield simulator


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A clean cwd and HOME, no Onepin/dlt variables leaking in from the machine."""
    for name in list(os.environ):
        if name.startswith(("ONEPIN_", "SOURCES__", "DESTINATION__", "RUNTIME__")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("RUNTIME__DLT_TELEMETRY", "false")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    (tmp_path / "home").mkdir()
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def cli(workdir: Path, sim: Simulator) -> Any:
    """Run ``onepin-etl`` in-process against the simulator, with its own pipelines dir."""
    return invoke_cli(sim, workdir)


def invoke_cli(sim: Simulator, workdir: Path) -> Any:
    """``invoke(*args, key=None, **env)``: run ``onepin-etl`` in-process against ``sim``."""

    def invoke(*args: str, key: str | None = None, **env: str) -> Result:
        environ = {"ONEPIN_API_KEY": key or sim.api_key, "ONEPIN_BASE_URL": sim.base_url, **env}
        command = list(args)
        if command and command[0] == "load" and "--pipelines-dir" not in command:
            command += ["--pipelines-dir", str(workdir / "pipelines")]
        return CliRunner().invoke(main, command, env=environ, catch_exceptions=False)

    return invoke


def api_get(sim: Simulator, path: str, **params: Any) -> requests.Response:
    return requests.get(f"{sim.base_url}/api/v1{path}", params=params,
                        headers={"Authorization": f"Bearer {sim.api_key}"}, timeout=10)


def api_snapshot(sim: Simulator) -> dict[str, Any]:
    """Everything the API shows now, read with plain requests (independent of the connector)."""
    workflows = api_get(sim, "/workflows", limit=100).json()["data"]
    runs: dict[str, dict[str, Any]] = {}
    steps: dict[str, dict[str, Any]] = {}
    for wf in workflows:
        offset = 0
        while True:
            page = api_get(sim, f"/workflows/{wf['id']}/runs", limit=100, offset=offset).json()
            for run in page["data"]:
                runs[run["id"]] = {**run, "workflow_id": wf["id"]}
                for step in api_get(sim, f"/workflows/{wf['id']}/runs/{run['id']}/steps",
                                    include_result="true").json()["data"]:
                    steps[step["id"]] = {**step, "workflow_id": wf["id"], "run_id": run["id"]}
            offset += 100
            if offset >= page["pagination"]["total"]:
                break
    return {"workflows": {w["id"]: w for w in workflows}, "runs": runs, "steps": steps}
