"""The simulated Onepin workspace: workflows, runs and run steps, generated lazily.

Nothing is stored. A run is a pure function of ``(seed, workflow index, run index)``: its
*plan* fixes when it is created, starts, pauses and ends and every step attempt in it; what the
API shows is that plan cut at the simulated clock's ``now``. So a workspace of a million steps
costs memory only for the plans in the cache, the same request always gets the same answer, and
advancing the clock makes open runs progress and new runs appear.
"""

from __future__ import annotations

import functools
import math
import random
from dataclasses import dataclass
from typing import Any

from onepin_sim import payloads
from onepin_sim.clock import EPOCH_MS
from onepin_sim.ids import make_api_key, make_id, uuid_from

TERMINAL = ("completed", "failed", "cancelled")
RUN_STATUSES = ("pending", "running", "completed", "failed", "cancelled", "paused")
PAUSE_REASONS = ("user", "provider_outage", "provider_rate_limited", "provider_billing",
                 "node_timeout")
HOUR_MS = 3_600_000

# Node types in pipeline order, with category and median attempt duration (ms).
NODE_TYPES: dict[str, tuple[str, int]] = {
    "source_script": ("source", 800),
    "operator_translator": ("operator", 25_000),
    "operator_normalizer": ("operator", 3_000),
    "operator_phoneme_injector": ("operator", 6_000),
    "operator_pronunciation_corrector": ("operator", 9_000),
    "operator_generator": ("operator", 90_000),
    "validator_error_rate": ("validation", 20_000),
    "validator_naturalness": ("validation", 15_000),
    "validator_noise": ("validation", 8_000),
    "validator_pronunciation": ("validation", 18_000),
    "sink_preview": ("output", 1_500),
}
_REQUIRED = ("source_script", "operator_normalizer", "operator_generator", "sink_preview")
_RETRYING = ("operator_translator", "operator_generator", "validator_error_rate",
             "validator_naturalness", "validator_noise", "validator_pronunciation")
_ERRORS = (
    "ProviderError: 503 Service Unavailable from voice provider",
    "ValidationFailed: score {score:.2f} below threshold 0.80",
    "Timeout: node exceeded 300s",
    "RateLimited: provider quota exhausted, retry later",
    "InvalidInput: line {line} has no speakable text — «…»",
)
USERS = (("Zoë Ångström", "zoe"), ("김민준", "minjun"), ("José Álvarez", "jose"),
         ("Priya Natarajan", "priya"), ("Ola Nordmann", "ola"))
WORKFLOW_NAMES = ("Podcast dubbing", "Onboarding IVR ☎", "Catálogo de voces", "客服语音",
                  "Audiobook pilot", "Release notes TTS", "Support macros", "Ads · Q3",
                  "Kinderlieder", "News digest")


@dataclass(frozen=True)
class WorldConfig:
    """Size and shape of a simulated workspace.

    ``runs`` is the number of runs per workflow visible at the initial clock; a new run arrives
    every ``run_interval_s`` seconds of simulated time after that. With ``new_workflow_every_s``
    a new workflow is created that often after the initial clock (its first run an interval
    later). With ``late_run_every`` every that-many-th run of a workflow shows up in lists only
    ``late_by_s`` after its ``created_at`` (a late arrival).
    """

    seed: int = 7
    workflows: int = 5
    runs: int = 40
    nodes: int = 8
    run_interval_s: int = 3600
    new_workflow_every_s: int = 0
    late_run_every: int = 0
    late_by_s: int = 300

    @property
    def interval_ms(self) -> int:
        return self.run_interval_s * 1000

    @property
    def start_ms(self) -> int:
        """The clock's initial value: exactly ``runs`` runs exist per workflow."""
        return EPOCH_MS + self.runs * self.interval_ms


@dataclass(frozen=True)
class Node:
    node_id: str
    node_type: str
    display_name: str

    @property
    def category(self) -> str:
        return NODE_TYPES[self.node_type][0]


@dataclass(frozen=True)
class StepPlan:
    """One node execution attempt as planned: final status and times."""

    seq: int
    node: Node
    iteration: int
    start_ms: int
    end_ms: int
    status: str  # completed | failed | cancelled
    error: str | None = None
    pause_reason: str | None = None


@dataclass(frozen=True)
class RunPlan:
    wf: int
    index: int
    run_id: str
    created_ms: int
    started_ms: int
    end_ms: int
    final_status: str
    steps: tuple[StepPlan, ...]
    pause: tuple[int, int, str] | None  # (paused_at, resumed_at, reason)
    error: str | None
    user: int
    credits: int
    output_line_count: int
    delivered_audio_ms: int


@dataclass(frozen=True)
class StepAt:
    """A step as seen at some instant."""

    plan: StepPlan
    status: str
    started_ms: int | None
    completed_ms: int | None


@dataclass(frozen=True)
class RunAt:
    """A run as seen at some instant."""

    plan: RunPlan
    status: str
    steps: tuple[StepAt, ...]
    now_ms: int

    @property
    def started_ms(self) -> int | None:
        return None if self.status == "pending" else self.plan.started_ms

    @property
    def completed_ms(self) -> int | None:
        return self.plan.end_ms if self.status in TERMINAL else None

    @property
    def paused_ms(self) -> int | None:
        if self.status == "pending":
            return None
        if not self.plan.pause or self.now_ms < self.plan.pause[0]:
            return 0
        return min(self.now_ms, self.plan.pause[1]) - self.plan.pause[0]


class World:
    """Answers questions about the workspace at a given instant."""

    def __init__(self, config: WorldConfig) -> None:
        self.config = config
        self.api_key = make_api_key(config.seed)
        self.workspace_id = uuid_from(config.seed, "workspace")
        self.api_key_id = uuid_from(config.seed, "api-key-id")
        self.users = [(uuid_from(config.seed, "user", i), name) for i, (name, _) in
                      enumerate(USERS)]
        # Plans are pure functions of their indices; the cache only saves time.
        self.plan = functools.lru_cache(maxsize=100_000)(self._make_plan)
        self.nodes = functools.lru_cache(maxsize=None)(self._make_nodes)
        # Step ids the API no longer returns: upstream deletions, set by tests.
        self.hidden_steps: set[str] = set()
        # The workflow list items at the current instant (see api._all_workflows).
        self.listing_memo: dict[tuple[int, bool], list[dict[str, Any]]] = {}

    # ---- workflows ---------------------------------------------------------------------------
    def workflow_id(self, wf: int) -> str:
        return make_id(self.config.seed, "workflow", wf)

    def workflow_count(self, now_ms: int) -> int:
        """Workflows that exist at ``now_ms``: the initial ones, then one per interval."""
        every = self.config.new_workflow_every_s * 1000
        if not every or now_ms < self.config.start_ms:
            return self.config.workflows
        return self.config.workflows + (now_ms - self.config.start_ms) // every

    def workflow_created_ms(self, wf: int) -> int:
        if wf < self.config.workflows:
            return EPOCH_MS - (wf % 17 + 3) * 24 * HOUR_MS
        return self.config.start_ms + (wf - self.config.workflows + 1) * \
            self.config.new_workflow_every_s * 1000

    def _runs_origin_ms(self, wf: int) -> int:
        """Runs of an initial workflow are spread from the epoch, a new one's from its birth."""
        return EPOCH_MS if wf < self.config.workflows else self.workflow_created_ms(wf)

    def _make_nodes(self, wf: int) -> tuple[Node, ...]:
        rng = random.Random(f"{self.config.seed}:nodes:{wf}")
        optional = [t for t in NODE_TYPES if t not in _REQUIRED]
        chosen = set(_REQUIRED) | set(rng.sample(optional, min(len(optional),
                                                              max(0, self.config.nodes - 4))))
        types = [t for t in NODE_TYPES if t in chosen]
        extra = max(0, self.config.nodes - len(types))
        types[1:1] = ["operator_translator"] * extra
        nodes = []
        for pos, node_type in enumerate(types):
            node_id = f"node-{make_id(self.config.seed, 'node', wf, pos)[:8]}"
            nodes.append(Node(node_id, node_type, payloads.display_name(node_type, pos)))
        return tuple(nodes)

    def definition(self, wf: int) -> dict[str, Any]:
        nodes = self.nodes(wf)
        return {
            "nodes": [{"id": n.node_id, "type": n.node_type, "category": n.category,
                       "data": {"label": n.display_name}} for n in nodes],
            "edges": [{"source": a.node_id, "target": b.node_id}
                      for a, b in zip(nodes, nodes[1:], strict=False)],
            "execution": {"max_retries": 2, "node_timeout_s": 300},
        }

    # ---- runs --------------------------------------------------------------------------------
    def run_created_ms(self, wf: int, index: int) -> int:
        jitter = random.Random(f"{self.config.seed}:created:{wf}:{index}").uniform(0.05, 0.85)
        return self._runs_origin_ms(wf) + int((index + jitter) * self.config.interval_ms)

    def created_run_count(self, wf: int, now_ms: int) -> int:
        """How many runs of workflow ``wf`` were created by ``now_ms`` (they are, in order)."""
        origin = self._runs_origin_ms(wf)
        guess = max(0, math.floor((now_ms - origin) / self.config.interval_ms) + 1)
        while guess > 0 and self.run_created_ms(wf, guess - 1) > now_ms:
            guess -= 1
        while self.run_created_ms(wf, guess) <= now_ms:
            guess += 1
        return guess

    def is_late(self, index: int) -> bool:
        every = self.config.late_run_every
        return bool(every) and index % every == every - 1

    def run_visible(self, wf: int, index: int, now_ms: int) -> bool:
        delay = self.config.late_by_s * 1000 if self.is_late(index) else 0
        return self.run_created_ms(wf, index) + delay <= now_ms

    def visible_runs(self, wf: int, now_ms: int) -> list[int]:
        """Indices of the runs the API shows at ``now_ms``, oldest first."""
        created = self.created_run_count(wf, now_ms)
        if not self.config.late_run_every:
            return list(range(created))
        return [i for i in range(created) if self.run_visible(wf, i, now_ms)]

    def _make_plan(self, wf: int, index: int) -> RunPlan:
        rng = random.Random(f"{self.config.seed}:run:{wf}:{index}")
        created = self.run_created_ms(wf, index)
        queue = rng.randint(2_000, 60_000) if rng.random() > 0.03 else rng.randint(2, 10) * HOUR_MS
        started = created + queue
        roll = rng.random()
        outcome = "completed" if roll < 0.80 else "failed" if roll < 0.93 else "cancelled"
        nodes = self.nodes(wf)
        stop_at = rng.randrange(1, len(nodes)) if outcome != "completed" else len(nodes)
        pause_at_node = rng.randrange(len(nodes)) if rng.random() < 0.06 else None
        steps: list[StepPlan] = []
        pause: tuple[int, int, str] | None = None
        clock = started
        for pos, node in enumerate(nodes[: stop_at + 1] if outcome != "completed" else nodes):
            median = NODE_TYPES[node.node_type][1]
            attempts = 1
            if node.node_type in _RETRYING:
                attempts = 1 + (rng.random() < 0.12) + (rng.random() < 0.04)
            failing = outcome == "failed" and pos == stop_at
            iteration = 1
            for attempt in range(attempts):
                duration = max(5, int(median * rng.lognormvariate(0, 0.5)))
                if outcome == "cancelled" and pos == stop_at:
                    steps.append(StepPlan(len(steps), node, iteration, clock,
                                          clock + duration // 2, "cancelled"))
                    clock += duration // 2
                    break
                if pause_at_node == pos and pause is None and outcome == "completed":
                    paused_at = clock + duration // 3
                    reason = rng.choice(PAUSE_REASONS)
                    length = rng.randint(20 * 60_000, 18 * HOUR_MS)
                    steps.append(StepPlan(len(steps), node, iteration, clock, paused_at,
                                          "cancelled", None, reason))
                    pause = (paused_at, paused_at + length, reason)
                    clock = paused_at + length
                    iteration += 1
                last = attempt == attempts - 1
                ok = last and not failing
                error = None if ok else rng.choice(_ERRORS).format(
                    score=rng.uniform(0.3, 0.79), line=rng.randint(1, 400))
                steps.append(StepPlan(len(steps), node, iteration, clock, clock + duration,
                                      "completed" if ok else "failed", error))
                clock += duration + rng.randint(5, 400)
                iteration += 1
        end = clock + 200
        error = steps[-1].error if outcome == "failed" else None
        audio_ms = rng.randint(20_000, 900_000) if outcome == "completed" else 0
        return RunPlan(wf, index, make_id(self.config.seed, "run", wf, index), created, started,
                       end, outcome, tuple(steps), pause, error, rng.randrange(len(USERS)),
                       credits=len(steps) * 3 + rng.randint(0, 40),
                       output_line_count=rng.randint(5, 400) if outcome == "completed" else 0,
                       delivered_audio_ms=audio_ms)

    def run_at(self, wf: int, index: int, now_ms: int) -> RunAt:
        """The run as the API shows it at ``now_ms``."""
        plan = self.plan(wf, index)
        if now_ms < plan.started_ms:
            return RunAt(plan, "pending", (), now_ms)
        if now_ms >= plan.end_ms:
            steps = tuple(StepAt(s, s.status, s.start_ms, s.end_ms) for s in plan.steps)
            return RunAt(plan, plan.final_status, steps, now_ms)
        visible: list[StepAt] = []
        for step in plan.steps:
            if step.start_ms > now_ms:
                break
            if step.end_ms <= now_ms:
                visible.append(StepAt(step, step.status, step.start_ms, step.end_ms))
            else:
                visible.append(StepAt(step, "running", step.start_ms, None))
        paused = plan.pause is not None and plan.pause[0] <= now_ms < plan.pause[1]
        if not paused and (not visible or visible[-1].status != "running"):
            upcoming = next((s for s in plan.steps if s.start_ms > now_ms), None)
            if upcoming is not None:
                visible.append(StepAt(upcoming, "pending", None, None))
        return RunAt(plan, "paused" if paused else "running", tuple(visible), now_ms)

    def runs_at(self, wf: int, now_ms: int) -> list[RunAt]:
        return [self.run_at(wf, i, now_ms) for i in self.visible_runs(wf, now_ms)]

    def step_result(self, run: RunPlan, step: StepPlan) -> dict[str, Any]:
        return payloads.result(self.config.seed, run.wf, run.index, step.seq, step.node)
