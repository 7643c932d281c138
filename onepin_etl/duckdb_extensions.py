"""DuckDB extensions without internet: the ``duckdb-ext-*`` packages of the ``[shared]`` extra.

DuckDB installs ducklake, httpfs, postgres and sqlite from the internet the first time a query
needs them. Offline machines (ours, and many schedulers) cannot; the ``duckdb-ext-*`` packages
ship the same files for DuckDB 1.4.4 under ``duckdb_ext/extensions``, and DuckDB loads them from
there when its ``extension_directory`` points at it (dlt's DuckLake destination too:
:func:`onepin_etl.destinations.config.configure_dlt`). With internet and no such package, nothing
here changes anything: DuckDB downloads what it needs, as usual.
"""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path

import duckdb

from onepin_etl.sql import literal


@functools.cache  # installed packages do not change while we run
def extension_directory() -> str | None:
    """The folder the ``duckdb-ext-*`` packages fill, if they are installed for this DuckDB."""
    spec = importlib.util.find_spec("duckdb_ext")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations)), "extensions")
    return str(folder) if (folder / f"v{duckdb.__version__}").is_dir() else None


def use_packaged_extensions(con: duckdb.DuckDBPyConnection) -> None:
    """Point a connection of ours at the packaged extensions (when there are some)."""
    directory = extension_directory()
    if directory:
        con.execute(f"set extension_directory = {literal(directory)}")
