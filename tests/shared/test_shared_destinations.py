"""Shared destinations end to end, against real servers: a DuckLake (catalog in PostgreSQL, data
in S3), PostgreSQL, and Parquet in S3. Loads give exact tables, the views give the DuckDB file's
numbers, shards loading at once give the single loader's tables, and bad configuration gives one
line, its exit code and nothing half loaded."""

from __future__ import annotations

import os
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import tomlkit

from bench.servers import PG_PASSWORD, S3_KEY_ID, S3_SECRET
from onepin_etl import Target, analysis
from onepin_etl.analysis_sql import VIEWS
from onepin_sim import FaultConfig, Simulator, WorldConfig
from tests.helpers import (
    NOTEBOOK_FIGURES,
    ROOT,
    SMALL,
    Cli,
    api_snapshot,
    assert_matches_api,
    execute_notebook,
    invoke_cli,
    start_load,
    table,
)
from tests.shared.conftest import Shared

pytestmark = pytest.mark.shared

DUCKDB: dict[str, Any] = {"duckdb_path": "onepin_etl.duckdb", "dataset": "onepin"}
VIEW_KEYS = {"step_durations": ["step_id"], "node_stats": ["workflow_id", "node_id"],
             "node_type_stats": ["node_type"], "workflow_summary": ["workflow_id"],
             "workflow_daily": ["workflow_id", "day"]}
SHARDED = WorldConfig(seed=5, workflows=9, runs=10, nodes=6)


def target(kind: str, shared: Shared, dataset: str = "onepin") -> tuple[list[str], dict[str, Any]]:
    """The load options and the reader's ``where`` of a destination under test."""
    if kind == "parquet_s3":
        return (["--destination", "parquet", "--parquet-dir", shared.parquet_url,
                 "--dataset", dataset], {"parquet_dir": shared.parquet_url, "dataset": dataset})
    return (["--destination", kind, "--dataset", dataset],
            {"destination": kind, "dataset": dataset})


def view(con: Any, name: str) -> pd.DataFrame:
    frame: pd.DataFrame = con.execute(f"select * from {name}").df()
    return frame.sort_values(VIEW_KEYS[name]).reset_index(drop=True)


def assert_same_views(where: dict[str, Any]) -> None:
    """Every view and every question of ``where`` equals the DuckDB file's."""
    with analysis.connect(**where) as con, analysis.connect(**DUCKDB) as reference:
        for name in VIEWS:
            pd.testing.assert_frame_equal(view(con, name), view(reference, name),
                                          check_dtype=False, check_exact=False, rtol=1e-12)
        for question in analysis.QUESTIONS:
            pd.testing.assert_frame_equal(analysis.ask(con, question, 100),
                                          analysis.ask(reference, question, 100),
                                          check_dtype=False)


@pytest.mark.parametrize("kind", ["ducklake", "postgres", "parquet_s3"])
def test_loads_are_exact_and_report_like_duckdb(kind: str, sim: Simulator, cli: Cli,
                                                shared: Shared, workdir: Path) -> None:
    args, where = target(kind, shared)
    for hours in (0, 3, 30):  # a first load, then incremental ones as runs arrive and finish
        sim.advance(hours * 3600)
        loaded = cli("load", *args).output
        cli("load")  # the DuckDB file, at the same instant: the reference
        assert "Loaded " in loaded and "Traceback" not in loaded
        assert_matches_api(where, api_snapshot(sim))
        assert_same_views(where)
    assert cli("report", *args).output == cli("report").output
    as_of = ["--as-of", "2026-01-07T00:00:00Z"]
    assert cli("check", *args, *as_of, "--format", "json").output == \
        cli("check", *as_of, "--format", "json").output
    status = cli("status", *args, "--pipelines-dir", str(workdir / "pipelines")).output
    assert "last completed load" in status and "3 in all" in status


def test_postgres_holds_the_views_with_duckdbs_numbers(sim: Simulator, cli: Cli,
                                                       shared: Shared) -> None:
    """The views inside PostgreSQL (sqlglot's translation of the one SQL) equal DuckDB's."""
    cli("load", "--destination", "postgres")
    cli("load")
    with shared.postgres.cursor(shared.database) as cur:
        for name, keys in VIEW_KEYS.items():
            cur.execute(f"select * from onepin.{name}")
            columns = [c.name for c in cur.description]
            rows = [[float(v) if isinstance(v, Decimal) else v for v in row]
                    for row in cur.fetchall()]
            native = pd.DataFrame(rows, columns=columns).sort_values(keys).reset_index(drop=True)
            with analysis.connect(**DUCKDB) as reference:
                expected = view(reference, name)
            assert list(native.columns) == list(expected.columns)
            for column in columns:
                ours, theirs = native[column], expected[column]
                if pd.api.types.is_datetime64_any_dtype(theirs) or column == "day":
                    ours, theirs = pd.to_datetime(ours, utc=True), pd.to_datetime(theirs, utc=True)
                pd.testing.assert_series_equal(ours, theirs, check_dtype=False,
                                               check_exact=False, rtol=1e-12, obj=column)


def test_the_lake_holds_the_views_for_analysts(sim: Simulator, cli: Cli, shared: Shared) -> None:
    """Attaching the lake (as an analyst on another machine would) finds the views there, with
    the DuckDB file's numbers."""
    cli("load", "--destination", "ducklake")
    cli("load")
    sql = ("select workflow_id, node_id, executions, completed, failed, p95_ms, top_error "
           "from onepin.node_stats order by workflow_id, node_id")
    with Target("ducklake").open() as (con, _):  # the lake's own views, no reader's
        in_lake = con.execute(sql).fetchall()
    assert len(in_lake) == SMALL.workflows * SMALL.nodes
    assert in_lake == table(DUCKDB["duckdb_path"], sql)


def run_shards(sim: Simulator, workdir: Path, args: list[str], count: int,
               crash: dict[int, str] | None = None) -> dict[int, int]:
    """Start ``count`` shard loaders at once; their exit codes."""
    crash = crash or {}
    processes = {k: start_load(sim, workdir, crash.get(k, "none"), *args, "--shard",
                               f"{k}/{count}") for k in range(1, count + 1)}
    codes = {}
    for k, process in processes.items():
        _, err = process.communicate(timeout=240)
        codes[k] = process.returncode
        if k not in crash:
            assert process.returncode == 0, f"shard {k}/{count} failed:\n{err}"
    return codes


def same_tables(a: dict[str, Any], b: dict[str, Any]) -> None:
    """Same columns (in any order: each shard adds the columns it meets first) and rows."""
    for name, key in (("workflows", "id"), ("runs", "id"), ("run_steps", "run_id, id")):
        columns = {w["dataset"]: sorted(c for (c,) in table(w, (
            "select column_name from information_schema.columns where table_name = "
            f"'{name}' and table_schema = '{w['dataset']}' and table_catalog = "
            "current_database()")) if c not in ("_dlt_load_id", "_dlt_id")) for w in (a, b)}
        assert columns[a["dataset"]] == columns[b["dataset"]], name
        sql = f"""select {', '.join(f'"{c}"' for c in columns[a['dataset']])}
                  from "{{dataset}}".{name} order by {key}"""
        assert table(a, sql.format(**a)) == table(b, sql.format(**b)), name


def test_the_notebook_runs_against_the_lake(sim: Simulator, cli: Cli, shared: Shared,
                                            workdir: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    cli("load", "--destination", "ducklake")
    sim.advance(3 * 3600)
    cli("load", "--destination", "ducklake")
    notebook = execute_notebook(workdir, monkeypatch, ONEPIN_DESTINATION="ducklake")
    loaded = notebook.cells[4].outputs[0]["data"]["text/plain"]
    assert "workflows" in loaded and "steps" in loaded
    assert sorted(p.name for p in (workdir / "figures").glob("*.png")) == NOTEBOOK_FIGURES


@pytest.mark.parametrize("kind", ["ducklake", "postgres"])
def test_concurrent_shards_load_the_single_loaders_tables(kind: str, workdir: Path,
                                                          shared: Shared) -> None:
    with Simulator(SHARDED, FaultConfig(latency_ms=5)) as sim:
        sharded_args, sharded = target(kind, shared)
        single_args, single = target(kind, shared, dataset="single")
        run_shards(sim, workdir, sharded_args, 3)
        invoke_cli(sim, workdir)("load", *single_args)
        same_tables(sharded, single)
        assert_matches_api(sharded, api_snapshot(sim))
        assert {r[0] for r in table(sharded, "select pipeline_name from "
                                             "onepin._dlt_pipeline_state")} == \
            {f"onepin_{kind}_shard{k}of3" for k in (1, 2, 3)}

        # Later: shard 2 is SIGKILLed mid-load while the others finish; its next run catches up.
        sim.advance(5 * 3600)
        codes = run_shards(sim, workdir, sharded_args, 3, crash={2: "load"})
        assert codes[2] == -9
        invoke_cli(sim, workdir)("load", *single_args)
        with pytest.raises(AssertionError):
            same_tables(sharded, single)  # shard 2's new data is missing, or half there
        invoke_cli(sim, workdir)("load", *sharded_args, "--shard", "2/3")
        same_tables(sharded, single)
        assert_matches_api(sharded, api_snapshot(sim))


@dataclass(frozen=True)
class Bad:
    """A bad configuration: the load's options, the variables changed (None: unset), the exit
    code and a piece of the one line expected."""

    args: list[str]
    env: dict[str, str | None]
    code: int
    message: str


BAD = {
    "postgres not configured": Bad(
        ["--destination", "postgres"], {"DESTINATION__POSTGRES__CREDENTIALS": None}, 2,
        "error: destination 'postgres' is not configured (missing credentials): set "
        "DESTINATION__POSTGRES__CREDENTIALS"),
    "postgres unreachable": Bad(
        ["--destination", "postgres"], {"DESTINATION__POSTGRES__CREDENTIALS":
                                        f"postgresql://postgres:{PG_PASSWORD}@127.0.0.1:9/onepin"},
        5, 'error: could not write to postgres: OperationalError: connection to server at '
           '"127.0.0.1", port 9 failed'),
    "postgres wrong password": Bad(
        ["--destination", "postgres"], {"DESTINATION__POSTGRES__CREDENTIALS": "wrong-password"},
        5, 'password authentication failed for user "postgres"'),
    "lake catalog database missing": Bad(
        ["--destination", "ducklake"], {"DESTINATION__DUCKLAKE__CREDENTIALS__CATALOG":
                                        "no_such_db"},
        5, 'database "no_such_db" does not exist'),
    # The lake's catalog records its data path on the first attach: the fix is the bucket.
    "lake bucket missing": Bad(
        ["--destination", "ducklake"], {"DESTINATION__DUCKLAKE__CREDENTIALS__STORAGE__BUCKET_URL":
                                        "missing-bucket"},
        5, "could not write to ducklake: HTTPException: HTTP Error: Unable to connect to URL "),
    "parquet bucket missing": Bad(
        ["--destination", "parquet", "--parquet-dir", "s3://no-such-bucket/parquet"], {}, 5,
        "could not write to s3://no-such-bucket/parquet: ClientError: "),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_configuration_is_one_line_and_loads_nothing_half(
        case: str, sim: Simulator, cli: Cli, shared: Shared,
        monkeypatch: pytest.MonkeyPatch) -> None:
    bad = BAD[case]
    args, env, code, message = bad.args, bad.env, bad.code, bad.message
    good = dict(os.environ)
    for name, value in env.items():
        if value is None:
            monkeypatch.delenv(name)
        elif value == "wrong-password":
            monkeypatch.setenv(name, shared.postgres.url(shared.database, "not-the-password"))
        elif value == "no_such_db":
            monkeypatch.setenv(name, shared.postgres.url("no_such_db"))
        elif value == "missing-bucket":
            monkeypatch.setenv(name, f"s3://missing-{shared.bucket}/lake")
        else:
            monkeypatch.setenv(name, value)
    output = cli("load", *args, expect=code).output
    assert message in output
    assert len(output.strip().splitlines()) == 1 and "Traceback" not in output
    assert PG_PASSWORD not in output and "not-the-password" not in output
    if code == 2:
        assert sim.stats.snapshot()["total"] == 0  # refused before any request
    # Once the configuration is right, the next load is exact: no state ran ahead of the data.
    for name, value in env.items():
        if value == "missing-bucket":
            shared.s3.create_bucket(f"missing-{shared.bucket}")
        else:
            monkeypatch.setenv(name, good[name])
    if "no-such-bucket" in " ".join(args):
        args = [a.replace("s3://no-such-bucket/parquet", shared.parquet_url) for a in args]
    cli("load", *args)
    where = target("parquet_s3" if "parquet" in args else args[1], shared)[1]
    assert_matches_api(where, api_snapshot(sim))


def test_no_secret_in_output_files_state_or_data(sim: Simulator, cli: Cli, shared: Shared,
                                                 workdir: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    outputs = []
    for kind in ("ducklake", "postgres", "parquet_s3"):
        args, _ = target(kind, shared)
        outputs += [cli("load", *args).output, cli("report", *args).output,
                    cli("status", *args, "--pipelines-dir", str(workdir / "pipelines")).output,
                    cli("sql", *args, "select 1").output]
    monkeypatch.setenv("DESTINATION__POSTGRES__CREDENTIALS",
                       shared.postgres.url("no_such_db"))
    outputs.append(cli("load", "--destination", "postgres", expect=5).output)
    secrets = [PG_PASSWORD, S3_SECRET]
    assert [s for s in secrets if any(s in o for o in outputs)] == []
    files = [p for p in workdir.rglob("*") if p.is_file()]
    assert len(files) > 30  # the scan saw the pipelines' folders: state, traces, packages
    assert [p for p in files if any(s.encode() in p.read_bytes() for s in secrets)] == []
    objects = shared.s3.keys(shared.bucket)
    assert len(objects) > 10
    assert [k for k in objects if any(s.encode() in shared.s3.read(shared.bucket, k)
                                      for s in secrets)] == []
    for database in (shared.database, shared.catalog):
        with shared.postgres.cursor(database) as cur:
            cur.execute("select table_schema, table_name from information_schema.tables "
                        "where table_schema not in ('pg_catalog', 'information_schema')")
            relations = cur.fetchall()
            assert relations
            for schema, name in relations:
                cur.execute(f'select t::text from "{schema}"."{name}" t')
                text = "\n".join(r[0] for r in cur.fetchall())
                assert not any(s in text for s in secrets), f"{schema}.{name}"


def test_the_example_secrets_file_configures_every_destination(
        sim: Simulator, workdir: Path, shared: Shared, monkeypatch: pytest.MonkeyPatch) -> None:
    """.dlt/example.secrets.toml, filled in with this test's key and servers and nothing else
    changed, configures the source and the three shared destinations (no variable set)."""
    example = tomlkit.parse((ROOT / ".dlt" / "example.secrets.toml").read_text())
    example["sources"]["onepin"]["api_key"] = sim.api_key
    destinations = example["destination"]
    storage = {**destinations["filesystem"]["credentials"], "aws_access_key_id": S3_KEY_ID,
               "aws_secret_access_key": S3_SECRET, "endpoint_url": shared.s3.endpoint,
               "region_name": "us-east-1"}
    assert set(storage) == set(destinations["ducklake"]["credentials"]["storage"]
                               ["credentials"]) | {"endpoint_url"}
    destinations["postgres"]["credentials"] = shared.postgres.url(shared.database)
    destinations["ducklake"]["credentials"]["catalog"] = shared.postgres.url(shared.catalog)
    destinations["ducklake"]["credentials"]["storage"]["bucket_url"] = f"s3://{shared.bucket}/lake"
    destinations["ducklake"]["credentials"]["storage"]["credentials"] = storage
    destinations["filesystem"]["credentials"] = storage
    (workdir / ".dlt").mkdir()
    (workdir / ".dlt" / "secrets.toml").write_text(tomlkit.dumps(example))
    for name in list(os.environ):
        if name.startswith("DESTINATION__"):
            monkeypatch.delenv(name)
    for kind in ("postgres", "ducklake", "parquet_s3"):
        process = start_load(sim, workdir, "none", *target(kind, shared)[0])
        out, err = process.communicate(timeout=240)
        assert process.returncode == 0, err
        assert out.startswith("Loaded 3 workflows, 72 runs, ")
