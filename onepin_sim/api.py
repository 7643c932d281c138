"""The read API's endpoints: query validation and response shapes (SDK 0.16.1 shapes)."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from onepin_sim.clock import iso_ms, parse_iso_ms
from onepin_sim.ids import is_uuid, make_id, parse_id
from onepin_sim.world import NODE_TYPES, RUN_STATUSES, TERMINAL, WORKFLOW_NAMES, RunAt, World

Query = dict[str, list[str]]
MAX_LIMIT = 100
DEFAULT_LIMIT = 20
WORKFLOW_STATUSES = ("draft", "running", "completed", "failed", "paused")


class ApiError(Exception):
    """An error answer: HTTP status, machine code, message and optional details."""

    def __init__(self, status: int, code: str, message: str,
                 details: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.details = status, code, message, details


def _invalid(field: str, message: str) -> ApiError:
    return ApiError(422, "VALIDATION_ERROR", f"Invalid request: {field}: {message}",
                    [{"field": field, "message": message, "line_numbers": None,
                      "min_chars": None}])


@dataclass
class Request:
    world: World
    now_ms: int
    query: Query
    base_url: str
    path: str

    def one(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[-1] if values else None

    def integer(self, name: str, default: int, low: int, high: int | None = None) -> int:
        raw = self.one(name)
        if raw is None:
            return default
        try:
            value = int(raw)
        except ValueError:
            raise _invalid(name, "must be an integer") from None
        if value < low or (high is not None and value > high):
            bound = f"between {low} and {high}" if high is not None else f">= {low}"
            raise _invalid(name, f"must be {bound}")
        return value

    def boolean(self, name: str, default: bool) -> bool:
        raw = self.one(name)
        if raw is None:
            return default
        lowered = raw.lower()
        if lowered in ("true", "1", "yes", "on"):
            return True
        if lowered in ("false", "0", "no", "off"):
            return False
        raise _invalid(name, "must be a boolean")

    def datetime_ms(self, name: str) -> int | None:
        raw = self.one(name)
        if raw is None:
            return None
        value = parse_iso_ms(raw)
        if value is None:
            raise _invalid(name, "must be an ISO-8601 datetime with a UTC offset")
        return value

    def page(self) -> tuple[int, int]:
        return self.integer("offset", 0, 0), self.integer("limit", DEFAULT_LIMIT, 1, MAX_LIMIT)

    def link(self, offset: int) -> str:
        query = {k: v for k, v in self.query.items() if k != "offset"}
        pairs = [(k, x) for k, vs in query.items() for x in vs] + [("offset", str(offset))]
        return f"{self.base_url}{self.path}?{urlencode(pairs)}"


def _paged(req: Request, items: list[Any], total: int, offset: int, limit: int) -> dict[str, Any]:
    nxt = req.link(offset + limit) if offset + limit < total else None
    prev = req.link(max(0, offset - limit)) if offset > 0 else None
    return {"data": items, "pagination": {"limit": limit, "total": total, "next": nxt,
                                          "prev": prev}}


def _iso(ms: int | None) -> str | None:
    return None if ms is None else iso_ms(ms)


# ---- lookups ---------------------------------------------------------------------------------
def _workflow_index(req: Request, workflow_id: str) -> int:
    if not is_uuid(workflow_id):
        raise _invalid("workflow_id", "must be a UUID")
    parsed = parse_id(req.world.config.seed, "workflow", workflow_id)
    if parsed is None or parsed[0] >= req.world.workflow_count(req.now_ms) or parsed[1] != 0:
        raise ApiError(404, "NOT_FOUND", f"Workflow {workflow_id} not found")
    return parsed[0]


def _run(req: Request, workflow_id: str, run_id: str) -> RunAt:
    wf = _workflow_index(req, workflow_id)
    if not is_uuid(run_id):
        raise _invalid("run_id", "must be a UUID")
    parsed = parse_id(req.world.config.seed, "run", run_id)
    if (parsed is None or parsed[0] != wf
            or not req.world.run_visible(wf, parsed[1], req.now_ms)):
        raise ApiError(404, "NOT_FOUND", f"Run {run_id} not found")
    return req.world.run_at(wf, parsed[1], req.now_ms)


# ---- shapes ----------------------------------------------------------------------------------
def _workflow(req: Request, wf: int, *, definition: bool) -> dict[str, Any]:
    world = req.world
    runs = world.runs_at(wf, req.now_ms)
    counts = {s: 0 for s in RUN_STATUSES}
    for run in runs:
        counts[run.status] += 1
    latest = runs[-1] if runs else None
    created = world.workflow_created_ms(wf)
    return {
        "id": world.workflow_id(wf),
        "user_id": world.users[wf % len(world.users)][0],
        "name": f"{WORKFLOW_NAMES[wf % len(WORKFLOW_NAMES)]} #{wf + 1}",
        "name_source": "user" if wf % 3 else "generated",
        "description": None if wf % 4 == 0 else f"Workflow {wf + 1} — {len(world.nodes(wf))} nodes",
        "definition": world.definition(wf) if definition else None,
        "created_at": iso_ms(created),
        "updated_at": iso_ms(created + 3_600_000),
        "runs_count": len(runs),
        "last_run_at": _iso(latest.plan.created_ms) if latest else None,
        "last_run_status": latest.status if latest else None,
        "run_status_counts": counts,
    }


def _workflow_status(item: dict[str, Any]) -> str | None:
    last = item["last_run_status"]
    if last is None:
        return "draft"
    if last in ("running", "paused"):
        return "running"
    return last if last in ("completed", "failed") else None


def _run_common(req: Request, run: RunAt) -> dict[str, Any]:
    plan = run.plan
    hidden = req.world.hidden_steps
    # Step counts count the step rows the steps endpoint returns (deleted ones are gone)
    steps = [s for s in run.steps if not hidden or _step_id(req, run, s.plan.seq) not in hidden]
    latest_by_node: dict[str, str] = {}
    for step in steps:
        latest_by_node[step.plan.node.node_id] = step.status
    user_id, user_name = req.world.users[plan.user]
    paused = run.status == "paused"
    pause = plan.pause
    requested = pause is not None and pause[0] - 5_000 <= run.now_ms < pause[1]
    finished = run.status in TERMINAL
    return {
        "id": plan.run_id,
        "status": run.status,
        "run_number": plan.index + 1,
        "created_at": iso_ms(plan.created_ms),
        "total_nodes": len(req.world.nodes(plan.wf)),
        "total_steps": len(steps),
        "finished_steps": sum(s.status in TERMINAL for s in steps),
        "finished_nodes": sum(st in TERMINAL for st in latest_by_node.values()),
        "credits": plan.credits if finished else None,
        "usage_summary": None if run.status == "pending" else {
            "tokens_used": plan.credits * 113, "api_calls": len(steps),
            "errors": sum(s.status == "failed" for s in steps)},
        "started_at": _iso(run.started_ms),
        "completed_at": _iso(run.completed_ms),
        "pause_requested_at": _iso(pause[0] - 5_000) if pause and requested else None,
        "paused_at": _iso(pause[0]) if pause and paused else None,
        "paused_ms": run.paused_ms,
        "pause_reason": pause[2] if pause and paused else None,
        "pause_error": None,
        "triggered_by": {"user_id": user_id, "user_name": user_name},
        "output_line_count": plan.output_line_count if finished else None,
        "delivered_audio_ms": plan.delivered_audio_ms if finished else None,
    }


def _run_detail(req: Request, run: RunAt, workflow_id: str, *, full: bool) -> dict[str, Any]:
    item = _run_common(req, run)
    item.update({
        "workflow_id": workflow_id,
        "token_cost": run.plan.credits * 10,
        "updated_at": iso_ms(max(s.plan.start_ms for s in run.steps) if run.steps
                             else run.plan.created_ms),
        "held_nodes": [],
        "error": run.plan.error if run.status == "failed" else None,
        "has_export": run.status == "completed",
    })
    if full:
        item.update({"credits_absorbed": 0.0, "public_share_id": None, "shared_at": None,
                     "definition_snapshot": req.world.definition(run.plan.wf)})
    return item


def _step_id(req: Request, run: RunAt, seq: int) -> str:
    return make_id(req.world.config.seed, "step", run.plan.wf, run.plan.index * 256 + seq)


def _step(req: Request, run: RunAt, index: int, *, include_result: bool) -> dict[str, Any]:
    step = run.steps[index]
    plan = step.plan
    has_result = step.status == "completed"
    result = req.world.step_result(run.plan, plan) if include_result and has_result else None
    return {
        "id": _step_id(req, run, plan.seq),
        "node_id": plan.node.node_id,
        "node_type": plan.node.node_type,
        "node_display_name": plan.node.display_name,
        "status": step.status,
        "iteration": plan.iteration,
        "started_at": _iso(step.started_ms),
        "completed_at": _iso(step.completed_ms),
        "result": result,
        "has_result": has_result,
        "active_ports": ["out"] if has_result else None,
        "locales": ["en-US"] if plan.node.category != "source" else None,
        "pause_reason": plan.pause_reason if step.status == "cancelled" else None,
        "pause_error": None,
        "error": plan.error if step.status == "failed" else None,
    }


# ---- endpoints -------------------------------------------------------------------------------
def whoami(req: Request) -> dict[str, Any]:
    return {"data": {"auth_kind": "api_key", "user_id": req.world.users[0][0],
                     "workspace_id": req.world.workspace_id, "api_key_id": req.world.api_key_id,
                     "scopes": ["workflows:read", "workflows:run"]}}


def list_workflows(req: Request) -> dict[str, Any]:
    offset, limit = req.page()
    status = req.one("status")
    if status is not None and status not in WORKFLOW_STATUSES:
        raise _invalid("status", f"must be one of {', '.join(WORKFLOW_STATUSES)}")
    search = (req.one("search") or "").lower()
    if len(search) > 100:
        raise _invalid("search", "must be at most 100 characters")
    after, before = req.datetime_ms("last_run_after"), req.datetime_ms("last_run_before")
    if after is not None and before is not None and after > before:
        raise _invalid("last_run_after", "must not be after last_run_before")
    include = req.boolean("include_definition", False)
    has_failed = req.boolean("has_failed_run", False) if req.one("has_failed_run") else None
    items = _all_workflows(req, include)
    if status:
        items = [i for i in items if _workflow_status(i) == status]
    if search:
        items = [i for i in items
                 if search in (i["name"] + " " + (i["description"] or "")).lower()]
    if has_failed is not None:
        items = [i for i in items if (i["run_status_counts"]["failed"] > 0) == has_failed]
    if after is not None or before is not None:
        items = [i for i in items if i["last_run_at"] and
                 (after is None or parse_iso_ms(i["last_run_at"]) >= after) and  # type: ignore[operator]
                 (before is None or parse_iso_ms(i["last_run_at"]) <= before)]  # type: ignore[operator]
    items = _sort_workflows(req, items)
    return _paged(req, items[offset: offset + limit], len(items), offset, limit)


def _all_workflows(req: Request, include: bool) -> list[dict[str, Any]]:
    """Every workflow's list item at this instant. The world only changes when the clock
    moves, so the items are kept for the current instant: paging through 1,000 workflows
    costs the server one computation, not one per page (the real API has no such cost)."""
    memo = req.world.listing_memo
    key = (req.now_ms, include)
    if key not in memo:
        if any(now != req.now_ms for now, _ in memo):
            memo.clear()
        memo[key] = [_workflow(req, wf, definition=include)
                     for wf in range(req.world.workflow_count(req.now_ms))]
    return [dict(item) for item in memo[key]]


def _sort_workflows(req: Request, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    sorts = req.query.get("sort") or ["updated_at"]
    orders = req.query.get("order") or []
    defaults = {"name": "asc", "updated_at": "desc", "runs_count": "desc"}
    items = sorted(items, key=lambda i: i["id"])
    for pos in reversed(range(len(sorts))):
        field = sorts[pos]
        if field not in defaults:
            raise _invalid("sort", "must be one of name, updated_at, runs_count")
        order = orders[pos] if pos < len(orders) else defaults[field]
        if order not in ("asc", "desc"):
            raise _invalid("order", "must be asc or desc")
        items.sort(key=_sort_key(field), reverse=order == "desc")
    return items


def _sort_key(field: str) -> Callable[[dict[str, Any]], tuple[bool, Any]]:
    def key(item: dict[str, Any]) -> tuple[bool, Any]:
        return item[field] is None, item[field] or 0

    return key


def get_workflow(req: Request, workflow_id: str) -> dict[str, Any]:
    return {"data": _workflow(req, _workflow_index(req, workflow_id), definition=True)}


def list_runs(req: Request, workflow_id: str) -> dict[str, Any]:
    wf = _workflow_index(req, workflow_id)
    offset, limit = req.page()
    statuses = _status_filter(req)
    search = (req.one("search") or "").lower()
    sort = req.one("sort") or "created_at"
    order = req.one("order") or "desc"
    if sort not in ("created_at", "started_at", "completed_at", "status"):
        raise _invalid("sort", "must be one of created_at, started_at, completed_at, status")
    if order not in ("asc", "desc"):
        raise _invalid("order", "must be asc or desc")
    world = req.world
    if not statuses and not search and sort == "created_at":
        # Runs are created in index order: page without materialising the others.
        visible = world.visible_runs(wf, req.now_ms)
        indices = visible[::-1] if order == "desc" else visible
        page = [world.run_at(wf, i, req.now_ms) for i in indices[offset: offset + limit]]
        return _paged(req, [_run_common(req, r) for r in page], len(visible), offset, limit)
    runs = [_run_common(req, r) for r in world.runs_at(wf, req.now_ms)]
    if statuses:
        runs = [r for r in runs if r["status"] in statuses]
    if search:
        runs = [r for r in runs if search in r["triggered_by"]["user_name"].lower()]
    runs.sort(key=lambda r: r["id"])
    runs.sort(key=lambda r: (r[sort] is None, r[sort] or ""), reverse=order == "desc")
    return _paged(req, runs[offset: offset + limit], len(runs), offset, limit)


def _status_filter(req: Request) -> set[str]:
    raw = req.one("status")
    if raw is None:
        return set()
    tokens = raw.split(",")
    bad = [t for t in tokens if t not in RUN_STATUSES]
    if bad:
        raise _invalid("status", f"unknown run status {bad[0]!r}; "
                                 f"expected comma-separated {', '.join(RUN_STATUSES)}")
    return set(tokens)


def get_run(req: Request, workflow_id: str, run_id: str) -> dict[str, Any]:
    return {"data": _run_detail(req, _run(req, workflow_id, run_id), workflow_id, full=True)}


def get_run_status(req: Request, workflow_id: str, run_id: str) -> dict[str, Any]:
    return {"data": _run_detail(req, _run(req, workflow_id, run_id), workflow_id, full=False)}


def runs_summary(req: Request, workflow_id: str) -> dict[str, Any]:
    wf = _workflow_index(req, workflow_id)
    start, end = req.datetime_ms("from"), req.datetime_ms("to")
    if start is not None and end is not None and start > end:
        raise _invalid("from", "must not be after to")
    runs = [r for r in req.world.runs_at(wf, req.now_ms)
            if (start is None or r.plan.created_ms >= start)
            and (end is None or r.plan.created_ms <= end)]
    counts = {s: sum(r.status == s for r in runs) for s in RUN_STATUSES}
    decided = counts["completed"] + counts["failed"]
    completed = [r for r in runs if r.status == "completed"]
    durations = [(r.plan.end_ms - r.plan.started_ms - (r.paused_ms or 0)) / 1000
                 for r in completed]
    return {"data": {
        "total_runs": len(runs), **counts,
        "pass_rate": counts["completed"] / decided if decided else None,
        "delivered_audio_ms": sum(r.plan.delivered_audio_ms for r in completed),
        "average_duration_seconds": sum(durations) / len(durations) if durations else None,
    }}


def run_steps(req: Request, workflow_id: str, run_id: str) -> dict[str, Any]:
    run = _run(req, workflow_id, run_id)
    include = req.boolean("include_result", False)
    node_type, node_id = req.one("node_type"), req.one("node_id")
    if node_type is not None and node_type not in NODE_TYPES:
        raise _invalid("node_type", "unknown node type")
    data = [_step(req, run, i, include_result=include) for i, s in enumerate(run.steps)
            if (node_type is None or s.plan.node.node_type == node_type)
            and (node_id is None or s.plan.node.node_id == node_id)]
    return {"data": [step for step in data if step["id"] not in req.world.hidden_steps]}


def run_overview(req: Request, workflow_id: str, run_id: str) -> dict[str, Any]:
    run = _run(req, workflow_id, run_id)
    wf_item = _workflow(req, run.plan.wf, definition=False)
    latest: dict[str, dict[str, Any]] = {}
    for step in run.steps:
        node = step.plan.node
        latest[node.node_id] = {
            "node_id": node.node_id, "node_type": node.node_type,
            "node_display_name": node.display_name, "status": step.status,
            "iteration": step.plan.iteration, "started_at": _iso(step.started_ms),
            "completed_at": _iso(step.completed_ms),
            "duration_ms": (step.completed_ms - step.started_ms
                            if step.completed_ms is not None and step.started_ms is not None
                            else None),
            "error": step.plan.error if step.status == "failed" else None,
        }
    common = _run_common(req, run)
    return {"data": {
        "workflow": {"id": workflow_id, "name": wf_item["name"]},
        "run": {k: common.get(k) for k in ("id", "status", "run_number", "created_at",
                                           "started_at", "completed_at", "paused_ms")}
        | {"has_export": run.status == "completed",
           "error": run.plan.error if run.status == "failed" else None},
        "share": None,
        "metric_sections": [],
        "audio_by_language": [],
        "validators": [],
        "workflow_snapshot": {"definition": req.world.definition(run.plan.wf),
                              "node_states": list(latest.values())},
        "capabilities": {"validator_drilldown": False, "live_trace_timing": False,
                         "persisted_aggregates": False},
        "future_links": {},
    }}


_UUIDISH = r"([^/]+)"
ROUTES: list[tuple[str, re.Pattern[str], Callable[..., dict[str, Any]]]] = [
    ("whoami", re.compile(r"^/api/v1/auth/whoami$"), whoami),
    ("workflows", re.compile(r"^/api/v1/workflows$"), list_workflows),
    ("runs_summary", re.compile(rf"^/api/v1/workflows/{_UUIDISH}/runs/summary$"), runs_summary),
    ("run_status", re.compile(rf"^/api/v1/workflows/{_UUIDISH}/runs/{_UUIDISH}/status$"),
     get_run_status),
    ("steps", re.compile(rf"^/api/v1/workflows/{_UUIDISH}/runs/{_UUIDISH}/steps$"), run_steps),
    ("overview", re.compile(rf"^/api/v1/workflows/{_UUIDISH}/runs/{_UUIDISH}/overview$"),
     run_overview),
    ("run", re.compile(rf"^/api/v1/workflows/{_UUIDISH}/runs/{_UUIDISH}$"), get_run),
    ("runs", re.compile(rf"^/api/v1/workflows/{_UUIDISH}/runs$"), list_runs),
    ("workflow", re.compile(rf"^/api/v1/workflows/{_UUIDISH}$"), get_workflow),
]


def route(path: str) -> tuple[str, Callable[..., dict[str, Any]], tuple[str, ...]] | None:
    for kind, pattern, handler in ROUTES:
        match = pattern.match(path)
        if match:
            return kind, handler, match.groups()
    return None
