"""The example pipelines run against the simulator and load what they say they load."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from onepin_sim import Simulator
from pipelines import onepin_pipeline
from tests.helpers import SMALL, api_get


@pytest.fixture
def env(sim: Simulator, workdir: Path, monkeypatch: pytest.MonkeyPatch) -> Simulator:
    monkeypatch.setenv("ONEPIN_API_KEY", sim.api_key)
    monkeypatch.setenv("ONEPIN_BASE_URL", sim.base_url)
    monkeypatch.setenv("DLT_DATA_DIR", str(workdir / "dlt"))
    return sim


def count(db: Path, sql: str) -> int:
    with duckdb.connect(str(db), read_only=True) as con:
        return int(con.sql(sql).fetchall()[0][0])


def test_load_all_workflows_then_full_refresh(env: Simulator, workdir: Path) -> None:
    db = workdir / "all.duckdb"
    onepin_pipeline.load_all_workflows_to_duckdb(str(db))
    assert count(db, "select count(*) from onepin.runs") == SMALL.workflows * SMALL.runs
    env.stats.reset()
    onepin_pipeline.load_with_full_refresh(str(db))
    assert env.stats.snapshot()["requests"]["steps"] == SMALL.workflows * SMALL.runs
    assert count(db, "select count(*) - count(distinct id) from onepin.run_steps") == 0


def test_load_some_workflows_to_parquet(env: Simulator, workdir: Path) -> None:
    wf = api_get(env, "/workflows").json()["data"][0]["id"]
    onepin_pipeline.load_some_workflows_to_parquet([wf], str(workdir / "pq"))
    runs = duckdb.execute(f"select distinct workflow_id from "
                      f"read_parquet('{workdir}/pq/onepin/runs/*.parquet')").fetchall()
    assert runs == [(wf,)]
