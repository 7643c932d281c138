"""Dagster definitions: the source as assets (dagster-dlt), a job, a schedule, asset checks.

    from onepin_etl.dagster_defs import build_definitions
    defs = build_definitions(Target(duckdb_path="onepin_etl.duckdb"))

``pipelines/dagster_onepin.py`` builds them from the environment for ``dagster dev``. Needs the
optional dependency ``.[dagster]``.

What differs from a plain ``@dlt_assets`` body, and why:

- each materialization builds its own source (credentials resolved at run time, not when the
  definitions load) and holds the pipeline's lock (:mod:`onepin_etl.lock`), like the CLI;
- dagster-dlt drops the local pipeline state before each run; dlt then restores it from the
  destination's ``_dlt_pipeline_state``, so the incremental marks survive (tested: the second
  materialization fetches only new and open runs);
- the analysis views are created after the load, as ``onepin-etl load`` does;
- the asset checks are ``onepin-etl check``'s rules (:mod:`onepin_etl.health`), one
  implementation for both.
"""

# No "from __future__ import annotations": Dagster reads the context parameter's annotation.
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
from dagster_dlt import DagsterDltResource, DagsterDltTranslator, dlt_assets
from dagster_dlt.translator import DltResourceTranslatorData

from onepin_etl import analysis, health, html_report
from onepin_etl.destinations import Target
from onepin_etl.pipeline import build_pipeline, create_views, pipeline_lock
from onepin_source import onepin

DEFAULT_CRON = "*/15 * * * *"  # every 15 minutes
# Only the resource names matter when the definitions load; a run builds the real source.
_DEFINITION_ONLY_KEY = "op_live_" + "0" * 32
_PARENTS = {"runs": "workflows", "run_steps": "runs"}  # transformer -> the resource it reads


@dataclass(frozen=True)
class AssetChecks:
    """Thresholds of the asset checks on ``run_steps`` (``onepin-etl check``'s rules)."""

    max_age: timedelta = timedelta(hours=2)
    max_failure_rate: float = 0.5
    max_p95_seconds: float | None = None
    window: timedelta = timedelta(hours=24)
    min_executions: int = 20
    as_of: Callable[[], datetime] = lambda: datetime.now(UTC)


class OnepinTranslator(DagsterDltTranslator):
    """Asset keys ``dlt_onepin_<table>``; each table depends on the one its resource reads."""

    def get_asset_spec(self, data: DltResourceTranslatorData) -> dg.AssetSpec:
        spec = super().get_asset_spec(data)
        parent = _PARENTS.get(data.resource.name)
        deps = [dg.AssetKey(f"dlt_onepin_{parent}")] if parent else []
        return spec.replace_attributes(deps=deps)


def build_definitions(target: Target, *, cron: str = DEFAULT_CRON,
                      checks: AssetChecks | None = None, wait_s: float = 60.0,
                      page: str | None = None, **source_options: Any) -> dg.Definitions:
    """Assets for ``workflows``, ``runs`` and ``run_steps`` and the HTML health page (written to
    ``page``, default ``onepin_health.html`` beside the DuckDB file), a job that makes them, a
    schedule and the asset checks. ``source_options`` go to :func:`onepin_source.onepin`."""
    checks = checks or AssetChecks()
    page_path = Path(page or Path(target.duckdb_path).with_name("onepin_health.html"))

    @dlt_assets(dlt_source=onepin(api_key=_DEFINITION_ONLY_KEY),
                dlt_pipeline=build_pipeline(target), name="onepin", group_name="onepin",
                dagster_dlt_translator=OnepinTranslator(), pool=f"onepin_{target.name}")
    def onepin_assets(context: dg.AssetExecutionContext, dlt: DagsterDltResource) -> Iterator[Any]:
        source = onepin(target_key=target.key, **source_options)
        with pipeline_lock(target, wait_s=wait_s):
            pipeline = build_pipeline(target)
            yield from dlt.run(context=context, dlt_source=source, dlt_pipeline=pipeline)
            create_views(pipeline)

    @dg.asset(name="onepin_health_page", group_name="onepin",
              deps=[dg.AssetKey("dlt_onepin_run_steps")],
              description="The self-contained HTML health page (onepin-etl report --format "
                          "html), rewritten after each load.")
    def health_page() -> dg.MaterializeResult:
        html = html_report.build_page(target, checks=health.CheckConfig(
            as_of=checks.as_of(), window=checks.window, min_executions=checks.min_executions))
        written = html_report.write_page(page_path, html)
        return dg.MaterializeResult(metadata={"path": str(written.absolute()),
                                              "bytes": written.stat().st_size})

    job = dg.define_asset_job("onepin_load", selection=[onepin_assets, health_page])
    return dg.Definitions(
        assets=[onepin_assets, health_page], asset_checks=_asset_checks(target, checks),
        jobs=[job],
        schedules=[dg.ScheduleDefinition(name="onepin_every_15_minutes"
                                         if cron == DEFAULT_CRON else "onepin_schedule",
                                         job=job, cron_schedule=cron)],
        resources={"dlt": DagsterDltResource()})


def _asset_checks(target: Target, settings: AssetChecks) -> list[dg.AssetChecksDefinition]:
    steps = dg.AssetKey("dlt_onepin_run_steps")
    base = health.CheckConfig(window=settings.window, min_executions=settings.min_executions,
                              regressions=False)

    def evaluate(kind: str, config: health.CheckConfig) -> dg.AssetCheckResult:
        with analysis.connect(**target.where()) as con:
            report = health.run_checks(con, replace(config, as_of=settings.as_of()))
        found = [f.line() for f in report.findings if f.check == kind]
        return dg.AssetCheckResult(passed=not found, metadata={
            "findings": "\n".join(found) or "none",
            "nodes_checked": report.groups_checked, "steps_in_window": report.steps_recent})

    @dg.asset_check(asset=steps, name="fresh", description="The newest loaded run is recent.")
    def fresh() -> dg.AssetCheckResult:
        return evaluate("freshness", replace(base, max_age=settings.max_age))

    @dg.asset_check(asset=steps, name="failure_rates",
                    description="No node's failure rate (or p95) over the window is too high.")
    def failure_rates() -> dg.AssetCheckResult:
        return evaluate("threshold", replace(base, max_failure_rate=settings.max_failure_rate,
                                             max_p95_seconds=settings.max_p95_seconds))

    @dg.asset_check(asset=steps, name="no_duplicate_steps",
                    description="Every (run_id, id) is loaded once.")
    def no_duplicate_steps() -> dg.AssetCheckResult:
        return evaluate("duplicates", base)

    return [fresh, failure_rates, no_duplicate_steps]

