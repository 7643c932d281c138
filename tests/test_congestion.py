"""The congestion limit: it holds when latency varies on its own and falls before a server that
queues, judged in simulated time (tests/congestion_model.py) and against the real simulator."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from onepin_etl import Target, load
from onepin_sim import FaultConfig, Simulator, WorldConfig
from onepin_sim.latency import LatencySpec
from onepin_source.congestion import CongestionLimit, trimmed_mean
from tests import congestion_model


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_recorded_series_of_latencies_that_vary_by_4x_on_their_own_keeps_the_cap() -> None:
    """5,000 answers whose latencies follow a heavy tail (lognormal, sigma 0.8: one in twenty
    takes 3.7x the median) and do not depend on the requests in flight: every answer is sent
    with the limit in flight. The limit reaches the cap and stays there (the limiter before
    compared each round with the fastest answer ever seen, and fell every round)."""
    rng = random.Random(7)
    series = [0.03 * rng.lognormvariate(0.0, 0.8) for _ in range(5000)]
    clock = Clock()
    limit = CongestionLimit(32, clock=clock)
    limits = []
    for latency in series:
        clock.now += latency / limit.limit
        limit.answered(latency, limit.limit)
        limits.append(limit.limit)
    assert max(series) > 8 * min(series) * 4
    kept = [x for x in limits[400:] if x > 4]  # probes hold 4 for a moment
    assert min(kept) >= 24 and limit.lowered <= 2, limit.lowered
    assert sum(x == 32 for x in kept) / len(kept) > 0.95


def test_answers_recorded_from_a_real_load_on_a_lognormal_server_keep_the_limit_up() -> None:
    """The latencies one real load saw (tests/data/lognormal_answers.json: 2,021 answers from
    the simulator's lognormal profile, client-side, with the requests in flight at each send),
    fed to a new limit on their own clock: it climbs to the cap while no quota is known and
    never falls on latency."""
    recorded = json.loads((Path(__file__).parent / "data" / "lognormal_answers.json")
                          .read_text())["answers"]
    clock = Clock()
    limit = CongestionLimit(32, clock=clock)
    limits = []
    for answered, (at, latency, in_flight) in enumerate(recorded, start=1):
        clock.now = at
        limit.answered(latency, in_flight, ceiling=max(8, answered // 16))
        limits.append(limit.limit)
    spread = sorted(latency for _, latency, _ in recorded)
    assert spread[int(0.95 * len(spread))] > 2.5 * spread[len(spread) // 2]  # a heavy tail
    assert limit.lowered == 0 and max(limits) == 32
    assert sum(x >= 24 for x in limits[1000:]) / len(limits[1000:]) > 0.9


@pytest.mark.parametrize("profile", ["uniform", "lognormal", "bimodal"])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_limit_holds_at_the_cap_when_latency_varies_on_its_own(profile: str,
                                                                  seed: int) -> None:
    spec = LatencySpec(profile, 30.0)
    outcome = congestion_model.run(spec, requests=20_000, seed=seed)
    fixed = congestion_model.run(spec, requests=20_000, fixed=32, seed=seed)
    assert outcome.limit_share_at_least(28, skip=1000) > 0.9
    assert outcome.throughput >= 0.9 * fixed.throughput


@pytest.mark.parametrize("capacity", [8, 16])
def test_the_limit_falls_to_what_a_saturating_server_serves_without_queueing(
        capacity: int) -> None:
    """A server with ``capacity`` workers queues the rest: more in flight buys nothing but
    slower answers. The limit settles a little above the capacity: the throughput of the best
    fixed concurrency, answers no slower than 2x the unloaded median at the p95."""
    spec = LatencySpec("saturating", 30.0, capacity=capacity)
    outcome = congestion_model.run(spec, requests=20_000)
    best = max(congestion_model.run(spec, requests=20_000, fixed=n).throughput
               for n in (8, 16, 32))
    assert outcome.throughput >= 0.9 * best
    assert outcome.p95_latency_s <= 2 * 0.030
    assert capacity <= outcome.mean_in_flight <= 1.6 * capacity
    at_32 = congestion_model.run(spec, requests=20_000, fixed=32)
    assert at_32.p95_latency_s > 2 * 0.030, "fixed 32 only queues"


def test_a_server_that_becomes_slower_for_everybody_is_re_measured_not_starved() -> None:
    """Latency doubles for good, whatever is in flight: the limit falls at first (it looks
    like a queue), then the probe at low concurrency re-measures the baseline and it climbs
    back to the cap."""
    clock = Clock()
    limit = CongestionLimit(32, clock=clock)
    for latency in [0.03] * 2000 + [0.06] * 2000:
        clock.now += latency / limit.limit
        limit.answered(latency, limit.limit)  # a probe's answers come with few in flight
    assert limit.lowered >= 1 and limit.limit == 32
    assert limit.baseline == pytest.approx(0.06)


def test_random_errors_lower_the_limit_once_per_burst_and_it_climbs_back() -> None:
    """One answer in ten an error (a stray 429 or a 5xx, as the bench's fault run has): each
    burst lowers the limit, and the windows between them raise it again (an error used to
    empty the window being judged, so at 10% none ever filled: in flight stayed under 2 and the
    load took 20x as long)."""
    spec = LatencySpec("lognormal", 25.0)
    clean = congestion_model.run(spec, requests=5000)
    faulty = congestion_model.run(spec, requests=5000, errors=0.1)
    assert faulty.seconds < 2 * clean.seconds
    assert faulty.mean_in_flight > 16


def test_a_limit_capped_at_its_start_still_measures_its_baseline_and_falls() -> None:
    """``--concurrency 8`` (the start): the limit never rises past its start, so the first
    probe comes at the cap; a server of 4 workers then lowers it."""
    outcome = congestion_model.run(LatencySpec("saturating", 30.0, capacity=4), requests=5000,
                                   cap=8)
    assert outcome.probes >= 1 and outcome.lowered >= 1
    assert outcome.mean_in_flight < 8


def test_answers_that_take_no_time_at_all_are_no_error() -> None:
    clock = Clock()  # never moves: every latency is 0
    limit = CongestionLimit(32, clock=clock)
    for _ in range(200):
        limit.answered(0.0, 4)
    assert limit.limit >= 1


def test_a_bad_latency_knob_is_refused_and_changes_nothing() -> None:
    faults = FaultConfig(latency_ms=5)
    with pytest.raises(ValueError, match="unknown latency profile 'slow'"):
        faults.update({"latency_ms": 50, "latency_profile": "slow"})
    with pytest.raises(ValueError, match="capacity must be at least 1"):
        faults.update({"latency_profile": "saturating", "capacity": 0})
    assert (faults.latency_ms, faults.latency_profile, faults.capacity) == (5, "constant", 16)


def test_a_trimmed_mean_leaves_out_the_slowest_twentieth() -> None:
    assert trimmed_mean([1.0] * 19 + [100.0]) == 1.0
    assert trimmed_mean([1.0, 3.0]) == 2.0


def test_a_load_against_a_lognormal_server_keeps_many_requests_in_flight(tmp_path: Path) -> None:
    """Whole, against the simulator with a heavy-tailed latency: the most requests it handled
    at once (the simulator's own count)."""
    world = WorldConfig(seed=3, workflows=10, runs=80, nodes=4)
    faults = FaultConfig(latency_ms=20, latency_profile="lognormal")
    with Simulator(world, faults) as sim:
        load(Target(duckdb_path=str(tmp_path / "w.duckdb"),
                    pipelines_dir=str(tmp_path / "pipelines")),
             api_key=sim.api_key, base_url=sim.base_url)
        assert sim.stats.snapshot()["total"] == 1 + 10 + 800
        assert sim.stats.most_in_flight >= 16, sim.stats.most_in_flight
