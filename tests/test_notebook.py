"""The notebook runs top to bottom against a small simulated load, and is stored without outputs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import nbformat
import pytest

from onepin_sim import Simulator, WorldConfig
from tests.helpers import NOTEBOOK, NOTEBOOK_FIGURES, execute_notebook, invoke_cli


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
    assert stderr_outputs(notebook) == []


def stderr_outputs(notebook: Any) -> list[str]:
    """What the cells wrote to stderr: warnings (missing glyphs, deprecations), errors."""
    return [output.get("text", "") for cell in notebook.cells if cell.cell_type == "code"
            for output in cell.outputs if output.get("name") == "stderr"]


def test_notebook_at_30_workflows_with_cjk_and_emoji_names_warns_nothing(
        workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Names like "客服语音 #4" and "Generate voice 🎙" and a 30-entry legend: no glyph
    warning (CJK falls back to Droid Sans Fallback where installed; a character no font has
    is left out), no Matplotlib deprecation."""
    with Simulator(WorldConfig(seed=2026, workflows=30, runs=3, nodes=6)) as sim:
        invoke_cli(sim, workdir)("load")
    notebook = execute_notebook(workdir, monkeypatch,
                                ONEPIN_DUCKDB_PATH=str(workdir / "onepin_etl.duckdb"))
    assert stderr_outputs(notebook) == []
    assert sorted(p.name for p in (workdir / "figures").glob("*.png")) == NOTEBOOK_FIGURES
