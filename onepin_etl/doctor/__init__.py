"""``onepin-etl doctor``: one read-only pass over the configuration, the API, the API's contract
and the destination, for a new user's first command and for support tickets.

The report (:meth:`Report.as_dict`, ``--format json``) has a stable schema, documented in
``docs/doctor.md``: fields are only ever added, and ``schema`` changes if one changes meaning.
Nothing secret is in it: the key shows as its last 4 characters at most, destinations by their
non-secret location.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from onepin_etl.destinations import Target
from onepin_etl.doctor import configuration
from onepin_etl.doctor.api import ApiCheck, Budget, Probe
from onepin_etl.doctor.contract import Finding, Sample, findings, iteration_base
from onepin_etl.doctor.destination import DestinationCheck
from onepin_etl.doctor.destination import check as check_destination
from onepin_etl.errors import exit_code
from onepin_etl.settings import DOCTOR_MAX_REQUESTS
from onepin_source.errors import ConfigError, OnepinError

SCHEMA = 1
AREAS = {2: "configuration", 3: "authentication", 4: "api", 5: "destination"}


@dataclass(frozen=True)
class Problem:
    """Something that would stop a load, with the CLI's exit code for it."""

    code: int
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {"area": AREAS[self.code], "exit_code": self.code, "message": self.message}


@dataclass
class Report:
    """Everything the doctor found."""

    target: Target
    budget: Budget
    settings: configuration.Found | None = None
    api: ApiCheck = field(default_factory=ApiCheck)
    sample: Sample | None = None
    contract: list[Finding] = field(default_factory=list)
    destination: DestinationCheck = field(default_factory=DestinationCheck)
    problems: list[Problem] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        """0, or the first problem a load would meet: configuration, authentication, API,
        destination (2, 3, 4, 5)."""
        return min((p.code for p in self.problems), default=0)

    def as_dict(self) -> dict[str, Any]:
        sample = self.sample
        return {
            "schema": SCHEMA, "exit_code": self.exit_code,
            "problems": [p.as_dict() for p in self.problems],
            "requests": {"made": self.budget.made, "max": self.budget.most,
                         "stopped_at": self.budget.stopped_at},
            "configuration": self._configuration(),
            "api": self.api.as_dict(),
            "contract": None if sample is None else {
                "workflows": len(sample.workflows), "runs": len(sample.runs),
                "steps": len(sample.steps),
                "findings": [f.as_dict() for f in self.contract],
                "iteration_base": iteration_base(sample.steps),
                "steps_paginated": sample.steps_paginated,
                "runs_summary": self.api.runs_summary},
            "destination": {"kind": self.target.destination,
                            "location": self._location(), "dataset": self.target.dataset,
                            "pipeline": self.target.name,
                            "pipelines_dir": str(self.target.working_dir),
                            **self.destination.as_dict()},
        }

    def _configuration(self) -> dict[str, Any]:
        found = self.settings
        if found is None:
            return {"api_key": None, "base_url": None, "workspace_id": None}
        return {"api_key": {"last4": configuration.last4(found.api_key),
                            "source": found.sources["api_key"]},
                "base_url": {"value": found.base_url, "source": found.sources["base_url"]},
                "workspace_id": {"value": found.workspace_id,
                                 "source": found.sources["workspace_id"]}}

    def _location(self) -> str | None:
        try:
            return self.target.location
        except OnepinError:
            return None


def run(target: Target, *, max_requests: int = DOCTOR_MAX_REQUESTS) -> Report:
    """The whole pass. Never raises for what it is there to find: each problem is reported."""
    report = Report(target, Budget(max_requests))
    try:
        report.settings = configuration.find()
        credentials = report.settings.credentials()
    except ConfigError as exc:
        report.problems.append(Problem(2, str(exc)))
    else:
        report.api, report.sample = Probe(credentials, report.budget).run()
        if report.api.problem is not None:
            report.problems.append(Problem(exit_code(report.api.problem),
                                           str(report.api.problem)))
    if report.sample is not None:
        report.contract = findings(report.sample)
        report.problems += [Problem(4, f"{f.detail}: {f.connector}") for f in report.contract
                            if f.loses_data]
    try:
        target.check()
    except ConfigError as exc:
        report.problems.append(Problem(2, str(exc)))
    else:
        report.destination = check_destination(target)
        if report.destination.problem:
            report.problems.append(Problem(5, report.destination.problem))
    return report
