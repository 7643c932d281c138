"""``--shard K/N``: a stable split of the workflows, a pipeline and state per shard, one line for
a malformed shard. (Shards loading at once into DuckLake and PostgreSQL:
tests/shared/test_shared_destinations.py.)"""

from __future__ import annotations

import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from onepin_etl import Target
from onepin_sim import Simulator, WorldConfig
from onepin_source.errors import ConfigError
from onepin_source.shards import Shard
from tests.helpers import api_snapshot, assert_matches_api, invoke_cli, table


def test_every_workflow_has_exactly_one_shard_and_keeps_it() -> None:
    ids = [str(uuid.UUID(int=i * 7919 + 13)) for i in range(2000)]
    for count in (1, 2, 3, 4):
        shards = [Shard(k, count) for k in range(1, count + 1)]
        owners = [[s.index for s in shards if s.owns(i)] for i in ids]
        assert all(len(o) == 1 for o in owners)
        sizes = Counter(o[0] for o in owners)
        assert min(sizes.values()) > 2000 / count * 0.9  # an even split, within 10%
    assert Shard(3, 4).owns(ids[5]) == Shard.parse("3/4").owns(ids[5].upper())


@pytest.mark.parametrize("text", ["0/4", "5/4", "2", "a/b", "2/0", "-1/3", ""])
def test_a_malformed_shard_is_refused(text: str) -> None:
    with pytest.raises(ConfigError, match="is not K/N with 1 <= K <= N; use e.g. 1/4"):
        Shard.parse(text)


def test_a_shard_is_a_pipeline_with_its_own_name_and_staging_dataset() -> None:
    target = Target("postgres", shard="2/4")
    assert target.name == "onepin_postgres_shard2of4"
    assert target.staging_layout == "%s_staging_shard2of4"
    assert Target(shard="1/2").name == "onepin_shard1of2"
    assert Target(pipeline_name="mine", shard="1/2").name == "mine_shard1of2"
    assert Target().staging_layout is None


def test_malformed_shard_on_the_command_line_exits_2_before_any_request(
        sim: Simulator, cli: Any) -> None:
    result = cli("load", "--shard", "3/2", expect=2)
    assert result.output.strip() == ("error: --shard '3/2' is not K/N with 1 <= K <= N; use "
                                     "e.g. 1/4")
    assert sim.stats.snapshot()["total"] == 0


def test_shards_one_after_another_fill_one_duckdb_file(workdir: Path) -> None:
    """A DuckDB file has one writer, so its shards load in turn; together they load all."""
    with Simulator(WorldConfig(seed=5, workflows=6, runs=8, nodes=5)) as sim:
        cli = invoke_cli(sim, workdir)
        outputs = [cli("load", "--shard", f"{k}/3").output for k in (1, 2, 3)]
        loaded = [int(o.split(" workflows")[0].removeprefix("Loaded ")) for o in outputs]
        assert sum(loaded) == 6 and all(n < 6 for n in loaded)
        assert_matches_api(workdir / "onepin_etl.duckdb", api_snapshot(sim))
        names = table(workdir / "onepin_etl.duckdb",
                      "select distinct pipeline_name from onepin._dlt_pipeline_state")
        assert sorted(names) == [(f"onepin_shard{k}of3",) for k in (1, 2, 3)]
        sim.advance(4 * 3600)
        for k in (1, 2, 3):
            cli("load", "--shard", f"{k}/3")
        assert_matches_api(workdir / "onepin_etl.duckdb", api_snapshot(sim))
