"""``onepin-etl doctor`` on shared destinations, against real servers: each answers through
dlt's own client, and one that cannot be reached is exit 5 without its password."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.servers import PG_PASSWORD, S3_SECRET
from tests.helpers import Cli
from tests.shared.conftest import Shared
from tests.shared.test_shared_destinations import target

pytestmark = pytest.mark.shared


@pytest.mark.parametrize("kind", ["postgres", "ducklake", "parquet_s3"])
def test_a_shared_destination_answers(kind: str, cli: Cli, shared: Shared,
                                      workdir: Path) -> None:
    args = [*target(kind, shared)[0], "--pipelines-dir", str(workdir / "pipelines")]
    before = json.loads(cli("doctor", "--format", "json", *args).output)["destination"]
    assert (before["reachable"], before["writable"], before["last_load"]) == (True, None, None)
    assert before["detail"] == ("dataset onepin does not exist yet; the first load creates it; "
                                "write permission is checked by the first load")
    cli("load", *args[:-2])  # the CLI helper gives load the same --pipelines-dir
    result = cli("doctor", "--format", "json", *args)
    after = json.loads(result.output)["destination"]
    assert after["detail"].startswith("dataset onepin exists; ")
    assert after["last_load"] is not None
    assert PG_PASSWORD not in result.output and S3_SECRET not in result.output


def test_a_wrong_password_is_exit_5_without_it(cli: Cli, shared: Shared, workdir: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DESTINATION__POSTGRES__CREDENTIALS",
                       shared.postgres.url(shared.database, "not-the-password"))
    result = cli("doctor", "--format", "json", "--destination", "postgres", "--pipelines-dir",
                 str(workdir / "pipelines"), expect=5)
    (problem,) = json.loads(result.output)["problems"]
    assert problem["area"] == "destination"
    assert problem["message"].startswith("cannot reach postgres://")
    assert 'password authentication failed for user "postgres"' in problem["message"]
    assert "not-the-password" not in result.output and PG_PASSWORD not in result.output
