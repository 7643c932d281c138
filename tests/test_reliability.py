"""Faults, locks and error bodies: loads finish correctly or stop cleanly and finish next time."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import requests

from onepin_sim import Simulator
from onepin_source.client import OnepinClient, _api_error
from onepin_source.config import resolve_credentials
from onepin_source.errors import OnepinApiError, OnepinAuthError, OnepinNotFoundError
from tests.helpers import api_snapshot, assert_matches_api, duckdb_held


def test_faulty_api_gives_the_same_tables(sim: Simulator, cli: Any, workdir: Path) -> None:
    """10% 5xx (half HTML), 5% 429 with Retry-After, 2% dropped and 2% truncated bodies."""
    sim.set_faults(share_5xx=0.10, share_429=0.05, retry_after_s=1, share_dropped=0.02,
                   share_malformed=0.02, latency_ms=2, jitter_ms=5, seed=4)
    cli("load")
    sim.advance(6 * 3600)
    cli("load")
    faults = sim.stats.snapshot()["faults"]
    # which requests meet a fault depends on the order threads send them: at least one of each
    assert faults.get("5xx", 0) > 0 and faults.get("429", 0) > 0
    sim.set_faults(share_5xx=0.0, share_429=0.0, share_dropped=0.0, share_malformed=0.0)
    assert_matches_api(workdir / "onepin_etl.duckdb", api_snapshot(sim))


def test_api_down_exits_4_and_advances_no_state(sim: Simulator, cli: Any, workdir: Path) -> None:
    cli("load")
    sim.advance(6 * 3600)
    sim.set_faults(share_5xx=1.0)
    failed = cli("load", expect=4)
    assert failed.output.startswith("error: Onepin API 5")
    sim.set_faults(share_5xx=0.0)
    sim.stats.reset()
    cli("load")
    # The failed load committed nothing: this one fetched the six hours of new runs itself.
    assert sim.stats.snapshot()["requests"]["steps"] >= 6 * 3
    assert_matches_api(workdir / "onepin_etl.duckdb", api_snapshot(sim))


def test_locked_duckdb_exits_5_then_next_run_loads_pending_and_new(
        sim: Simulator, cli: Any, workdir: Path) -> None:
    db = workdir / "onepin_etl.duckdb"
    cli("load")
    sim.advance(3 * 3600)
    with duckdb_held(db):
        locked = cli("load", expect=5)
    assert "could not write to the destination" in locked.output
    assert "close it and run the load again" in locked.output
    sim.advance(3 * 3600)  # more new data arrives before the next scheduled run
    cli("load")
    assert_matches_api(db, api_snapshot(sim))


def test_duckdb_file_named_like_the_dataset_is_refused(sim: Simulator, cli: Any) -> None:
    result = cli("load", "--duckdb-path", "onepin.duckdb", expect=2)
    assert "has the same name as the dataset 'onepin'" in result.output
    assert sim.stats.snapshot()["total"] == 0


def test_missing_key_exits_2(sim: Simulator, cli: Any) -> None:
    result = cli("load", key=" ", expect=2)
    assert "no Onepin API key" in result.output


def test_workspace_mismatch_exits_3(sim: Simulator, cli: Any) -> None:
    result = cli("load", ONEPIN_WORKSPACE_ID="00000000-0000-4000-8000-000000000000", expect=3)
    assert "403 FORBIDDEN" in result.output and "ONEPIN_WORKSPACE_ID" in result.output


def _response(status: int, body: bytes, content_type: str = "application/json"
              ) -> requests.Response:
    response = requests.Response()
    response.status_code, response._content = status, body
    response.headers["Content-Type"] = content_type
    response.reason = "Reason"
    return response


@pytest.mark.parametrize(("status", "body", "expected"), [
    pytest.param(422, b'{"error": {"code": "VALIDATION_ERROR", "message": "Invalid request", '
                      b'"details": [{"field": "limit", "message": "too big"}]}, '
                      b'"meta": {"request_id": "req_1"}}',
                 "Onepin API 422 VALIDATION_ERROR on /x: Invalid request (limit: too big) "
                 "(request id req_1)", id="envelope"),
    pytest.param(422, b'{"detail": [{"loc": ["query", "limit"], "msg": "too big", "type": "x"}]}',
                 "Onepin API 422 VALIDATION_ERROR on /x: query.limit: too big (request id unknown)",
                 id="fastapi"),
    pytest.param(400, b'{"code": "BAD_REQUEST", "message": "flat"}',
                 "Onepin API 400 BAD_REQUEST on /x: flat (request id unknown)", id="flat"),
    pytest.param(502, b"<html>bad gateway</html>", "Onepin API 502 on /x: Reason "
                 "(request id unknown)", id="html"),
])
def test_error_bodies_of_either_shape(status: int, body: bytes, expected: str) -> None:
    assert str(_api_error(_response(status, body), "/x")) == expected


def test_error_classes() -> None:
    assert isinstance(_api_error(_response(401, b"{}"), "/x"), OnepinAuthError)
    assert isinstance(_api_error(_response(404, b"{}"), "/x"), OnepinNotFoundError)


FAULT_MATRIX: dict[str, dict[str, Any]] = {
    "5xx-30%-half-html": {"share_5xx": 0.30, "html_share_of_5xx": 0.5},
    "429-20%": {"share_429": 0.20, "retry_after_s": 1},
    "dropped-10%": {"share_dropped": 0.10},
    "truncated-json-10%": {"share_malformed": 0.10},
    "quota-20-per-2s": {"rate_limit_per_min": 20, "rate_window_s": 2},
    "everything-at-once": {"share_5xx": 0.10, "share_429": 0.05, "share_dropped": 0.03,
                           "share_malformed": 0.03, "latency_ms": 3, "jitter_ms": 10},
}


@pytest.mark.slow
@pytest.mark.parametrize("concurrency", ["1", "16"])
@pytest.mark.parametrize("row_format", ["arrow", "dicts"])
@pytest.mark.parametrize("fault", list(FAULT_MATRIX))
def test_fault_matrix(sim: Simulator, cli: Any, workdir: Path, fault: str, row_format: str,
                      concurrency: str) -> None:
    """Every fault alone and all together, both row paths, serial and wide: tables equal the
    fault-free API after a first and an incremental load."""
    sim.set_faults(seed=7, **FAULT_MATRIX[fault])
    flags = ("--row-format", row_format, "--concurrency", concurrency)
    cli("load", *flags)
    sim.advance(6 * 3600)
    cli("load", *flags)
    assert sum(sim.stats.snapshot()["faults"].values()) > 0, "faults were injected"
    sim.set_faults(share_5xx=0, share_429=0, share_dropped=0, share_malformed=0,
                   rate_limit_per_min=0, latency_ms=0, jitter_ms=0)
    assert_matches_api(workdir / "onepin_etl.duckdb", api_snapshot(sim))


@pytest.mark.parametrize(("body", "expected"), [
    pytest.param(b'{"items": [], "meta": {"request_id": "req_9"}}',
                 "unexpected response from /workflows: no 'data' envelope (request id req_9)",
                 id="envelope"),
    pytest.param(b'{"data": [{"id": "trunc', "malformed JSON from /workflows (HTTP 200) after "
                 "retries; try again later", id="truncated"),
])
def test_unexpected_bodies_name_the_endpoint_and_request_id(body: bytes, expected: str) -> None:
    client = OnepinClient(resolve_credentials("op_test_key", "http://127.0.0.1:9", None))
    with pytest.raises(OnepinApiError) as raised:
        client._data(_response(200, body), "/workflows")
    assert str(raised.value) == expected


def test_unknown_destination_is_a_usage_error(sim: Simulator, cli: Any) -> None:
    result = cli("load", "--destination", "nosuch", expect=2)
    assert result.output.strip() == ("error: unknown destination 'nosuch': use one of duckdb, "
                                     "parquet, ducklake, postgres (duckdb is the default), or "
                                     "the name of another dlt destination")
    assert sim.stats.snapshot()["total"] == 0


def test_missing_duckdb_folder_is_said_at_once(sim: Simulator, cli: Any, workdir: Path) -> None:
    result = cli("load", "--duckdb-path", "missing/dir/x.duckdb", expect=2)
    assert result.output.strip() == (f"error: folder '{workdir / 'missing' / 'dir'}' of the "
                                     "DuckDB file does not exist; create it or choose another "
                                     "path")
    assert sim.stats.snapshot()["total"] == 0


def test_unreachable_api_names_the_base_url(cli: Any) -> None:
    result = cli("load", ONEPIN_BASE_URL="http://127.0.0.1:9", expect=4)
    assert result.output.strip().startswith("error: cannot reach the Onepin API at "
                                            "http://127.0.0.1:9 (/workflows): ConnectionError")
