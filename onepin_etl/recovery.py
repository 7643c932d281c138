"""What a failed or stuck load leaves behind, and how a load cleans it up: packages left pending
(dlt's load packages that never reached the destination) and an empty DuckDB file."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dlt
import duckdb

from onepin_etl.destinations import Target

log = logging.getLogger(__name__)


def pending_packages(pipeline: dlt.Pipeline) -> list[str]:
    """The load ids of the packages an earlier run left pending, oldest first."""
    return sorted([*pipeline.list_extracted_load_packages(),
                   *pipeline.list_normalized_load_packages()])


def drop_pending_packages(pipeline: dlt.Pipeline) -> list[str]:
    """Drop the packages left pending and restore the local state to before them (their
    incremental marks were never committed to the destination), so that the next extract
    fetches their data again. Returns the dropped load ids."""
    pending = pending_packages(pipeline)
    if pending:
        pipeline.abort_packages()
        log.warning("dropped %d load package(s) left pending (%s); their data is fetched "
                    "again", len(pending), ", ".join(pending))
    return pending


@contextmanager
def no_empty_file_left(target: Target) -> Iterator[None]:
    """A load that fails before it writes anything (a wrong key, an unreachable API) removes
    the DuckDB file it created by connecting: an empty file would look like a load happened."""
    path = target.local_files if target.kind.database_file else None
    created = path is not None and not path.exists()
    try:
        yield
    except BaseException:
        if created and path is not None and _without_tables(path):
            for leftover in (path, path.with_name(f"{path.name}.wal")):
                leftover.unlink(missing_ok=True)
        raise


def _without_tables(path: Path) -> bool:
    """The file holds no table (a file that cannot be opened is kept: it is not ours to judge,
    and the load's own error is the one to show)."""
    if not path.is_file():
        return False
    try:
        with duckdb.connect(str(path), read_only=True) as con:
            (tables,), = con.execute("select count(*) from information_schema.tables").fetchall()
    except duckdb.Error:
        return False
    return not tables
