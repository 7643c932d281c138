"""``onepin-etl doctor`` against the simulator: exact findings, exit codes, and no key shown."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import dlt
import duckdb
import pytest
from click.testing import CliRunner

from onepin_etl import lock
from onepin_etl.cli import main
from onepin_etl.destinations import duckdb_destination
from onepin_etl.doctor.contract import Sample, findings, iteration_base
from onepin_sim import Simulator, odd
from tests.helpers import api_get, duckdb_held, table

ODD_SHARE = 0.5
# What each of the simulator's odd shapes looks like to the doctor (odd.BENDS); the others
# (a 1 MB result, NUL characters, other offsets) are within the documented shape.
ODD_FINDINGS = {
    "unknown_status": ["step: unknown status 'queued_for_review'"],
    "wrong_types": ["step: iteration is str", "step: has_result is str", "step: locales is str"],
    "missing_fields": ["step: missing node_type"],
    "list_result": ["step: result is list"],
    "string_result": ["step: result is str"],
}


def doctor(cli: Any, workdir: Path, *args: str, expect: int = 0, **env: str) -> dict[str, Any]:
    result = cli("doctor", "--format", "json", "--pipelines-dir", str(workdir / "pipelines"),
                 *args, expect=expect, **env)
    assert "op_live_" not in result.output  # no key, whole or in part beyond its last 4
    report: dict[str, Any] = json.loads(result.output)
    return report


def sampled_steps(sim: Simulator) -> list[dict[str, Any]]:
    """The doctor's sample read plainly: the newest run of the 3 workflows run last."""
    workflows = api_get(sim, "/workflows", limit=100).json()["data"]
    recent = sorted(workflows, key=lambda w: w["last_run_at"], reverse=True)[:3]
    steps = []
    for workflow in recent:
        run = api_get(sim, f"/workflows/{workflow['id']}/runs", limit=1).json()["data"][0]
        steps += api_get(sim, f"/workflows/{workflow['id']}/runs/{run['id']}/steps").json()["data"]
    return steps


def test_healthy(sim: Simulator, cli: Any, workdir: Path) -> None:
    report = doctor(cli, workdir)
    assert report["exit_code"] == 0 and report["problems"] == []
    assert report["requests"] == {"made": 11, "max": 25, "stopped_at": None}
    assert sim.stats.snapshot()["requests"] == {"whoami": 3, "workflows": 1, "runs": 3,
                                                "steps": 3, "runs_summary": 1}
    whoami = api_get(sim, "/auth/whoami").json()["data"]
    assert report["configuration"] == {
        "api_key": {"last4": f"…{sim.api_key[-4:]}", "source": "ONEPIN_API_KEY"},
        "base_url": {"value": sim.base_url, "source": "ONEPIN_BASE_URL"},
        "workspace_id": {"value": None, "source": "not set"}}
    api = report["api"]
    assert api.pop("latency_ms") > 0
    assert api == {"reachable": True, "tls": "none: plain http, allowed to loopback addresses only",
                   "whoami": whoami, "workspace_id_agrees": None, "rate_limit_headers": {},
                   "workflows_visible": 3}
    assert report["contract"] == {"workflows": 3, "runs": 3, "steps": len(sampled_steps(sim)),
                                  "findings": [], "iteration_base": 1, "steps_paginated": False,
                                  "runs_summary": "answers for this key"}
    assert report["destination"] == {
        "kind": "duckdb", "location": "onepin_etl.duckdb", "dataset": "onepin",
        "pipeline": "onepin", "pipelines_dir": str(workdir / "pipelines"), "reachable": True,
        "writable": True, "detail": "onepin_etl.duckdb does not exist yet; the first load "
                                    "creates it",
        "lock": None, "pending_packages": [], "last_load": None}
    assert not (workdir / "onepin_etl.duckdb").exists()  # doctor created nothing

    cli("load")
    (load_id,), = table(workdir / "onepin_etl.duckdb", "select load_id from onepin._dlt_loads")
    after = doctor(cli, workdir)["destination"]
    assert after["detail"] == "onepin_etl.duckdb opens for writing"
    assert after["last_load"]["load_id"] == load_id
    text = cli("doctor", "--pipelines-dir", str(workdir / "pipelines")).output
    assert text.splitlines()[-1] == "All well: a load can start."
    assert f"  API key         …{sim.api_key[-4:]} (from ONEPIN_API_KEY)" in text
    assert sim.api_key not in text


def test_request_budget(sim: Simulator, cli: Any, workdir: Path) -> None:
    report = doctor(cli, workdir, "--max-requests", "5")
    assert report["requests"] == {"made": 5, "max": 5, "stopped_at": "runs"}
    assert sim.stats.snapshot()["total"] == 5
    assert (report["contract"]["runs"], report["contract"]["steps"]) == (1, 0)
    assert report["contract"]["steps_paginated"] is None
    assert report["contract"]["runs_summary"] is None


def test_wrong_key_exits_3(sim: Simulator, cli: Any, workdir: Path) -> None:
    wrong = "op_live_" + "Wr0ngKey" * 4
    result = cli("doctor", "--format", "json", "--pipelines-dir", str(workdir / "pipelines"),
                 key=wrong, expect=3)
    report = json.loads(result.output)
    assert wrong not in result.output and sim.api_key not in result.output
    assert report["configuration"]["api_key"] == {"last4": "…gKey", "source": "ONEPIN_API_KEY"}
    (problem,) = report["problems"]
    assert problem["area"] == "authentication" and problem["exit_code"] == 3
    assert problem["message"].startswith("Onepin API 401 INVALID_API_KEY on /auth/whoami: ")
    assert report["api"]["reachable"] is True and report["api"]["whoami"] is None
    assert report["requests"]["made"] == 1 and report["contract"] is None


def test_wrong_workspace_names_the_keys_own(sim: Simulator, cli: Any, workdir: Path) -> None:
    wrong = "5e0f9b6a-0000-4000-8000-000000000000"
    report = doctor(cli, workdir, expect=3, ONEPIN_WORKSPACE_ID=wrong)
    assert report["configuration"]["workspace_id"] == {"value": wrong,
                                                       "source": "ONEPIN_WORKSPACE_ID"}
    assert report["api"]["workspace_id_agrees"] is False
    assert report["problems"] == [{
        "area": "authentication", "exit_code": 3,
        "message": f"X-Workspace-Id {wrong} does not match the key's workspace "
                   f"{sim.world.workspace_id}; unset ONEPIN_WORKSPACE_ID (or [sources.onepin] "
                   "workspace_id), or set it to the key's workspace"}]
    assert report["requests"]["made"] == 2  # the failed whoami, and one without the header


def test_unreachable_exits_4(cli: Any, workdir: Path) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{probe.getsockname()[1]}"
    report = doctor(cli, workdir, expect=4, ONEPIN_BASE_URL=url)
    (problem,) = report["problems"]
    assert problem["area"] == "api"
    assert problem["message"].startswith(f"cannot reach the Onepin API at {url} (/auth/whoami): "
                                         "ConnectionError")
    assert report["api"]["reachable"] is False and report["requests"]["made"] == 1
    assert report["destination"]["writable"] is True  # checked all the same


def test_odd_steps_are_listed_with_what_the_connector_does(
        sim: Simulator, cli: Any, workdir: Path) -> None:
    sim.set_faults(odd_steps=ODD_SHARE)
    expected: Counter[str] = Counter()
    for step in sampled_steps(sim):
        expected.update(ODD_FINDINGS.get(odd.bend_kind(step["id"], ODD_SHARE) or "", []))
    assert expected  # the sample holds odd steps
    report = doctor(cli, workdir)  # tolerated shapes: all well
    findings = report["contract"]["findings"]
    assert {f["detail"]: f["count"] for f in findings} == dict(expected)
    copes = {f["check"]: f["connector"] for f in findings}
    assert copes["undocumented_status"].startswith("loaded as sent; metrics count completed, "
                                                   "failed and cancelled only")
    assert copes["wrong_type"].startswith("loaded as sent; a value that does not fit its column "
                                          "goes to the column's __v_<type> variant")


def test_a_duckdb_file_held_by_another_program_exits_5(
        sim: Simulator, cli: Any, workdir: Path) -> None:
    db = workdir / "onepin_etl.duckdb"
    duckdb.connect(str(db)).close()
    with duckdb_held(db):
        report = doctor(cli, workdir, expect=5)
    (problem,) = report["problems"]
    assert problem["area"] == "destination"
    assert problem["message"].startswith("cannot open onepin_etl.duckdb for writing: ")
    assert problem["message"].endswith("if another program (a notebook, the duckdb CLI) holds "
                                       "it, close it")
    assert (report["destination"]["reachable"], report["destination"]["writable"]) == \
        (True, False)


def test_rate_limit_headers_are_listed(sim: Simulator, cli: Any, workdir: Path) -> None:
    # A sliding hour: the window cannot roll over during the test, so the counts are exact.
    sim.set_faults(rate_limit_per_min=1000, rate_window_s=3600, rate_sliding=True,
                   rate_limit_headers=True)
    before = time.time()
    report = doctor(cli, workdir)
    headers = report["api"]["rate_limit_headers"]  # as the last answer (the 11th) sent them
    reset = int(headers.pop("X-RateLimit-Reset"))
    assert before < reset <= time.time() + 3601
    assert re.fullmatch(r'"default";r=989;t=(3599|3600)', headers.pop("RateLimit"))
    assert headers == {"X-RateLimit-Limit": "1000", "X-RateLimit-Remaining": "989",
                       "RateLimit-Policy": '"default";q=1000;w=3600'}
    text = cli("doctor", "--pipelines-dir", str(workdir / "pipelines")).output
    assert "  rate limits     X-RateLimit-Limit: 1000, X-RateLimit-Remaining: 978, " in text


def test_lock_holder_and_pending_packages_are_shown(
        sim: Simulator, cli: Any, workdir: Path) -> None:
    pipelines = workdir / "pipelines"
    pipeline = dlt.pipeline("onepin", pipelines_dir=str(pipelines),
                            destination=duckdb_destination(workdir / "onepin_etl.duckdb"))
    pipeline.extract([{"a": 1}], table_name="left_behind")  # a package never loaded
    (pending,) = pipeline.list_extracted_load_packages()
    paths = lock.lock_paths(pipelines, "onepin", workdir / "onepin_etl.duckdb")
    with lock.held(paths, "onepin"):
        report = doctor(cli, workdir)  # a load running and a package pending stop nothing
    destination = report["destination"]
    assert destination["pending_packages"] == [pending]
    holder = destination["lock"]
    assert (holder["pipeline"], holder["pid"], holder["host"]) == \
        ("onepin", os.getpid(), socket.gethostname())
    assert report["exit_code"] == 0


def test_configuration_sources_are_named(sim: Simulator, workdir: Path) -> None:
    credentials = workdir / "home" / ".onepin" / "credentials"
    credentials.parent.mkdir()
    credentials.write_text(f'[default]\nbase_url = "{sim.base_url}"\n')
    credentials.chmod(0o600)
    env = {"SOURCES__ONEPIN__API_KEY": sim.api_key, "ONEPIN_WORKSPACE_ID": sim.world.workspace_id,
           "ONEPIN_API_KEY": None, "ONEPIN_BASE_URL": None}
    result = CliRunner().invoke(main, ["doctor", "--format", "json", "--pipelines-dir",
                                       str(workdir / "pipelines")], env=env)
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["configuration"] == {
        "api_key": {"last4": f"…{sim.api_key[-4:]}", "source": "SOURCES__ONEPIN__API_KEY"},
        "base_url": {"value": sim.base_url, "source": f"{credentials} [default] base_url"},
        "workspace_id": {"value": sim.world.workspace_id, "source": "ONEPIN_WORKSPACE_ID"}}
    assert report["api"]["workspace_id_agrees"] is True
    assert sim.api_key not in result.output


def test_a_file_that_is_not_a_duckdb_database_exits_5(cli: Any, workdir: Path) -> None:
    (workdir / "onepin_etl.duckdb").write_text("not a database\n" * 500)
    report = doctor(cli, workdir, expect=5)
    (problem,) = report["problems"]
    assert problem["message"].startswith("cannot open onepin_etl.duckdb for writing: ")
    assert report["destination"]["writable"] is False


def test_a_failed_tls_handshake_exits_4(sim: Simulator, cli: Any, workdir: Path) -> None:
    """https to a server that speaks plain http: the handshake fails as a bad certificate
    would, before any answer."""
    url = sim.base_url.replace("http://", "https://")
    report = doctor(cli, workdir, expect=4, ONEPIN_BASE_URL=url)
    assert report["api"]["tls"] == "failed: certificate or handshake refused"
    assert report["api"]["reachable"] is False
    assert report["problems"][0]["message"].startswith(
        f"cannot reach the Onepin API at {url} (/auth/whoami): SSLError")


def test_contract_findings_of_a_sample() -> None:
    """The checks the simulator cannot provoke: fields the docs do not name, a run without a
    required field, 0-based iterations, a paginated steps answer (the one that loses data)."""
    step = {"id": "s1", "node_id": "n1", "node_type": "t", "status": "completed",
            "iteration": 0, "trace_id": "x"}
    sample = Sample(workflows=[{"id": "w1", "name": "W", "folder": "f"}],
                    runs=[{"id": "r1", "status": "completed", "created_at": "2026-01-01Z"}],
                    steps=[step, {**step, "id": "s2", "iteration": 1}], steps_paginated=True)
    found = [(f.check, f.detail, f.count, f.loses_data) for f in findings(sample)]
    assert found == [
        ("unknown_field", "step field 'trace_id' is not documented", 2, False),
        ("iteration_base", "step iteration starts at 0", 1, False),
        ("missing_field", "run without run_number", 1, False),
        ("steps_paginated", "the steps endpoint answers with pagination", 1, True),
        ("unknown_field", "workflow field 'folder' is not documented", 1, False),
    ]
    assert iteration_base(sample.steps) == 0 and iteration_base([{"iteration": "#1"}]) is None


def test_a_spent_quota_is_reported_at_once(sim: Simulator, cli: Any, workdir: Path) -> None:
    """The doctor does not wait out a 429 (a load would): it says so and exits 4."""
    sim.set_faults(rate_limit_per_min=2, rate_window_s=3600, rate_sliding=True,
                   rate_limit_headers=True)
    report = doctor(cli, workdir, expect=4)
    assert sim.stats.snapshot()["statuses"] == {"200": 2, "429": 1}
    assert report["requests"]["made"] == 3
    (problem,) = report["problems"]
    assert problem["message"].startswith("Onepin API 429 RATE_LIMITED on /auth/whoami: Rate "
                                         "limit exceeded")
    headers = report["api"]["rate_limit_headers"]
    assert (headers["X-RateLimit-Limit"], headers["X-RateLimit-Remaining"]) == ("2", "0")
    assert 3590 <= int(headers["Retry-After"]) <= 3600


@contextmanager
def tls_in_front_of(sim: Simulator, folder: Path) -> Iterator[tuple[str, Path]]:
    """The simulator behind a TLS terminator on loopback, with a certificate made for
    127.0.0.1: its URL and the certificate to trust."""
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command to make a certificate")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    upstream = urlsplit(sim.base_url)

    def pipe(source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                sink.sendall(data)
        for end in (source, sink):
            with contextlib.suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)

    def serve(listener: socket.socket) -> None:
        while True:
            try:
                client = context.wrap_socket(listener.accept()[0], server_side=True)
            except ssl.SSLError:
                continue
            except OSError:  # the listener closed: the test is over
                return
            server = socket.create_connection((upstream.hostname, upstream.port))
            for ends in ((client, server), (server, client)):
                threading.Thread(target=pipe, args=ends, daemon=True).start()

    with socket.create_server(("127.0.0.1", 0)) as listener:
        threading.Thread(target=serve, args=(listener,), daemon=True).start()
        yield f"https://127.0.0.1:{listener.getsockname()[1]}", cert


def test_tls_with_a_verified_certificate(sim: Simulator, cli: Any, workdir: Path) -> None:
    with tls_in_front_of(sim, workdir) as (url, cert):
        report = doctor(cli, workdir, ONEPIN_BASE_URL=url, REQUESTS_CA_BUNDLE=str(cert))
        untrusted = doctor(cli, workdir, expect=4, ONEPIN_BASE_URL=url)
    assert report["api"]["tls"] == "https, certificate verified"
    assert report["configuration"]["base_url"]["value"] == url
    assert untrusted["api"]["tls"] == "failed: certificate or handshake refused"
    assert untrusted["problems"][0]["message"].startswith(
        f"cannot reach the Onepin API at {url} (/auth/whoami): SSLError")
