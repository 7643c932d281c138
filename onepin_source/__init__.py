"""The ``onepin`` dlt source: workflows, runs and run steps of Onepin AI voice workflows.

    import dlt
    from onepin_source import onepin

    pipeline = dlt.pipeline("onepin_example", dataset_name="onepin",
                            destination=dlt.destinations.duckdb("onepin_example.duckdb"))
    pipeline.run(onepin(workflow_ids=["<uuid>"]))

The source itself is :func:`onepin_source.source.onepin`; it is imported (with dlt) when first
asked for, so that a program reading only the source's settings or errors starts fast.

This package is the source and nothing else: no CLI, destinations or reports (those are the
application, ``onepin_etl``), and it changes no process-wide setting.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from onepin_source.source import onepin

__all__ = ["onepin"]


def __getattr__(name: str) -> Any:
    if name == "onepin":
        from onepin_source.source import onepin

        return onepin
    raise AttributeError(f"module 'onepin_source' has no attribute {name!r}")
