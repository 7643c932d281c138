"""The onepin-dlt application around the ``onepin`` source: destinations and safe loads,
analysis views, report, CLI (``onepin-etl``) and demo.

    from onepin_etl import Target, load
    load(Target(duckdb_path="onepin_etl.duckdb"), workflow_ids=["<uuid>"])

It depends on ``onepin_source``; the source never imports it. Only the ``demo`` and ``sim``
commands import the simulator.
"""

from onepin_etl.destinations import Target, duckdb_destination
from onepin_etl.pipeline import build_pipeline, load, run_load

__all__ = ["Target", "build_pipeline", "duckdb_destination", "load", "run_load"]
