"""``onepin-etl compact``: a Parquet folder rewritten to the latest version of each row.

Parquet cannot merge, so every load appends files and readers pick the latest version of each
workflow, run and run's steps (``analysis_sql.LATEST_*``). Reading gets slower with every file:
a query that took 0.09 s after one load took 0.59 s after sixty. Compaction writes, per table,
one file holding exactly what readers would pick (rows keep their ``_dlt_load_id``, so later
loads still win), then removes the files it replaced. It holds the pipeline's lock, so no load
writes meanwhile; a reader that lists the folder in the instant between the new file's rename
and the old files' removal may see a run's steps twice, and sees the right answer again on its
next query.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path

import duckdb

from onepin_etl.analysis import TABLES, latest_sql
from onepin_etl.destinations import Target
from onepin_source.errors import ConfigError


@dataclass(frozen=True)
class Compacted:
    table: str
    files_before: int
    rows: int


def compact(target: Target) -> list[Compacted]:
    """Rewrite each table of ``target`` (a local Parquet folder) as one file; the caller holds
    the pipeline lock."""
    if target.destination != "parquet" or "://" in target.parquet_dir:
        raise ConfigError("compact works on a local Parquet folder (--destination parquet "
                          "--parquet-dir DIR)")
    base = Path(target.parquet_dir) / target.dataset
    done = []
    for table in TABLES:
        folder = base / table
        old = sorted(folder.glob("*.parquet"))
        if len(old) <= 1:
            done.append(Compacted(table, len(old), -1))
            continue
        done.append(Compacted(table, len(old), _rewrite(table, folder, old)))
    return done


def _rewrite(table: str, folder: Path, old: list[Path]) -> int:
    """Write the latest rows of ``old`` into one new file, then remove ``old``."""
    name = f"compacted.{uuid.uuid4().hex}.parquet"
    partial = folder / f".{name}.partial"
    files = "[" + ", ".join(f"'{p}'" for p in old) + "]"
    with duckdb.connect() as con:
        con.execute(f"copy ({latest_sql(table, files)}) to '{partial}' (format parquet)")
        (rows,), = con.execute(f"select count(*) from read_parquet('{partial}')").fetchall()
    partial.rename(folder / name)
    for path in old:
        path.unlink()
    return int(rows)
