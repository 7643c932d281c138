"""The source's incremental state: one owner for its layout in dlt's pipeline state.

dlt keeps the state of a source under ``pipeline.state["sources"][SOURCE_NAME]`` and commits it
with each load package. Every read and write of ours goes through this module (other modules get
typed methods, never keys), so the layout below is written down once; it is the on-disk format of
existing pipelines, so a change to it needs a migration:

- ``resources.runs.workflows``: ``{workflow_id: marks}``, one workflow's :class:`WorkflowState`
  (``mark``, ``open``, ``rows``, ``recent``, ``workflow``; :mod:`onepin_source.incremental`);
- ``resources.runs.target``: the destination the marks were built for (``target_key``);
- ``resources.run_steps.fetched``: ``{run_id: steps fingerprint}`` of open runs whose settled
  steps need no fetch while the fingerprint stays;
- ``resources.workflows.rows``: ``{workflow_id: row digest}`` of the workflow rows loaded;
- ``quota``: what the request limiter learned of the API's quota (:class:`~quota.Quota`);
- ``pace``: the congestion limit, baseline latency and answers without a 429 the last load
  reached (:class:`~congestion.Pace`), for the next load to start from;
- ``checkpoint``: the last piece extracted, what was left, and the *pass* it belongs to
  (:mod:`onepin_source.pieces`); each workflow's marks name the pass that wrote them (``pass``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

import dlt

from onepin_source.congestion import Pace
from onepin_source.quota import Quota

SOURCE_NAME = "onepin"
log = logging.getLogger(__name__)


class WorkflowState:
    """One workflow's marks: read through properties, written at once by :meth:`write`.

    ``current_pass``: the pass the load now running belongs to (:attr:`LoadState.pass_id`)."""

    def __init__(self, data: dict[str, Any] | None = None, current_pass: str | None = None
                 ) -> None:
        self._data = {} if data is None else data
        self.current_pass = current_pass

    @property
    def done_in_this_pass(self) -> bool:
        """Committed earlier in the pass now running: by a load that was killed or ran out of
        time, which this load continues. Its open runs were read then; the next pass reads
        them again."""
        return self.current_pass is not None and self._data.get("pass") == self.current_pass

    @property
    def mark(self) -> str | None:
        """The newest ``created_at`` loaded (ISO string)."""
        mark: str | None = self._data.get("mark")
        return mark

    @property
    def open_runs(self) -> dict[str, str]:
        """``{run_id: created_at}`` of the runs loaded while open."""
        return dict(self._data.get("open") or {})

    @property
    def open_rows(self) -> dict[str, str]:
        """``{run_id: row digest}`` of those open runs' rows as loaded."""
        return dict(self._data.get("rows") or {})

    @property
    def recent(self) -> dict[str, str]:
        """``{run_id: created_at}`` of finished runs within the lookback of the mark."""
        return dict(self._data.get("recent") or {})

    @property
    def fingerprint(self) -> list[Any] | None:
        """What the workflow list said of the workflow at the last load (None: never read)."""
        fingerprint: list[Any] | None = self._data.get("workflow")
        return fingerprint

    def write(self, *, mark: str | None, open_runs: dict[str, str], open_rows: dict[str, str],
              recent: dict[str, str], fingerprint: list[Any] | None) -> None:
        self._data.update(mark=mark, open=open_runs, rows=open_rows, recent=recent,
                          workflow=fingerprint)
        if self.current_pass is not None:
            self._data["pass"] = self.current_pass


class LoadState:
    """The source's state during one extract.

    The source makes one and binds it at the start of each extract (:meth:`bind`, in the
    extracting thread): the steps transformer runs in worker threads, where ``dlt.current`` has
    no source, so every later access goes through the dict bound here. Binding also checks
    that the state belongs to the destination now loaded into (``target_key``).
    """

    def __init__(self, target_key: str | None = None) -> None:
        self._target_key = target_key
        self._state: dict[str, Any] | None = None
        self.pass_id: str | None = None  # set by the first bind() of a load

    def bind(self, source_state: dict[str, Any] | None = None) -> None:
        """Use ``source_state`` (default: dlt's, of the extract running in this thread). The
        first bind of a load decides its pass (:meth:`_pass`)."""
        self._state = dlt.current.source_state() if source_state is None else source_state
        self._check_target()
        if self.pass_id is None:
            self.pass_id = self._pass()

    def _pass(self) -> str:
        """The pass this load belongs to. A *pass* goes once over every workflow; a load killed
        or time-boxed before its end leaves it unfinished (the checkpoint says workflows are
        left), and the next load continues it: the workflows committed in it whose list item
        is unchanged need no request (:attr:`WorkflowState.done_in_this_pass`), as if the load
        had never been cut. Otherwise a new pass begins, named by when it began."""
        checkpoint = self._source.get("checkpoint")
        if isinstance(checkpoint, dict) and checkpoint.get("pass") \
                and checkpoint.get("workflows_left"):
            log.info("continuing the pass begun at %s: %s workflows were left",
                     checkpoint["pass"], checkpoint["workflows_left"])
            return str(checkpoint["pass"])
        return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")

    @property
    def _source(self) -> dict[str, Any]:
        if self._state is None:
            raise RuntimeError("LoadState used before bind(): call it inside an extract")
        return self._state

    def _resource(self, name: str) -> dict[str, Any]:
        resources: dict[str, dict[str, Any]] = self._source.setdefault("resources", {})
        return resources.setdefault(name, {})

    def _check_target(self) -> None:
        """The state belongs to one destination: when the pipeline now loads into another, every
        mark, fingerprint and digest starts over (the new place has none of the data)."""
        runs = self._resource("runs")
        if self._target_key and runs.get("target") not in (None, self._target_key):
            log.warning("this pipeline last loaded into another destination; starting the "
                        "incremental marks over")
            runs["workflows"] = {}
            self._resource("run_steps")["fetched"] = {}
            self._resource("workflows")["rows"] = {}
        if self._target_key:
            runs["target"] = self._target_key

    # ---- per workflow (the ``runs`` resource) ---------------------------------------------------
    def _workflows(self) -> dict[str, dict[str, Any]]:
        workflows: dict[str, dict[str, Any]] = self._resource("runs").setdefault("workflows", {})
        return workflows

    def workflow(self, workflow_id: str) -> WorkflowState:
        """The marks of a workflow this load processes (tracked from now on)."""
        return WorkflowState(self._workflows().setdefault(workflow_id, {}), self.pass_id)

    def recorded(self, workflow_id: str) -> WorkflowState:
        """The marks of a workflow as the last load left them, to read only (empty if none)."""
        return WorkflowState(dict(self._workflows().get(workflow_id) or {}), self.pass_id)

    # ---- workflow rows (the ``workflows`` resource) --------------------------------------------
    def workflow_row_changed(self, workflow_id: str, digest: str) -> bool:
        """Whether the workflow's row differs from the one loaded; records it as loaded."""
        rows: dict[str, str] = self._resource("workflows").setdefault("rows", {})
        changed = rows.get(workflow_id) != digest
        rows[workflow_id] = digest
        return changed

    # ---- open runs' steps (the ``run_steps`` resource) -----------------------------------------
    @property
    def steps_fetched(self) -> Mapping[str, str]:
        """``{run_id: steps fingerprint}`` of runs whose steps need no fetch (read-only)."""
        return MappingProxyType(self._fetched())

    def _fetched(self) -> dict[str, str]:
        fetched: dict[str, str] = self._resource("run_steps").setdefault("fetched", {})
        return fetched

    def steps_settled(self, run_id: str, fingerprint: str | None) -> None:
        """Record a run's steps as settled at ``fingerprint`` (None: fetch them next time)."""
        if fingerprint is None:
            self._fetched().pop(run_id, None)
        else:
            self._fetched()[run_id] = fingerprint

    # ---- the source as a whole ------------------------------------------------------------------
    @property
    def quota(self) -> Quota | None:
        """The API's quota as the last load learned it."""
        return Quota.from_state(self._source.get("quota"))

    def remember_quota(self, quota: Quota | None) -> None:
        """Keep what was learned, for the next load to start paced (from any thread)."""
        if quota is not None and self._state is not None:
            self._state["quota"] = quota.as_state()

    @property
    def pace(self) -> Pace | None:
        """The pace the last load reached (:class:`~onepin_source.congestion.Pace`)."""
        return Pace.from_state(self._source.get("pace"))

    def remember_pace(self, pace: Pace | None) -> None:
        """Keep the pace reached, or forget it (None: this load met a 429)."""
        if self._state is None:
            return
        if pace is None:
            self._state.pop("pace", None)
        else:
            self._state["pace"] = pace.as_state()

    def checkpoint(self, piece: int, workflows_left: int, runs_left: int) -> None:
        """Record the piece just extracted and what the load has left (``status`` shows it)."""
        self._source["checkpoint"] = {"piece": piece, "workflows_left": workflows_left,
                                      "runs_left": runs_left, "pass": self.pass_id}


@dataclass(frozen=True)
class Summary:
    """What a pipeline's state says at a glance (``onepin-etl status``)."""

    workflows_tracked: int
    open_runs: int
    checkpoint: dict[str, Any] | None  # the last piece extracted: piece, workflows/runs left, pass


def summary(pipeline_state: Mapping[str, Any]) -> Summary:
    """The summary of the source's state in a pipeline's state (``dlt.Pipeline.state``)."""
    source = pipeline_state.get("sources", {}).get(SOURCE_NAME, {})
    workflows = source.get("resources", {}).get("runs", {}).get("workflows", {})
    return Summary(workflows_tracked=len(workflows),
                   open_runs=sum(len(w.get("open") or {}) for w in workflows.values()),
                   checkpoint=source.get("checkpoint"))
