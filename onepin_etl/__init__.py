"""The onepin-dlt application around the ``onepin`` source: destinations and safe loads,
analysis views, report, CLI (``onepin-etl``) and demo.

    from onepin_etl import Target, load
    load(Target(duckdb_path="onepin_etl.duckdb"), workflow_ids=["<uuid>"])

It depends on ``onepin_source``; the source never imports it. Only the ``demo`` and ``sim``
commands import the simulator's server (the CLI's flags read ``onepin_sim.latency``).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from onepin_etl.destinations import Target, duckdb_destination
    from onepin_etl.pipeline import build_pipeline, load, run_load

__all__ = ["Target", "build_pipeline", "duckdb_destination", "load", "run_load"]
# Imported when first asked for (with dlt): the command line's --help needs none of them.
_HOMES = {"Target": "onepin_etl.destinations", "duckdb_destination": "onepin_etl.destinations",
          "build_pipeline": "onepin_etl.pipeline", "load": "onepin_etl.pipeline",
          "run_load": "onepin_etl.pipeline"}


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        return getattr(importlib.import_module(_HOMES[name]), name)
    raise AttributeError(f"module 'onepin_etl' has no attribute {name!r}")
