"""The shared request limiter: bounded concurrency, and a 429 slows every worker down."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from email.utils import formatdate

from onepin_sim import FaultConfig, Simulator
from onepin_source.client import OnepinClient
from onepin_source.config import resolve_credentials
from onepin_source.throttle import RequestLimiter, retry_delay_s
from tests.helpers import SMALL


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_429_halves_the_limit_for_everybody_once_per_burst() -> None:
    clock = FakeClock()
    limiter = RequestLimiter(8, clock=clock)
    for _ in range(8):
        limiter.acquire()
    limiter.release(429, 1.0)
    limiter.release(429, 1.0)  # same burst: already acted on
    assert (limiter.limit, limiter.slowdowns, limiter.in_flight) == (4, 1, 6)
    clock.now += 1.5
    limiter.release(429, 1.0)
    assert limiter.limit == 2 and limiter.slowdowns == 2


def test_successes_raise_the_limit_back_one_round_at_a_time() -> None:
    limiter = RequestLimiter(4, clock=FakeClock())
    limiter.acquire()
    limiter.release(429, 1.0)
    assert limiter.limit == 2
    for _ in range(2):
        limiter.acquire()
        limiter.release(200)
    assert limiter.limit == 3
    for _ in range(3 + 4 * 10):
        limiter.acquire()
        limiter.release(200)
    assert limiter.limit == 4, "never above the configured concurrency"


def test_a_429_at_one_request_in_flight_pauses_everybody() -> None:
    clock = FakeClock()
    limiter = RequestLimiter(1, clock=clock)
    limiter.acquire()
    limiter.release(429, 30.0)
    assert limiter.pauses == 1
    got_slot = threading.Event()

    def worker() -> None:
        limiter.acquire()
        got_slot.set()

    thread = threading.Thread(target=worker, daemon=True)
    thread.start()
    assert not got_slot.wait(0.2), "nobody sends during the pause"
    clock.now += 30.0
    with limiter._cond:
        limiter._cond.notify_all()
    assert got_slot.wait(2), "the pause ends with the Retry-After"


def test_in_flight_never_exceeds_the_limit() -> None:
    limiter = RequestLimiter(3)
    peak = 0
    lock = threading.Lock()

    def request(_: int) -> None:
        nonlocal peak
        limiter.acquire()
        with lock:
            peak = max(peak, limiter.in_flight)
        threading.Event().wait(0.005)
        limiter.release(200)

    with ThreadPoolExecutor(12) as pool:
        list(pool.map(request, range(60)))
    assert peak == 3 and limiter.in_flight == 0


def test_retry_delay_from_seconds_date_or_reset_header() -> None:
    assert retry_delay_s({"Retry-After": "7"}) == 7.0
    assert round(retry_delay_s({"Retry-After": formatdate(1_000_030.0, usegmt=True)},
                               now=1_000_000.0) or 0) == 30
    assert retry_delay_s({"X-RateLimit-Reset": "1000012"}, now=1_000_000.0) == 12.0
    assert retry_delay_s({"Retry-After": "soon"}) is None
    assert retry_delay_s({}) is None


def test_a_spent_quota_slows_the_whole_client_and_every_request_succeeds() -> None:
    """A real per-key limit (6 requests per 1 s window) against 8 workers sharing one client."""
    faults = FaultConfig(rate_limit_per_min=6, rate_window_s=1)
    with Simulator(SMALL, faults) as sim:
        client = OnepinClient(resolve_credentials(sim.api_key, sim.base_url, None),
                              concurrency=8)
        workflow = client.workflow(sim.world.workflow_id(0))
        runs = next(iter(client.runs_newest_first(workflow["id"])))[:16]
        with ThreadPoolExecutor(8) as pool:
            steps = list(pool.map(lambda r: client.run_steps(workflow["id"], r["id"],
                                                             include_result=False), runs))
        assert [len(s) > 0 for s in steps] == [True] * 16
        limited = sim.stats.snapshot()["faults"].get("rate_limit", 0)
    assert limited > 0, "the window was exceeded"
    assert client.limiter.slowdowns >= 1 and client.limiter.limit < 8
