"""The ``onepin`` dlt source (``from onepin_source import onepin``): the ``workflows``, ``runs``
and ``run_steps`` resources.

Tables (``docs/architecture.md``): ``workflows`` (merge on ``id``), ``runs`` (merge on ``id``)
and ``run_steps`` (one row per node execution attempt, key ``(run_id, id)``; a run's steps are
replaced as a unit: delete-insert on ``merge_key="run_id"``, see ``hints.RUN_STEPS_TABLE``).
The source filters one dlt warning (:class:`onepin_source.batches._JsonHintFilter`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import dlt
from dlt.sources import DltResource

from onepin_source.batches import (
    RowBatches,
    StepsFetcher,
    StepsState,
    moved,
    regroup,
    run_refs,
    step_rows,
)
from onepin_source.client import OnepinClient
from onepin_source.config import (
    parse_run_refs,
    parse_since,
    resolve_credentials,
    validate_uuid,
)
from onepin_source.errors import ConfigError, OnepinNotFoundError
from onepin_source.fanout import interleave
from onepin_source.hints import RUN_HINTS, RUN_STEPS_TABLE, WORKFLOW_HINTS
from onepin_source.incremental import row_digest
from onepin_source.listing import ListingOptions, workflow_runs
from onepin_source.pieces import Pieces
from onepin_source.settings import (
    DEFAULT_CONCURRENCY,
    DEFAULT_LOOKBACK_MINUTES,
    MAX_CONCURRENCY,
    RUNS_PER_BATCH,
)
from onepin_source.shaping import workflow_row
from onepin_source.shards import Shard
from onepin_source.state import SOURCE_NAME, LoadState, WorkflowState

__all__ = ["onepin"]


@dataclass(frozen=True)
class Selection:
    """Which workflows and runs to load: every visible workflow unless ids are given."""

    workflow_ids: tuple[str, ...] = ()
    runs: dict[str, tuple[str, ...]] = field(default_factory=dict)  # workflow_id -> run ids
    shard: Shard | None = None  # only the workflows this shard owns

    def owns(self, workflow_id: str) -> bool:
        return self.shard is None or self.shard.owns(workflow_id)

    @property
    def everything(self) -> bool:
        return not self.workflow_ids and not self.runs

    def lists_runs_of(self, workflow_id: str) -> bool:
        return self.everything or workflow_id in self.workflow_ids


@dlt.source(name=SOURCE_NAME, section="onepin", max_table_nesting=0)
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
    max_requests_per_minute: int | None = None,
    row_format: str = "arrow",
    target_key: str | None = None,
    detect_changes: bool = True,
    shard: str | None = None,
    max_duration: float | None = None,
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
        concurrency: Requests in flight at most (one shared connection pool): a hard cap. The
            limiter starts at 8 and rises while answers stay fast; a 429 or slower answers
            lower it for every worker (:mod:`onepin_source.throttle`).
        max_requests_per_minute: A budget for a key shared with other users: never more than
            this many requests in any 60 s. The API's own quota is learned either way (and
            kept in the state, so the next load starts paced).
        row_format: ``"arrow"`` (default: Arrow tables, several times faster to normalize) or
            ``"dicts"`` (dlt's plain dict rows). Both give the same tables; Arrow tables get
            ``_dlt_load_id`` and ``_dlt_id`` only when dlt's
            ``normalize.parquet_normalizer.add_dlt_load_id`` and ``add_dlt_id`` are set
            (``.dlt/config.toml`` sets them; ``onepin_etl.build_pipeline`` does too).
        target_key: Identity of the destination (file, folder, dataset). When it differs from
            the one the state was built for, the marks start over (a full, idempotent reload)
            instead of skipping data the new destination never received.
        detect_changes: Skip workflows the workflow list proves unchanged, read open runs in
            one filtered listing, fetch steps only of runs that moved, and list many workflows
            at once (default). ``False`` is the earlier algorithm, kept to measure against.
        shard: ``"K/N"``: only the workflows whose id hashes to shard K of N
            (:class:`onepin_source.shards.Shard`), for N loaders side by side. Give each shard
            a pipeline name of its own, so each keeps its own incremental state.
        max_duration: Seconds from the source's creation after which the load starts no new
            workflow: what was fetched is committed, the next load continues
            (:mod:`onepin_source.pieces`). Default: no limit.

    Returns:
        The ``workflows``, ``runs`` and ``run_steps`` resources.
    """
    credentials = resolve_credentials(api_key, base_url, workspace_id)
    since_ts = parse_since(since)
    if not isinstance(concurrency, int) or not 1 <= concurrency <= MAX_CONCURRENCY:
        raise ConfigError(f"concurrency must be a whole number from 1 to {MAX_CONCURRENCY}, "
                          f"not {concurrency!r}")
    if max_requests_per_minute is not None and (
            not isinstance(max_requests_per_minute, int) or max_requests_per_minute < 1):
        raise ConfigError("max_requests_per_minute must be a whole number of at least 1, not "
                          f"{max_requests_per_minute!r}")
    if max_duration is not None and (isinstance(max_duration, bool)
                                     or not isinstance(max_duration, int | float)
                                     or max_duration <= 0):
        raise ConfigError(f"max_duration must be a number of seconds above 0, "
                          f"not {max_duration!r}")
    batches = RowBatches(row_format)
    run_pairs = parse_run_refs(runs or [])
    selection = Selection(
        tuple(validate_uuid(w, "workflow id") for w in workflow_ids or []),
        {wf: tuple(r for w, r in run_pairs if w == wf) for wf, _ in run_pairs},
        Shard.parse(shard) if shard else None,
    )
    client = OnepinClient(credentials, concurrency=concurrency,
                          max_requests_per_minute=max_requests_per_minute, read_ahead=True)
    fetcher = StepsFetcher(client, concurrency=concurrency, include_result=include_result)
    listing = ListingOptions(timedelta(minutes=lookback_minutes), since_ts, detect_changes)
    state = LoadState(target_key)
    steps_state = StepsState(detect_changes, state)

    def next_piece() -> Iterator[list[dict[str, Any]]]:
        """The workflow rows of this extract's piece: every workflow unless a caller runs the
        source in pieces (the list is read once, by the first piece). The first request goes
        paced by what the last load learned of the API's quota. The extract starts here: the
        state of this extract is bound for every resource and thread."""
        pieces.stop_reading_ahead()  # from here the extract sends what was not read ahead
        state.bind()
        client.limiter.restore(state.quota, state.pace)
        if piece := pieces.next_piece(lambda: _workflows(client, selection), state.recorded):
            yield piece

    # The workflow list feeds two transformers: the workflows table gets the rows that changed,
    # the runs listing looks at every workflow.
    workflow_list = dlt.resource(next_piece, name="workflow_list", selected=False)

    @dlt.transformer(name="workflows", primary_key="id", write_disposition="merge",
                     columns=WORKFLOW_HINTS)
    def changed_workflows(rows: list[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
        """The workflow rows that differ from those loaded last time (all without
        ``detect_changes``)."""
        changed = [row for row in rows
                   if state.workflow_row_changed(row["id"], row_digest(row)) or not detect_changes]
        if changed:
            yield changed

    def runs_to_load(through: OnepinClient, workflow: dict[str, Any], marks: WorkflowState,
                     steps_fetched: Mapping[str, str]) -> Iterator[list[dict[str, Any]]]:
        workflow_id = workflow["id"]
        return workflow_runs(through, workflow, marks, listing,
                             chosen=selection.runs.get(workflow_id, ()),
                             listed=selection.lists_runs_of(workflow_id),
                             steps_fetched=steps_fetched)

    threads = concurrency if detect_changes else 1

    @dlt.transformer(name="runs", primary_key="id", write_disposition="merge",
                     columns=RUN_HINTS)
    def runs_of(page: list[dict[str, Any]]) -> Iterator[Any]:
        """Runs of a page of workflows, listed concurrently: new ones and those open before."""
        steps_fetched = state.steps_fetched

        def job(workflow: dict[str, Any]) -> Callable[[], Iterator[list[dict[str, Any]]]]:
            def rows() -> Iterator[list[dict[str, Any]]]:
                if not pieces.may_start(workflow["id"]):  # the piece's or the load's time is up
                    return iter(())
                return runs_to_load(client, workflow, state.workflow(workflow["id"]),
                                    steps_fetched)

            return rows

        pages = interleave([job(w) for w in page], threads=threads)
        for runs_batch in regroup(pages, RUNS_PER_BATCH):
            yield batches.runs(runs_batch)
        state.remember_quota(client.limiter.quota)
        state.remember_pace(client.limiter.pace())
        state.checkpoint(pieces.pieces, *pieces.left())

    def read_ahead(workflows: list[dict[str, Any]]) -> None:
        """Fetch the next piece's runs and steps while this one is committed, with copies of
        its workflows' marks: the next extract takes the answers
        (:mod:`onepin_source.readahead`)."""
        assert client.read_ahead is not None
        ahead = client.reading_ahead()
        marks = {w["id"]: state.recorded(w["id"]) for w in workflows}
        steps_fetched = dict(state.steps_fetched)

        def work() -> None:
            jobs = [functools.partial(runs_to_load, ahead, w, marks[w["id"]], steps_fetched)
                    for w in workflows]
            with ThreadPoolExecutor(max_workers=concurrency,
                                    thread_name_prefix="onepin-ahead") as pool:
                for runs_page in interleave(jobs, threads=threads):
                    refs = run_refs(runs_page)
                    for ref in moved(refs, steps_fetched) if detect_changes else refs:
                        pool.submit(ahead.run_steps, ref.workflow_id, ref.run_id,
                                    include_result=include_result)

        client.read_ahead.start(work)

    @dlt.transformer(parallelized=True, **RUN_STEPS_TABLE)
    def run_steps(runs_batch: Any) -> Any:
        """Steps of the runs that moved since their steps were last fetched, replacing those
        runs' previous steps (merge key run_id)."""
        refs = steps_state.to_fetch(run_refs(runs_batch))
        fetched = list(fetcher.steps_of([(r.workflow_id, r.run_id) for r in refs]))
        pieces.fetched_steps(len(refs))
        steps_state.fetched(refs, [steps for _, _, steps in fetched])
        state.remember_quota(client.limiter.quota)
        rows = step_rows(fetched)
        return batches.steps(rows) if rows else []

    pieces = Pieces(max_duration, limiter=client.limiter, read_ahead=client.read_ahead,
                    fetch_ahead=read_ahead)
    runs_resource = workflow_list | runs_of
    runs_resource.pieces = pieces  # type: ignore[attr-defined]  # for pieces.pieces_of(source)
    return workflow_list | changed_workflows, runs_resource, runs_resource | run_steps


def _workflows(client: OnepinClient, selection: Selection) -> list[dict[str, Any]]:
    """The workflow rows: listed, or fetched by id for a selection."""
    if selection.everything:
        # One item with every workflow of a piece: the runs transformer then lists the runs of
        # all of them through one pool, not page by page with a wait for each page's slowest.
        return [workflow_row(item) for page in client.workflows() for item in page
                if selection.owns(item["id"])]
    chosen = []
    for workflow_id in dict.fromkeys(selection.workflow_ids + tuple(selection.runs)):
        if not selection.owns(workflow_id):
            continue
        try:
            chosen.append(workflow_row(client.workflow(workflow_id)))
        except OnepinNotFoundError:
            raise ConfigError(f"workflow {workflow_id} not found (404): check the id and that "
                              "the API key's workspace can see it") from None
    return chosen
