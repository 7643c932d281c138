"""The doctor's report as text: one section per area, one line per fact, the verdict last."""

from __future__ import annotations

from typing import Any

from onepin_etl.doctor import Report

WIDTH = 16  # the labels' column


def lines(report: Report) -> list[str]:
    data = report.as_dict()
    requests = data["requests"]
    out = ["Configuration", *_configuration(data["configuration"], data["destination"]),
           "API", *_api(data["api"]), *_contract(data["contract"]),
           "Destination", *_destination(data["destination"]),
           f"Requests: {requests['made']} of at most {requests['max']}"
           + (f"; the budget ran out at {requests['stopped_at']}, the rest is not checked "
              "(raise --max-requests)" if requests["stopped_at"] else "")]
    problems = data["problems"]
    if not problems:
        return [*out, "All well: a load can start."]
    return [*out, *(f"PROBLEM ({p['area']}): {p['message']}" for p in problems),
            f"exit {data['exit_code']}"]


def _row(label: str, value: Any) -> str:
    return f"  {label:<{WIDTH}}{value}"


def _configuration(config: dict[str, Any], destination: dict[str, Any]) -> list[str]:
    key, url, workspace = config["api_key"], config["base_url"], config["workspace_id"]
    rows = []
    if key is not None:
        rows += [_row("API key", "not set" if key["source"] == "not set" else
                      f"{key['last4'] or 'set'} (from {key['source']})"),
                 _row("base URL", f"{url['value']} (from {url['source']})"),
                 _row("workspace", f"{workspace['value']} (from {workspace['source']})"
                      if workspace["value"] else "not set: the key's own workspace")]
    return [*rows, _row("destination", f"{destination['kind']} {destination['location']} "
                                       f"(dataset {destination['dataset']}, pipeline "
                                       f"{destination['pipeline']})")]


def _api(api: dict[str, Any]) -> list[str]:
    who = api["whoami"]
    if api["reachable"] is None:
        return [_row("reachable", "not checked")]
    rows = [_row("reachable", "yes" if api["reachable"] else "no"), _row("TLS", api["tls"])]
    if api["latency_ms"] is not None:
        rows.append(_row("latency", f"{api['latency_ms']} ms (median of whoami calls)"))
    if who is not None:
        rows.append(_row("whoami", f"{who['auth_kind']}, workspace {who['workspace_id']}, key "
                                   f"{who['api_key_id']}, scopes {', '.join(who['scopes'] or [])}"))
    agrees = {True: "agrees with the key's workspace", False: "does NOT match the key's",
              None: "not sent"}[api["workspace_id_agrees"]]
    rows.append(_row("X-Workspace-Id", agrees))
    headers = api["rate_limit_headers"]
    rows.append(_row("rate limits", ", ".join(f"{k}: {v}" for k, v in headers.items())
                     or "no rate-limit headers seen"))
    if api["workflows_visible"] is not None:
        rows.append(_row("workflows", f"{api['workflows_visible']} visible"))
    return rows


def _contract(contract: dict[str, Any] | None) -> list[str]:
    if contract is None:
        return []
    base = contract["iteration_base"]
    rows = [f"Contract (docs/api.md), sampled: {contract['workflows']} workflows, "
            f"{contract['runs']} newest runs, {contract['steps']} steps",
            _row("iteration", "not seen" if base is None else f"{base}-based"),
            _row("steps paging", {True: "PAGINATED", False: "none (as documented)",
                                  None: "not checked"}[contract["steps_paginated"]]),
            _row("runs/summary", contract["runs_summary"] or "not checked")]
    findings = contract["findings"]
    rows += [f"  ! {f['detail']} ({f['count']}×): {f['connector']}" for f in findings]
    return rows if findings else [*rows, _row("shapes", "as documented")]


def _destination(destination: dict[str, Any]) -> list[str]:
    state = {True: "yes", False: "NO", None: "not checked"}
    holder = destination["lock"]
    last = destination["last_load"]
    return [_row("reachable", state[destination["reachable"]]),
            _row("writable", state[destination["writable"]]),
            *([_row("detail", destination["detail"])] if destination["detail"] else []),
            _row("lock", "free" if holder is None else
                 f"held by process {holder['pid']} on {holder['host']} since {holder['since']}"),
            _row("pending", ", ".join(destination["pending_packages"]) or "none"),
            _row("last load", "none" if last is None else f"{last['at']} (load {last['load_id']})")]
