"""Alerts from ``onepin-etl check``: one JSON message to a webhook (Slack, Mattermost, Teams,
anything that takes ``{"text": …}``) when the verdict changes.

By default a message goes out only on a change: healthy → failing, a new failure while failing,
failing → healthy. The last verdict is kept beside the pipeline's lock
(``<pipelines dir>/.<pipeline>.check.json``) and is only replaced once the message went out,
so a webhook that is down gets the message on the next check instead of never.

The URL is a secret (a Slack webhook URL lets anyone post): it is read from ``--notify``,
``ONEPIN_NOTIFY_URL`` or dlt's secrets (``[notify] url``), and never printed, logged or written
to the state; a failed post is reported by the kind of failure only.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import dlt
from dlt.sources.helpers.requests import Client
from requests import RequestException

from onepin_etl.destinations import Target
from onepin_etl.health import Finding, HealthReport
from onepin_source.errors import ConfigError

NOTIFY_TIMEOUT_S = 10.0  # how long the attempts of a post may wait for answers, together
NOTIFY_ATTEMPTS = 3  # a webhook answering 5xx, 429 or nothing is tried this often
BACKOFF_S = 0.5  # waits of about 0.5 s and 1 s between attempts
MAX_WAIT_S = 2.0  # a webhook's Retry-After is honoured up to this
MAX_LINES = 20  # failures spelled out in the text; all of them are in the structured block


@dataclass(frozen=True)
class Verdict:
    """What a check found, as remembered between checks: failures by a key that does not
    change with the numbers (check, metric, workflow, node)."""

    healthy: bool
    failures: dict[str, str]  # key -> the finding's line

    @classmethod
    def of(cls, report: HealthReport) -> Verdict:
        return cls(report.healthy, {_key(f): f.line() for f in report.findings})

    def as_dict(self) -> dict[str, Any]:
        return {"healthy": self.healthy, "failures": self.failures}


def _key(finding: Finding) -> str:
    return "|".join((finding.check, finding.metric, finding.workflow or "", finding.node or ""))


def resolve_url(option: str | None) -> str | None:
    """``--notify``, else ``ONEPIN_NOTIFY_URL``, else dlt's ``[notify] url`` secret."""
    url = option or os.environ.get("ONEPIN_NOTIFY_URL") or dlt.secrets.get("notify.url")
    if not url:
        return None
    parts = urlsplit(str(url))
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError("the notify URL (--notify, ONEPIN_NOTIFY_URL or [notify] url) is not "
                          "an http(s) URL; paste the webhook URL your chat tool gave you")
    return str(url)


def state_path(target: Target) -> Path:
    return target.working_dir / f".{target.name}.check.json"


def read_state(path: Path) -> Verdict | None:
    """The last verdict sent (None before the first, or if the file is unreadable)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return Verdict(bool(data["healthy"]), dict(data["failures"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def write_state(path: Path, verdict: Verdict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(verdict.as_dict()), encoding="utf-8")


def event(previous: Verdict | None, now: Verdict, *, always: bool = False) -> str | None:
    """``failing``, ``new_failures``, ``recovered`` or (with ``always``) ``still_failing``;
    None when nothing is to be sent. A first check that is healthy sends nothing."""
    was_failing = previous is not None and not previous.healthy
    if now.healthy:
        return "recovered" if was_failing else None
    if not was_failing:
        return "failing"
    assert previous is not None
    if set(now.failures) - set(previous.failures):
        return "new_failures"
    return "still_failing" if always else None


def message(kind: str, previous: Verdict | None, report: HealthReport, *, where: str,
            as_of: datetime) -> dict[str, Any]:
    """``{"text": …}`` for people, and ``onepin`` with the failures for programs."""
    now = Verdict.of(report)
    before = previous.failures if previous else {}
    new = [line for key, line in now.failures.items() if key not in before]
    resolved = [line for key, line in before.items() if key not in now.failures]
    headline = {
        "failing": f"{len(now.failures)} check(s) failing",
        "new_failures": f"{len(new)} new failure(s), {len(now.failures)} failing in all",
        "still_failing": f"{len(now.failures)} check(s) still failing",
        "recovered": f"healthy again, {len(resolved)} failure(s) resolved",
    }[kind]
    shown = list(now.failures.values()) if kind != "recovered" else resolved
    lines = [f"• {line}" for line in shown[:MAX_LINES]]
    if len(shown) > MAX_LINES:
        lines.append(f"… and {len(shown) - MAX_LINES} more")
    return {
        "text": "\n".join([f"onepin-etl check on {where}: {headline}", *lines]),
        "onepin": {"event": kind, "healthy": report.healthy, "where": where,
                   "as_of": as_of.isoformat(),
                   "failures": [f.as_dict() for f in report.findings],
                   "new": new, "resolved": resolved},
    }


def post(url: str, payload: dict[str, Any], *, timeout_s: float = NOTIFY_TIMEOUT_S
         ) -> str | None:
    """POST ``payload`` with retries; None when the webhook took it, else what went wrong,
    without the URL (a requests error's text names it)."""
    session = Client(request_timeout=timeout_s / NOTIFY_ATTEMPTS, raise_for_status=False,
                     request_max_attempts=NOTIFY_ATTEMPTS, request_backoff_factor=BACKOFF_S,
                     request_max_retry_delay=MAX_WAIT_S).session
    try:
        with _unlogged():
            response = session.post(url, json=payload)
    except RequestException as exc:
        return f"{type(exc).__name__} after {NOTIFY_ATTEMPTS} attempts"
    if response.status_code >= 300:
        return f"the webhook answered HTTP {response.status_code}"
    return None


@contextmanager
def _unlogged() -> Iterator[None]:
    """urllib3 logs each request's path at DEBUG (``--debug``): a webhook's path is its secret."""
    logger = logging.getLogger("urllib3")
    level = logger.level
    logger.setLevel(max(level, logging.INFO))
    try:
        yield
    finally:
        logger.setLevel(level)


def send_if_changed(url: str, target: Target, report: HealthReport, *, as_of: datetime,
                    always: bool = False, timeout_s: float = NOTIFY_TIMEOUT_S) -> str | None:
    """Post when the verdict calls for it (:func:`event`) and remember the verdict once the
    webhook took the message. Returns a line for the log: what was sent, or why it was not."""
    path = state_path(target)
    previous = read_state(path)
    now = Verdict.of(report)
    kind = event(previous, now, always=always)
    if kind is not None:
        where = f"{target.location} (dataset {target.dataset})"
        failed = post(url, message(kind, previous, report, where=where, as_of=as_of),
                      timeout_s=timeout_s)
        if failed:
            return f"could not notify: {failed}; the next check tries again"
    write_state(path, now)
    return None if kind is None else f"notified: {kind.replace('_', ' ')}"
