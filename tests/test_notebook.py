"""The notebook runs top to bottom against a small simulated load, and is stored without outputs."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient

from onepin_sim import Simulator

NOTEBOOK = Path(__file__).parent.parent / "notebooks" / "step_analysis.ipynb"


def test_notebook_is_stored_without_outputs() -> None:
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    code = [c for c in notebook.cells if c.cell_type == "code"]
    assert code and all(c.outputs == [] and c.execution_count is None for c in code)


@pytest.mark.parametrize("destination", ["duckdb", "parquet"])
def test_notebook_executes(sim: Simulator, cli: Any, workdir: Path, destination: str,
                           monkeypatch: pytest.MonkeyPatch) -> None:
    cli("load", "--destination", destination, "--parquet-dir", "pq")
    sim.advance(3 * 3600)
    cli("load", "--destination", destination, "--parquet-dir", "pq")
    if destination == "duckdb":
        monkeypatch.setenv("ONEPIN_DUCKDB_PATH", str(workdir / "onepin_etl.duckdb"))
    else:
        monkeypatch.setenv("ONEPIN_PARQUET_DIR", str(workdir / "pq"))
    monkeypatch.setenv("ONEPIN_FIGURE_DIR", str(workdir / "figures"))
    monkeypatch.setenv("PYTHONPATH", str(NOTEBOOK.parent.parent) + os.pathsep +
                       os.environ.get("PYTHONPATH", ""))
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(notebook, timeout=120, kernel_name="python3",
                   resources={"metadata": {"path": str(NOTEBOOK.parent)}}).execute()
    loaded = notebook.cells[4].outputs[0]["data"]["text/plain"]
    assert "workflows" in loaded and "steps" in loaded
    figures = sorted(p.name for p in (workdir / "figures").glob("*.png"))
    assert figures == ["durations_by_node_type.png", "failure_rate_by_node_type.png",
                       "p95_over_time.png", "pass_rate_trend.png", "run_timeline.png"]
