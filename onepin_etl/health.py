"""Health checks over loaded data: thresholds, freshness, regressions, duplicates.

One implementation for ``onepin-etl check`` and the Dagster asset checks. Every rule reads the
analysis views (``analysis_sql``) of any destination the report reads.

Rules (docs/checks.md):

- **threshold**: over the recent window, a node's (or node type's) failure rate or p95 duration
  of completed steps above the limit, once it has at least ``min_executions`` steps that count
  (completed + failed for the failure rate, completed for p95);
- **freshness**: the newest loaded run was created more than ``max_age`` before ``as_of``;
- **regression**, recent window against the baseline window before it:
  - failure rate: a one-sided two-proportion z-test (pooled) says the recent rate is higher,
    with at least ``min_executions`` decided steps in each window and at least
    ``min_failures`` recent failures;
  - p95: more recent completed steps are slower than the baseline's p95 than the 5% expected
    (exact one-sided binomial test), and the recent p95 is at least ``p95_factor`` times the
    baseline's, with ``min_executions`` completed steps in each window;
  - significance: Bonferroni over every test run (all nodes, both metrics), each at
    ``(1 - confidence) / tests``, so a check of many stable nodes raises no false alarm with
    probability ``confidence``;
- **duplicates**: a step ``(run_id, id)`` loaded twice (never expected: runs are replaced as a
  unit);
- **nothing to judge**: no completed or failed step in the recent window (a load that stopped,
  a wrong ``--workflow`` or ``--window``) is not healthy, unless ``allow_empty``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime, timedelta
from statistics import NormalDist
from typing import Any

import duckdb
import numpy as np
import pandas as pd

from onepin_etl.utc import as_utc
from onepin_source.errors import ConfigError

P95_SHARE = 0.05  # the share of a stable distribution above its own p95
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhd])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> timedelta:
    """``90s``, ``15m``, ``24h``, ``7d`` -> timedelta."""
    match = _DURATION.match(text.strip().lower())
    if not match:
        raise ConfigError(f"duration {text!r} is not a number with a unit s, m, h or d "
                          "(for example 24h or 7d)")
    return timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2)])


@dataclass(frozen=True)
class CheckConfig:
    """What to check; ``None`` turns a threshold off."""

    as_of: datetime = field(default_factory=lambda: datetime.now(UTC))
    window: timedelta = timedelta(hours=24)
    baseline: timedelta = timedelta(days=7)
    by: str = "node"  # or "node_type"
    max_failure_rate: float | None = None
    max_p95_seconds: float | None = None
    max_age: timedelta | None = None
    min_executions: int = 20
    min_failures: int = 5
    confidence: float = 0.99
    p95_factor: float = 1.5
    regressions: bool = True
    allow_empty: bool = False  # no step in the window is healthy (a workspace that rests)

    def __post_init__(self) -> None:
        if self.by not in ("node", "node_type"):
            raise ConfigError(f"by must be node or node_type, not {self.by!r}")
        if not 0.5 <= self.confidence < 1:
            raise ConfigError("confidence must be at least 0.5 and below 1 (e.g. 0.99)")
        if self.as_of.tzinfo is None:
            raise ConfigError("as_of needs a UTC offset, e.g. 2026-01-31T00:00:00Z")


@dataclass(frozen=True)
class Finding:
    """One failed check: where, which metric, its value, and the limit or baseline."""

    check: str  # threshold | freshness | regression | duplicates | empty
    metric: str
    value: float
    limit: float
    workflow: str | None = None
    node: str | None = None
    detail: str = ""

    @property
    def subject(self) -> str:
        return " / ".join(p for p in (self.workflow, self.node) if p) or "all data"

    def line(self) -> str:
        if self.check == "empty":
            return f"nothing to judge: {self.detail}"
        compare = "baseline" if self.check == "regression" else "limit"
        return (f"{self.check}: {self.subject}: {self.metric} {_fmt(self.value)} "
                f"({compare} {_fmt(self.limit)}; {self.detail})")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class HealthReport:
    findings: list[Finding]
    groups_checked: int
    steps_recent: int
    steps_baseline: int
    newest_run_at: datetime | None

    @property
    def healthy(self) -> bool:
        return not self.findings


def _fmt(value: float) -> str:
    return f"{value:.4g}"


def run_checks(con: duckdb.DuckDBPyConnection, config: CheckConfig) -> HealthReport:
    """Every rule over the views of ``con`` (see :func:`onepin_etl.analysis.connect`)."""
    steps = _steps(con, config)
    recent_start = config.as_of - config.window
    recent = steps[steps.started_at >= recent_start]
    baseline = steps[steps.started_at < recent_start]
    newest = _newest_run(con)
    findings = list(_freshness(newest, config)) + list(_duplicates(con))
    if recent.empty and not config.allow_empty:
        findings.append(Finding("empty", "steps_recent", 0.0, 1.0,
                                detail=f"no steps in the last {span_text(config.window)}"))
    keys = ["workflow_name", "node_display_name"] if config.by == "node" else ["node_type"]
    group_keys = ["workflow_id", "node_id"] if config.by == "node" else ["node_type"]
    groups = 0
    tests: list[_Tested] = []
    # Each baseline group once (not the whole baseline filtered again for every node)
    baselines = dict(iter(baseline.groupby(group_keys, dropna=False)))
    empty = baseline.iloc[0:0]
    for key, now_group in recent.groupby(group_keys, dropna=False):
        groups += 1
        label = now_group.iloc[0][keys].tolist()
        subject = (label[0], label[1]) if config.by == "node" else (None, label[0])
        before = baselines.get(key, empty)
        findings += _thresholds(now_group, config, subject)
        if config.regressions:
            tests += _regression_tests(now_group, before, config, subject)
    findings += _significant(tests, config)
    return HealthReport(findings, groups, len(recent), len(baseline), newest)


def _steps(con: duckdb.DuckDBPyConnection, config: CheckConfig) -> pd.DataFrame:
    start = config.as_of - config.window - (config.baseline if config.regressions else
                                           timedelta(0))
    frame = con.execute("""
        select workflow_id, workflow_name, node_id, node_display_name, node_type, status,
               duration_ms, started_at
        from step_durations
        where started_at >= ? and started_at < ? and status in ('completed', 'failed')
        """, [start, config.as_of]).df()
    frame["started_at"] = pd.to_datetime(frame["started_at"], utc=True)
    return frame


def _newest_run(con: duckdb.DuckDBPyConnection) -> datetime | None:
    (newest,), = con.execute("select max(last_run_at) from workflow_summary").fetchall()
    if not isinstance(newest, datetime):
        return None
    return as_utc(newest)


def _freshness(newest: datetime | None, config: CheckConfig) -> Iterator[Finding]:
    if config.max_age is None:
        return
    limit_h = config.max_age.total_seconds() / 3600
    if newest is None:
        yield Finding("freshness", "newest_run_age_hours", math.inf, limit_h,
                      detail="no runs loaded")
        return
    age_h = (config.as_of - newest).total_seconds() / 3600
    if age_h > limit_h:
        yield Finding("freshness", "newest_run_age_hours", age_h, limit_h,
                      detail=f"newest run created {newest.isoformat()}")


def _duplicates(con: duckdb.DuckDBPyConnection) -> Iterator[Finding]:
    (extra,), = con.execute("select count(*) - count(distinct (run_id, step_id)) "
                            "from step_durations").fetchall()
    if extra:
        yield Finding("duplicates", "duplicate_steps", float(extra), 0.0,
                      detail="steps (run_id, id) loaded more than once")


def _rate(group: pd.DataFrame) -> tuple[int, int]:
    failed = int((group.status == "failed").sum())
    return failed, failed + int((group.status == "completed").sum())


def _completed_ms(group: pd.DataFrame) -> Any:
    return group.loc[group.status == "completed", "duration_ms"].dropna().to_numpy(dtype=float)


def _thresholds(group: pd.DataFrame, config: CheckConfig,
                subject: tuple[str | None, str]) -> list[Finding]:
    found = []
    window = f"last {span_text(config.window)}"
    failed, decided = _rate(group)
    if config.max_failure_rate is not None and decided >= config.min_executions:
        rate = failed / decided
        if rate > config.max_failure_rate:
            found.append(Finding("threshold", "failure_rate", rate, config.max_failure_rate,
                                 *subject, detail=f"{failed}/{decided} failed, {window}"))
    durations = _completed_ms(group)
    if config.max_p95_seconds is not None and len(durations) >= config.min_executions:
        p95 = float(np.quantile(durations, 0.95)) / 1000
        if p95 > config.max_p95_seconds:
            found.append(Finding("threshold", "p95_seconds", p95, config.max_p95_seconds,
                                 *subject, detail=f"{len(durations)} completed, {window}"))
    return found


@dataclass(frozen=True)
class _Tested:
    """A regression test that was run: its p-value and the finding if it is significant."""

    p_value: float
    finding: Finding
    worse: bool  # the effect is in the bad direction and large enough to matter


def _regression_tests(recent: pd.DataFrame, baseline: pd.DataFrame, config: CheckConfig,
                      subject: tuple[str | None, str]) -> list[_Tested]:
    tests = []
    x1, n1 = _rate(recent)
    x0, n0 = _rate(baseline)
    if min(n1, n0) >= config.min_executions:
        p = two_proportion_p_value(x1, n1, x0, n0)
        tests.append(_Tested(p, Finding(
            "regression", "failure_rate", x1 / n1, x0 / n0, *subject,
            detail=f"{x1}/{n1} failed vs {x0}/{n0}; two-proportion z-test p={p:.2g}"),
            worse=x1 >= config.min_failures))
    now_ms, before_ms = _completed_ms(recent), _completed_ms(baseline)
    if min(len(now_ms), len(before_ms)) >= config.min_executions:
        before_p95 = float(np.quantile(before_ms, 0.95))
        now_p95 = float(np.quantile(now_ms, 0.95))
        slower = int((now_ms > before_p95).sum())
        p = binomial_tail(slower, len(now_ms), P95_SHARE)
        tests.append(_Tested(p, Finding(
            "regression", "p95_seconds", now_p95 / 1000, before_p95 / 1000, *subject,
            detail=f"{slower}/{len(now_ms)} completed steps slower than the baseline p95 "
                   f"(5% expected); binomial test p={p:.2g}"),
            worse=now_p95 >= config.p95_factor * before_p95))
    return tests


def _significant(tests: list[_Tested], config: CheckConfig) -> list[Finding]:
    """Bonferroni: with m tests run, each must reach p < (1 - confidence) / m, so that the
    chance of any false alarm over all nodes stays at most 1 - confidence."""
    if not tests:
        return []
    threshold = (1 - config.confidence) / len(tests)
    return [replace(t.finding, detail=f"{t.finding.detail} < {threshold:.2g} "
                                      f"(Bonferroni over {len(tests)} tests)")
            for t in tests if t.worse and t.p_value < threshold]


def two_proportion_p_value(x1: int, n1: int, x0: int, n0: int) -> float:
    """One-sided p-value that rate ``x1/n1`` exceeds ``x0/n0`` (pooled two-proportion z-test)."""
    pooled = (x1 + x0) / (n1 + n0)
    if pooled in (0.0, 1.0):
        return 1.0
    z = (x1 / n1 - x0 / n0) / math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n0))
    return 1 - NormalDist().cdf(z)


def binomial_tail(k: int, n: int, p: float) -> float:
    """P(X >= k) for X ~ Binomial(n, p), exactly (in log space, so large n is fine)."""
    if k <= 0:
        return 1.0
    log_p, log_q = math.log(p), math.log1p(-p)
    terms = [math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1)
             + i * log_p + (n - i) * log_q for i in range(k, n + 1)]
    top = max(terms)
    return min(1.0, math.exp(top) * sum(math.exp(t - top) for t in terms))


def span_text(delta: timedelta) -> str:
    """``24h`` as the default ``--window`` is written (not ``1d``), ``7d``, ``90m``."""
    seconds = int(delta.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0 and seconds >= size and (unit != "d" or seconds > 86400):
            return f"{seconds // size}{unit}"
    return f"{seconds}s"
