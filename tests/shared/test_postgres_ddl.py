"""Loaders of one PostgreSQL database, started at the same instant, create its schema, tables and
columns one at a time (:mod:`onepin_etl.postgres_ddl`): none fails with ``DuplicateTable``,
``DuplicateSchema`` or ``DuplicateColumn``, and the tables hold every loader's rows and columns.
Without the serialized DDL this failed in most rounds (and once in CI as a flaky shard test)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import ROOT
from tests.shared.conftest import Shared

pytestmark = pytest.mark.shared

LOADERS = 4
TABLES = 8
# One loader: imports done, it waits for the go file, then loads its own row into every table,
# with one column only it has (so both tables and columns are created concurrently).
LOADER = """
import sys, time, pathlib
import dlt
from onepin_etl.destinations import Target
from onepin_etl.pipeline import build_pipeline

k, n, dataset, go, pipelines, tables = sys.argv[1:7]
rows = lambda t: [{"id": int(k), f"only_{k}": t, "shared": "x"}]
resources = [dlt.resource(rows(t), name=f"t{t}", primary_key="id", write_disposition="merge")
             for t in range(int(tables))]
pipeline = build_pipeline(Target(destination="postgres", dataset=dataset, shard=f"{k}/{n}",
                                 pipelines_dir=pipelines))
while not pathlib.Path(go).exists():
    time.sleep(0.001)
pipeline.run(resources)
"""


@pytest.mark.parametrize("round_", [1, 2, 3])
def test_loaders_starting_at_once_create_tables_and_columns_once(round_: int, shared: Shared,
                                                                  workdir: Path) -> None:
    dataset, go = f"race_{round_}", workdir / "go"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    loaders = [subprocess.Popen([sys.executable, "-c", LOADER, str(k), str(LOADERS), dataset,
                                 str(go), str(workdir / "pipelines"), str(TABLES)],
                                cwd=workdir, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
               for k in range(1, LOADERS + 1)]
    time.sleep(8)  # every loader past its imports, waiting for the go file
    go.touch()
    for k, loader in enumerate(loaders, start=1):
        _, err = loader.communicate(timeout=120)
        assert loader.returncode == 0, f"loader {k} failed:\n{err[-3000:]}"
    only = ", ".join(f"only_{k}" for k in range(1, LOADERS + 1))
    for t in range(TABLES):
        with shared.postgres.cursor(shared.database) as cursor:
            cursor.execute(f'select id, {only}, shared from "{dataset}".t{t} order by id')
            rows = cursor.fetchall()
        assert rows == [
            tuple([k, *(t if j == k else None for j in range(1, LOADERS + 1)), "x"])
            for k in range(1, LOADERS + 1)]
