"""The ``onepin`` dlt source: workflows, runs and run steps of Onepin AI voice workflows.

    import dlt
    from onepin_source import onepin

    pipeline = dlt.pipeline("onepin", destination="duckdb", dataset_name="onepin")
    pipeline.run(onepin(workflow_ids=["<uuid>"]))

Tables (``docs/architecture.md``): ``workflows`` (merge on ``id``), ``runs`` (merge on ``id``)
and ``run_steps`` (one row per node execution attempt, key ``(run_id, id)``; a run's steps are
replaced as a unit: delete-insert on ``merge_key="run_id"``, see ``hints.RUN_STEPS_TABLE``).

This package is the source and nothing else: no CLI, destinations or reports (those are the
application, ``onepin_etl``), and it never changes process-wide settings.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import dlt
from dlt.sources import DltResource

from onepin_source.batches import RowBatches, StepsFetcher, regroup, run_keys, step_rows
from onepin_source.client import OnepinClient
from onepin_source.config import (
    parse_run_refs,
    parse_since,
    resolve_credentials,
    validate_uuid,
)
from onepin_source.errors import ConfigError, OnepinNotFoundError
from onepin_source.hints import RUN_HINTS, RUN_STEPS_TABLE, WORKFLOW_HINTS
from onepin_source.incremental import RunTracker
from onepin_source.settings import (
    DEFAULT_CONCURRENCY,
    DEFAULT_LOOKBACK_MINUTES,
    MAX_CONCURRENCY,
    RUNS_PER_BATCH,
)
from onepin_source.shaping import run_row, workflow_row

__all__ = ["onepin"]
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Selection:
    """Which workflows and runs to load: every visible workflow unless ids are given."""

    workflow_ids: tuple[str, ...] = ()
    runs: dict[str, tuple[str, ...]] = field(default_factory=dict)  # workflow_id -> run ids

    @property
    def everything(self) -> bool:
        return not self.workflow_ids and not self.runs

    def lists_runs_of(self, workflow_id: str) -> bool:
        return self.everything or workflow_id in self.workflow_ids


@dlt.source(name="onepin", section="onepin", max_table_nesting=0)
def onepin(
    api_key: str | None = dlt.secrets.value,
    base_url: str | None = dlt.config.value,
    workspace_id: str | None = dlt.config.value,
    workflow_ids: Sequence[str] | None = dlt.config.value,
    runs: Sequence[str] | None = dlt.config.value,
    since: str | None = dlt.config.value,
    include_result: bool = True,
    lookback_minutes: int = DEFAULT_LOOKBACK_MINUTES,
    concurrency: int = DEFAULT_CONCURRENCY,
    row_format: str = "arrow",
    target_key: str | None = None,
) -> Sequence[DltResource]:
    """Onepin workflows, runs and run steps, loaded incrementally.

    Args:
        api_key: Onepin API key (``op_live_...``); falls back to ``ONEPIN_API_KEY`` and the
            official CLI's ``~/.onepin/credentials``.
        base_url: API base URL; default ``https://api.onepin.ai`` (or ``ONEPIN_BASE_URL``).
        workspace_id: Sent as ``X-Workspace-Id`` (or ``ONEPIN_WORKSPACE_ID``); optional.
        workflow_ids: Workflows to load; default every workflow the key can see.
        runs: Extra runs as ``WORKFLOW_ID/RUN_ID``, fetched by id on every load.
        since: ISO-8601 lower bound on run ``created_at`` for the first load.
        include_result: Ask for step ``result`` payloads (flattened into ``result__*``).
        lookback_minutes: How far before the high-water mark runs are re-listed.
        concurrency: Requests in flight at most (one shared connection pool); a 429 lowers it
            for every worker, see :mod:`onepin_source.throttle`.
        row_format: ``"arrow"`` (default: Arrow tables, several times faster to normalize) or
            ``"dicts"`` (dlt's plain dict rows). Both give the same tables; Arrow tables get
            ``_dlt_load_id`` and ``_dlt_id`` only when dlt's
            ``normalize.parquet_normalizer.add_dlt_load_id`` and ``add_dlt_id`` are set
            (``.dlt/config.toml`` sets them; ``onepin_etl.build_pipeline`` does too).
        target_key: Identity of the destination (file, folder, dataset). When it differs from
            the one the state was built for, the marks start over (a full, idempotent reload)
            instead of skipping data the new destination never received.

    Returns:
        The ``workflows``, ``runs`` and ``run_steps`` resources.
    """
    credentials = resolve_credentials(api_key, base_url, workspace_id)
    since_ts = parse_since(since)
    if not isinstance(concurrency, int) or not 1 <= concurrency <= MAX_CONCURRENCY:
        raise ConfigError(f"concurrency must be a whole number from 1 to {MAX_CONCURRENCY}, "
                          f"not {concurrency!r}")
    batches = RowBatches(row_format)
    run_pairs = parse_run_refs(runs or [])
    selection = Selection(
        tuple(validate_uuid(w, "workflow id") for w in workflow_ids or []),
        {wf: tuple(r for w, r in run_pairs if w == wf) for wf, _ in run_pairs},
    )
    client = OnepinClient(credentials, concurrency=concurrency)
    fetcher = StepsFetcher(client, concurrency=concurrency, include_result=include_result)
    lookback = timedelta(minutes=lookback_minutes)

    workflows = dlt.resource(_workflows(client, selection), name="workflows",
                             primary_key="id", write_disposition="merge", columns=WORKFLOW_HINTS)

    @dlt.transformer(name="runs", primary_key="id", write_disposition="merge",
                     columns=RUN_HINTS)
    def runs_of(workflow: dict[str, Any]) -> Iterator[Any]:
        """Runs of one workflow, in batches: new ones and those open at the last load."""
        workflow_id = workflow["id"]
        seen: set[str] = set()  # each run (and so its steps) once per load
        chosen = [run_row(client.run(workflow_id, run_id), workflow_id)
                  for run_id in dict.fromkeys(selection.runs.get(workflow_id, ()))]
        seen.update(run["id"] for run in chosen)
        if chosen:
            yield batches.runs(chosen)
        if selection.lists_runs_of(workflow_id):
            state = _workflow_states(target_key)
            pages = _incremental_runs(client, workflow_id, state.setdefault(workflow_id, {}),
                                      lookback=lookback, since=since_ts)
            for runs_batch in regroup(pages, RUNS_PER_BATCH):
                fresh = [run_row(run, workflow_id) for run in _unseen(runs_batch, seen)]
                if fresh:
                    yield batches.runs(fresh)

    @dlt.transformer(parallelized=True, **RUN_STEPS_TABLE)
    def run_steps(runs_batch: Any) -> Any:
        """All steps of a batch of runs, replacing each run's previous steps (merge key run_id)."""
        rows = step_rows(fetcher.steps_of(run_keys(runs_batch)))
        return batches.steps(rows) if rows else []

    runs_resource = workflows | runs_of
    return workflows, runs_resource, runs_resource | run_steps


def _unseen(runs: list[dict[str, Any]], seen: set[str]) -> Iterator[dict[str, Any]]:
    """Runs not met before in this load (offset paging shifts when new runs arrive meanwhile)."""
    for run in runs:
        if run["id"] not in seen:
            seen.add(run["id"])
            yield run


def _workflow_states(target_key: str | None) -> dict[str, Any]:
    runs_state = dlt.current.resource_state("runs")
    if target_key and runs_state.get("target") not in (None, target_key):
        log.warning("this pipeline last loaded into another destination; starting the "
                    "incremental marks over")
        runs_state["workflows"] = {}
    if target_key:
        runs_state["target"] = target_key
    workflows: dict[str, Any] = runs_state.setdefault("workflows", {})
    return workflows


def _workflows(client: OnepinClient, selection: Selection) -> Iterator[dict[str, Any]]:
    """Workflows (merge on ``id``): listed, or fetched by id when a selection is given."""
    if selection.everything:
        for page in client.workflows():
            yield from (workflow_row(item) for item in page)
        return
    for workflow_id in dict.fromkeys(selection.workflow_ids + tuple(selection.runs)):
        try:
            yield workflow_row(client.workflow(workflow_id))
        except OnepinNotFoundError:
            raise ConfigError(f"workflow {workflow_id} not found (404): check the id and that "
                              "the API key's workspace can see it") from None


def _incremental_runs(client: OnepinClient, workflow_id: str, state: dict[str, Any], *,
                      lookback: timedelta, since: Any) -> Iterator[list[dict[str, Any]]]:
    """Pages of runs to load: listed newest first down to the mark, then stale open runs."""
    tracker = RunTracker(state, lookback=lookback, since=since)
    for page in tracker.listed(client.runs_newest_first(workflow_id)):
        for run in page:
            tracker.loaded(run)
        yield page
    reread: list[dict[str, Any]] = []
    for run_id in tracker.stale_open_ids():
        try:
            run = client.run(workflow_id, run_id)
        except OnepinNotFoundError:
            log.warning("run %s of workflow %s was open at the last load and is gone (404); "
                        "it is no longer tracked", run_id, workflow_id)
            continue
        tracker.loaded(run)
        reread.append(run)
    if reread:
        yield reread
    tracker.commit()
