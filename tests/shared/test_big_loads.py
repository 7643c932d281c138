"""Big loads in pieces into PostgreSQL (``tests/test_checkpoints.py`` does DuckDB and Parquet):
a killed first load resumes after its last committed piece, time-boxed loads converge."""

from __future__ import annotations

from pathlib import Path

import pytest

from onepin_sim import Simulator, WorldConfig
from tests.shared.conftest import Shared
from tests.test_checkpoints import OPEN, kill_then_resume, time_boxed_loads_converge

pytestmark = pytest.mark.shared
POSTGRES = ("--destination", "postgres")


@pytest.mark.parametrize("row_format", ["arrow", "dicts"])
def test_a_killed_first_load_resumes_into_postgres(workdir: Path, shared: Shared,
                                                   row_format: str) -> None:
    with Simulator(OPEN) as sim:
        kill_then_resume(sim, workdir, *POSTGRES, after_steps=150, row_format=row_format,
                         db={"destination": "postgres"})


def test_time_boxed_loads_into_postgres_converge(workdir: Path, shared: Shared) -> None:
    with Simulator(WorldConfig(seed=5, workflows=4, runs=30, nodes=4)) as sim:
        time_boxed_loads_converge(sim, workdir, {"destination": "postgres"}, *POSTGRES)
