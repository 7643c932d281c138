"""The Python examples of the README and docs/ run as written, as a new user runs them: each
block a script of its own, in a fresh folder with the project's ``.dlt/config.toml``, the key
and base URL from the environment (pointed at the simulator)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb

from onepin_sim import Simulator
from tests.helpers import ROOT, SMALL

BLOCK = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)


# Pages whose Python blocks are whole programs (a page of fragments, like the SQL cookbook's
# sqlglot line, is not listed), in the order a reader meets them: the README loads first.
PAGES = ("README.md", "docs/loading.md", "docs/checks.md", "docs/analysis.md")


def python_blocks() -> list[str]:
    """Every Python block of :data:`PAGES`, in reading order."""
    return [block for page in PAGES for block in BLOCK.findall((ROOT / page).read_text("utf-8"))]


def test_the_readme_has_the_examples_we_run() -> None:
    blocks = python_blocks()
    assert len(blocks) == 4
    assert any("from onepin_source import onepin" in b for b in blocks)


def test_every_python_block_runs_as_written(sim: Simulator, tmp_path: Path) -> None:
    project = tmp_path / "project"
    (project / ".dlt").mkdir(parents=True)
    shutil.copy(ROOT / ".dlt" / "config.toml", project / ".dlt" / "config.toml")
    home = tmp_path / "home"
    home.mkdir()
    env = {"PATH": os.environ["PATH"], "HOME": str(home), "PYTHONPATH": str(ROOT),
           "ONEPIN_API_KEY": sim.api_key, "ONEPIN_BASE_URL": sim.base_url,
           "RUNTIME__DLT_TELEMETRY": "false",
           # dlt's pipelines folder is ~/.dlt/pipelines, but /var/dlt/pipelines for root
           "DLT_DATA_DIR": str(tmp_path / "dlt")}
    for number, block in enumerate(python_blocks(), 1):
        done = subprocess.run([sys.executable, "-c", block], cwd=project, env=env,
                              capture_output=True, text=True, timeout=300, check=False)
        # No error and no warning at all (dlt's "several column hints were different" was one)
        assert (done.returncode, done.stderr) == (0, ""), f"block {number}:\n{block}"
    # The source alone wrote where it ran, into a file not named like its dataset
    assert not (ROOT / "onepin_example.duckdb").exists()
    with duckdb.connect(str(project / "onepin_example.duckdb"), read_only=True) as con:
        counts = con.sql("select (select count(*) from onepin.workflows), "
                         "(select count(*) from onepin.runs)").fetchall()
    assert counts == [(SMALL.workflows, SMALL.workflows * SMALL.runs)]
    assert sorted(p.name for p in project.iterdir()) == [
        ".dlt", ".onepin_data.onepin.lock", ".onepin_etl.duckdb.onepin.lock", "onepin_data",
        "onepin_etl.duckdb", "onepin_example.duckdb"]
