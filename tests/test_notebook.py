"""The notebook runs top to bottom against a small simulated load, and is stored without outputs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import nbformat
import pytest

from onepin_sim import Simulator
from tests.helpers import NOTEBOOK, NOTEBOOK_FIGURES, execute_notebook


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
    where = ({"ONEPIN_DUCKDB_PATH": str(workdir / "onepin_etl.duckdb")} if destination == "duckdb"
             else {"ONEPIN_PARQUET_DIR": str(workdir / "pq")})
    notebook = execute_notebook(workdir, monkeypatch, **where)
    loaded = notebook.cells[4].outputs[0]["data"]["text/plain"]
    assert "workflows" in loaded and "steps" in loaded
    assert sorted(p.name for p in (workdir / "figures").glob("*.png")) == NOTEBOOK_FIGURES
