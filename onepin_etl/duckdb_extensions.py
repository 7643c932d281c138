"""DuckDB extensions without internet: the ``duckdb-ext-*`` packages of the ``[shared]`` extra.

DuckDB installs ducklake, httpfs, postgres and sqlite from the internet the first time a query
needs them. Offline machines (ours, and many schedulers) cannot; the ``duckdb-ext-*`` packages
ship the same files for DuckDB 1.4.4 under ``duckdb_ext/extensions``, and DuckDB loads them from
there when its ``extension_directory`` points at it. With internet and no such package, nothing
here changes anything: DuckDB downloads what it needs, as usual.
"""

from __future__ import annotations

import functools
import importlib.util
import json
from pathlib import Path
from typing import Any

import dlt
import duckdb

# dlt's DuckDB-based destinations read this from their credentials (``global_config``).
_GLOBAL_CONFIG_KEYS = ("destination.ducklake.credentials.global_config",)


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
        con.execute(f"set extension_directory = '{directory}'")


def configure_dlt() -> None:
    """Let dlt's DuckLake destination find the packaged extensions, keeping any other
    ``global_config`` the user set (``DESTINATION__DUCKLAKE__CREDENTIALS__GLOBAL_CONFIG``)."""
    directory = extension_directory()
    if directory is None:
        return
    for key in _GLOBAL_CONFIG_KEYS:
        current = _as_dict(dlt.secrets.get(key))
        if "extension_directory" not in current:
            dlt.secrets[key] = {**current, "extension_directory": directory}


def _as_dict(value: Any) -> dict[str, Any]:
    if isinstance(value, str):
        value = json.loads(value) if value.strip() else {}
    return dict(value or {})
