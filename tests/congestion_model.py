"""A timing-free model of a load against a server: the congestion limit driven by simulated time.

Requests are always waiting (as in a big load); the limit says how many are in flight; each
answer's latency comes from one of the simulator's latency profiles
(:class:`onepin_sim.latency.Latency`), the saturating one as a first-come-first-served queue
before ``capacity`` workers. Events happen in simulated time, so a run of thousands of requests
takes milliseconds and gives the same figures every time.
"""

from __future__ import annotations

import heapq
import itertools
import random
from dataclasses import dataclass

from onepin_sim.latency import Latency, LatencySpec
from onepin_source.congestion import CongestionLimit
from onepin_source.settings import ANSWERS_PER_SLOT_UNTIL_QUOTA_KNOWN, START_CONCURRENCY


class SimClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@dataclass(frozen=True)
class Outcome:
    seconds: float  # simulated time to answer every request
    throughput: float  # answers a second
    mean_in_flight: float  # time-weighted
    p95_latency_s: float
    limits: list[int]  # the limit after each answer
    probes: int
    lowered: int

    def limit_share_at_least(self, value: int, *, skip: int = 0) -> float:
        kept = self.limits[skip:]
        return sum(limit >= value for limit in kept) / len(kept)


def run(spec: LatencySpec, *, requests: int = 4000, cap: int = 32, fixed: int | None = None,
        seed: int = 1, quota_known: bool = True, client_s: float = 0.0,
        errors: float = 0.0) -> Outcome:
    """``requests`` answered under a :class:`CongestionLimit` of ``cap`` (or ``fixed`` in flight
    throughout, for comparison); unless ``quota_known``, it rises as the limiter lets it before
    the API has said anything of a quota (one more for every 16 answers past 8). ``client_s``
    is added to every latency the limit sees (the client's own time to read an answer), not to
    the server's (``p95_latency_s``). A share ``errors`` of the answers are errors that lower the
    limit (half 429s, half 5xx, as the limiter takes them) and are answered again."""
    clock = SimClock()
    limit = CongestionLimit(cap, clock=clock)
    latency = Latency(spec, seed)
    workers = [0.0] * spec.capacity if spec.profile == "saturating" else None
    answers: list[tuple[float, int, float, int]] = []  # (due, order, sent_at, in flight at send)
    order = itertools.count()
    in_flight = sent = 0
    limits: list[int] = []
    latencies: list[float] = []
    weighted = 0.0
    last = 0.0
    faults = random.Random(seed)
    while True:
        allowed = fixed if fixed is not None else limit.limit
        while sent < requests and in_flight < allowed:
            in_flight += 1
            sent += 1
            service = latency.service_s()
            if workers is None:
                due = clock.now + service
            else:  # the worker that is free first takes it
                free = heapq.heappop(workers)
                due = max(clock.now, free) + service
                heapq.heappush(workers, due)
            heapq.heappush(answers, (due, next(order), clock.now, in_flight))
        if not answers:
            break
        due, _, sent_at, at_send = heapq.heappop(answers)
        weighted += in_flight * (due - last)
        last = clock.now = due
        in_flight -= 1
        if errors and faults.random() < errors:
            limit.backed_off(0.5 if faults.random() < 0.5 else 0.75)
            sent -= 1  # asked again
            continue
        latencies.append(due - sent_at)
        answered = len(latencies)
        limit.answered(due - sent_at + client_s, at_send, ceiling=None if quota_known else max(
            START_CONCURRENCY, answered // ANSWERS_PER_SLOT_UNTIL_QUOTA_KNOWN))
        limits.append(allowed)
    latencies.sort()
    return Outcome(clock.now, requests / clock.now, weighted / clock.now,
                   latencies[int(0.95 * len(latencies))], limits, limit.probes, limit.lowered)
