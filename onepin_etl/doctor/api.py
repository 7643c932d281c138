"""The API as the configured key sees it, in a few counted requests: reachability, TLS,
latency, ``whoami``, the workspace, rate-limit headers, the workflows visible, and a sample of
runs and steps for the contract checks (:mod:`onepin_etl.doctor.contract`).

Nothing is retried or waited for (one attempt, no pacing to a quota): each request is counted
once, and a 5xx or 429 is reported as it came. Requests go through the connector's own client
(auth, headers, error messages), so what works here works in a load.
"""

from __future__ import annotations

import re
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any, TypeVar
from urllib.parse import urlsplit

from requests import Response

from onepin_etl.doctor.contract import Sample
from onepin_source.client import OnepinClient
from onepin_source.config import Credentials
from onepin_source.errors import OnepinApiError, OnepinAuthError
from onepin_source.throttle import RequestLimiter, Sent

LATENCY_SAMPLES = 3  # whoami calls whose median is the latency
SAMPLE_WORKFLOWS = 3  # workflows whose newest run (and its steps) is checked
WORKFLOW_PAGE = 100  # the most recently updated workflows, in one request
# X-RateLimit-Limit/-Remaining/-Reset, IETF RateLimit and RateLimit-Policy, Retry-After
RATE_LIMIT_HEADER = re.compile(r"^(x-)?ratelimit(-|$)|^retry-after$", re.IGNORECASE)
T = TypeVar("T")


class BudgetSpent(Exception):
    """The request budget (``--max-requests``) is spent: the rest is not checked."""


@dataclass
class Budget:
    """Requests the doctor may make, and what it left out for want of them."""

    most: int
    made: int = 0
    stopped_at: str | None = None  # the first request it could not make

    def spend(self, what: str) -> None:
        if self.made >= self.most:
            self.stopped_at = what
            raise BudgetSpent(what)
        self.made += 1


@dataclass
class ApiCheck:
    """What the API answered; ``problem`` is the error that stopped the checks."""

    reachable: bool | None = None
    tls: str | None = None
    latency_ms: float | None = None
    whoami: dict[str, Any] | None = None
    workspace_agrees: bool | None = None  # None: no X-Workspace-Id is sent
    rate_limit_headers: dict[str, str] = field(default_factory=dict)
    workflows_visible: int | None = None
    runs_summary: str | None = None  # None: not checked
    problem: OnepinApiError | None = None

    def as_dict(self) -> dict[str, Any]:
        who = self.whoami or {}
        return {
            "reachable": self.reachable, "tls": self.tls, "latency_ms": self.latency_ms,
            "whoami": None if self.whoami is None else {
                k: who.get(k) for k in ("auth_kind", "user_id", "workspace_id", "api_key_id",
                                        "scopes")},
            "workspace_id_agrees": self.workspace_agrees,
            "rate_limit_headers": self.rate_limit_headers,
            "workflows_visible": self.workflows_visible,
        }


class _Unpaced(RequestLimiter):
    """One request at a time, each sent at once and answered as it came: the doctor reports a
    spent quota, it does not wait for it (a load does: :mod:`onepin_source.throttle`)."""

    def __init__(self) -> None:
        super().__init__(1, patience_s=0)

    def release(self, status: int | None, headers: Any = None, sent: Sent | None = None,
                retry_after_s: float | None = None) -> None:
        super().release(status, None, sent, retry_after_s)  # learns no quota to pace to


class Probe:
    """One pass over the API with one client, every request counted against ``budget``."""

    def __init__(self, credentials: Credentials, budget: Budget) -> None:
        self.credentials = credentials
        self.budget = budget
        self.found = ApiCheck()
        self.sample: Sample | None = None  # filled as it is read
        self.client = self._client(credentials)

    def _client(self, credentials: Credentials) -> OnepinClient:
        client = OnepinClient(credentials, max_attempts=1, limiter=_Unpaced())
        client.on_response(self._seen)
        return client

    def _seen(self, response: Response) -> None:
        self.found.reachable = True
        self.found.rate_limit_headers.update(
            {name: value for name, value in response.headers.items()
             if RATE_LIMIT_HEADER.match(name)})

    def _call(self, what: str, request: Callable[[], T]) -> T:
        self.budget.spend(what)
        return request()

    def run(self) -> tuple[ApiCheck, Sample | None]:
        """Every check in order, until the budget is spent or an error stops them."""
        try:
            self._whoami()
            self._sample()
            self._runs_summary()
        except BudgetSpent:
            pass
        except OnepinApiError as exc:
            self._failed(exc)
        self.found.tls = self._tls()
        return self.found, self.sample

    def _whoami(self) -> None:
        times = []
        for _ in range(LATENCY_SAMPLES):
            started = time.perf_counter()
            who = self._call("whoami", self.client.whoami)
            times.append((time.perf_counter() - started) * 1000)
            self.found.whoami = who
            self.found.latency_ms = round(statistics.median(times), 1)
        if self.credentials.workspace_id:
            self.found.workspace_agrees = who.get("workspace_id") == self.credentials.workspace_id
        if "workflows:read" not in (who.get("scopes") or []):
            raise OnepinAuthError("the key lacks the workflows:read scope, which loads need; "
                                  "create a key with it in the Onepin dashboard", status=403)

    def _sample(self) -> None:
        listing = self._call("workflows", lambda: self.client.envelope(
            "/workflows", {"limit": WORKFLOW_PAGE, "sort": "updated_at", "order": "desc"}))
        workflows = list(listing["data"])
        pagination = listing.get("pagination") or {}
        self.found.workflows_visible = pagination.get("total", len(workflows))
        recent = sorted((w for w in workflows if w.get("last_run_at")),
                        key=lambda w: str(w["last_run_at"]), reverse=True)[:SAMPLE_WORKFLOWS]
        self.sample = sample = Sample(workflows, [], [], None)
        newest: list[tuple[str, dict[str, Any]]] = []
        for workflow in recent:
            runs = self._call("runs", partial(
                self.client.envelope, f"/workflows/{workflow['id']}/runs",
                {"limit": 1, "sort": "created_at", "order": "desc"}))["data"]
            newest += [(workflow["id"], run) for run in runs[:1]]
            sample.runs += runs[:1]
        for workflow_id, run in newest:
            steps = self._call("steps", partial(
                self.client.envelope, f"/workflows/{workflow_id}/runs/{run['id']}/steps",
                {"include_result": "true"}))
            sample.steps.extend(steps["data"])
            sample.steps_paginated = bool(sample.steps_paginated) or "pagination" in steps

    def _runs_summary(self) -> None:
        sample = self.sample
        workflow = next((w for w in sample.workflows if w.get("last_run_at")), None) \
            if sample else None
        if workflow is None:
            return
        try:
            self._call("runs/summary", lambda: self.client.runs_summary(workflow["id"]))
            self.found.runs_summary = "answers for this key"
        except OnepinAuthError as exc:
            self.found.runs_summary = f"refused for this key (HTTP {exc.status} {exc.code})"

    def _failed(self, exc: OnepinApiError) -> None:
        """Record what stopped the checks; a 403 with a workspace set is explained by asking
        the key's own workspace (one more whoami, without ``X-Workspace-Id``)."""
        self.found.problem = exc
        if self.found.reachable is None:  # no answer came back at all
            self.found.reachable = False
        if not (isinstance(exc, OnepinAuthError) and exc.status == 403
                and self.credentials.workspace_id and self.found.whoami is None):
            return
        bare = self._client(replace(self.credentials, workspace_id=None))
        try:
            own = self._call("whoami without X-Workspace-Id", bare.whoami).get("workspace_id")
        except (OnepinApiError, BudgetSpent):
            return
        self.found.workspace_agrees = False
        self.found.problem = OnepinAuthError(
            f"X-Workspace-Id {self.credentials.workspace_id} does not match the key's "
            f"workspace {own}; unset ONEPIN_WORKSPACE_ID (or [sources.onepin] workspace_id), "
            "or set it to the key's workspace", status=403, code=exc.code)

    def _tls(self) -> str:
        if urlsplit(self.credentials.base_url).scheme == "http":
            return "none: plain http, allowed to loopback addresses only"
        if self.found.reachable:
            return "https, certificate verified"
        problem = str(self.found.problem or "")
        return "failed: " + ("certificate or handshake refused" if "SSLError" in problem
                             else "not reached")
