"""Dagster definitions: the source as assets (dagster-dlt), jobs, schedules, asset checks.

    from onepin_etl.dagster_defs import build_definitions
    defs = build_definitions(Target(duckdb_path="onepin_etl.duckdb"))

``pipelines/dagster_onepin.py`` builds them from the environment for ``dagster dev``. Needs the
optional dependency ``.[dagster]``.

A materialization runs :func:`onepin_etl.pipeline.load`, the one load path of the CLI and of
Python (pending packages first, the lock, retries, one-line errors, the shard, the file format,
the views), not ``DagsterDltResource.run``: that one drops the pipeline's pending packages and
skips the rest. dagster-dlt still describes the assets, and its metadata helper describes each
materialization. The asset checks are ``onepin-etl check``'s rules (:mod:`onepin_etl.health`).

With ``shards=N`` (N > 1) the load assets are partitioned by shard, static keys ``1ofN`` …
``NofN``, each partition that shard's pipeline (``--shard K/N``). A backfill of every partition
loads the shards at once into a DuckLake or PostgreSQL, and one at a time into a DuckDB file or
a local Parquet folder: their writers queue on the destination's lock (each waits up to
``SHARD_QUEUE_WAIT_S``), or on the assets' pool when the instance limits it to 1. The health
page and the checks then get a job of their own, unpartitioned, started after each successful
load.
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
from onepin_etl.pipeline import build_pipeline, load
from onepin_etl.settings import SHARD_QUEUE_WAIT_S
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


def shard_keys(shards: int) -> list[str]:
    """The partition keys of ``shards`` shards: ``1of4`` … ``4of4``."""
    return [f"{k}of{shards}" for k in range(1, shards + 1)]


def build_definitions(target: Target, *, cron: str = DEFAULT_CRON,
                      checks: AssetChecks | None = None, wait_s: float = 60.0,
                      page: str | None = None, shards: int = 1,
                      **source_options: Any) -> dg.Definitions:
    """Assets for ``workflows``, ``runs`` and ``run_steps`` and the HTML health page (written to
    ``page``, default ``onepin_health.html`` beside the DuckDB file), the jobs that make them, a
    schedule and the asset checks. ``shards`` > 1 partitions the load assets by shard (module
    docstring). ``source_options`` go to :func:`onepin_source.onepin`."""
    checks = checks or AssetChecks()
    page_path = Path(page or Path(target.duckdb_path).with_name("onepin_health.html"))
    partitions = dg.StaticPartitionsDefinition(shard_keys(shards)) if shards > 1 else None
    one_writer = partitions is not None and not target.concurrent_shards
    queue_s = max(wait_s, SHARD_QUEUE_WAIT_S) if one_writer else wait_s
    definition_source = onepin(api_key=_DEFINITION_ONLY_KEY)
    translator = OnepinTranslator()

    @dlt_assets(dlt_source=definition_source, dlt_pipeline=build_pipeline(target),
                name="onepin", group_name="onepin", dagster_dlt_translator=translator,
                partitions_def=partitions, pool=f"onepin_{target.name}")
    def onepin_assets(context: dg.AssetExecutionContext, dlt: DagsterDltResource) -> Iterator[Any]:
        shard = context.partition_key.replace("of", "/") if partitions else None
        resources = {translator.get_asset_spec(DltResourceTranslatorData(
            resource=r, pipeline=None)).key: r
            for r in definition_source.selected_resources.values()}
        chosen = [k for k in resources if k in context.selected_asset_keys]
        info = load(replace(target, shard=shard), wait_s=queue_s,
                    tables=[resources[k].name for k in chosen] if context.is_subset else None,
                    **source_options)
        for key in chosen:
            yield dg.MaterializeResult(asset_key=key, metadata=dlt.extract_resource_metadata(
                context, resources[key], info, info.pipeline))  # type: ignore[arg-type]

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

    asset_checks = _asset_checks(target, checks)
    schedule_name = "onepin_every_15_minutes" if cron == DEFAULT_CRON else "onepin_schedule"
    if partitions is None:
        job = dg.define_asset_job("onepin_load", selection=[onepin_assets, health_page])
        return dg.Definitions(
            assets=[onepin_assets, health_page], asset_checks=asset_checks, jobs=[job],
            schedules=[dg.ScheduleDefinition(name=schedule_name, job=job, cron_schedule=cron)],
            resources={"dlt": DagsterDltResource()})
    load_job = dg.define_asset_job("onepin_load", selection=[onepin_assets])
    health_job = dg.define_asset_job(
        "onepin_health", selection=dg.AssetSelection.assets(health_page)
        | dg.AssetSelection.checks(*asset_checks))

    @dg.schedule(name=schedule_name, job=load_job, cron_schedule=cron)
    def every_shard() -> Iterator[dg.RunRequest]:
        """One run per shard: they load side by side where the destination allows it."""
        for key in partitions.get_partition_keys():
            yield dg.RunRequest(partition_key=key)

    @dg.run_status_sensor(run_status=dg.DagsterRunStatus.SUCCESS, name="onepin_after_load",
                          monitored_jobs=[load_job], request_job=health_job)
    def after_load(context: dg.RunStatusSensorContext) -> dg.RunRequest:
        """The health page and the checks, unpartitioned, after a shard's load."""
        return dg.RunRequest(run_key=context.dagster_run.run_id)

    return dg.Definitions(
        assets=[onepin_assets, health_page], asset_checks=asset_checks,
        jobs=[load_job, health_job], schedules=[every_shard], sensors=[after_load],
        resources={"dlt": DagsterDltResource()})


def _asset_checks(target: Target, settings: AssetChecks) -> list[dg.AssetChecksDefinition]:
    steps = dg.AssetKey("dlt_onepin_run_steps")
    base = health.CheckConfig(window=settings.window, min_executions=settings.min_executions,
                              regressions=False)

    def evaluate(kind: str, config: health.CheckConfig) -> dg.AssetCheckResult:
        with analysis.connect(target) as con:
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

