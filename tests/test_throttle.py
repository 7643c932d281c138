"""The shared request limiter: congestion, the API's quota learned, a budget of our own."""

from __future__ import annotations

import contextlib
import heapq
import threading
from concurrent.futures import ThreadPoolExecutor
from email.utils import formatdate
from typing import Any

import pytest

from onepin_sim import FaultConfig, Simulator, WorldConfig
from onepin_source.client import OnepinClient
from onepin_source.config import resolve_credentials
from onepin_source.congestion import CongestionLimit, Pace
from onepin_source.quota import Quota, QuotaWindow, SlidingBudget, header_quota, retry_delay_s
from onepin_source.throttle import GivenUp, RequestLimiter, Sent, given_up_when
from tests.helpers import waiting

NOW = 1_800_000_000.0  # a Unix time (X-RateLimit-Reset above 1e9 is one)


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def answer(limiter: RequestLimiter, status: int = 200, headers: dict[str, str] | None = None,
           latency: float = 0.05, retry_after: float | None = None) -> None:
    sent_at = limiter.acquire()
    limiter._clock.now += latency
    limiter.release(status, headers or {}, sent_at, retry_after)


def test_a_429_halves_the_limit_for_everybody_once_per_burst() -> None:
    clock = FakeClock()
    limiter = RequestLimiter(8, clock=clock)
    for _ in range(8):
        limiter.acquire()
    limiter.release(429, retry_after_s=1.0)
    limiter.release(429, retry_after_s=1.0)  # same burst: already acted on
    assert (limiter.limit, limiter.slowdowns, limiter.in_flight) == (4, 1, 6)
    clock.now += 1.5
    limiter.release(429, retry_after_s=1.0)
    assert limiter.limit == 2 and limiter.slowdowns == 2


def a_round(limiter: RequestLimiter, latency: float = 0.05) -> None:
    """As many answers as the limit, the pipe kept full (as a big load's threads keep it):
    each answer ``latency`` after its request, the next request sent at once."""
    pipe: list[tuple[float, int, Sent]] = getattr(limiter, "_pipe", [])
    limiter._pipe = pipe  # type: ignore[attr-defined]
    for _ in range(max(1, limiter.limit)):
        while len(pipe) < limiter.limit:
            heapq.heappush(pipe, (limiter._clock.now + latency, limiter.sent,
                                  limiter.acquire()))
        due, _, sent = heapq.heappop(pipe)
        limiter._clock.now = max(limiter._clock.now, due)
        limiter.release(200, {}, sent)


def rounds_until(limiter: RequestLimiter, answers: int, latency: float = 0.05) -> None:
    while limiter.answered < answers:
        a_round(limiter, latency)


def drain(limiter: RequestLimiter) -> None:
    """Answer what the pipe holds (for a test's own requests)."""
    for _, _, sent in getattr(limiter, "_pipe", []):
        limiter.release(200, {}, sent)
    limiter._pipe = []  # type: ignore[attr-defined]


def test_the_limit_rises_past_the_start_while_answers_stay_fast_up_to_the_cap() -> None:
    limiter = RequestLimiter(32, clock=FakeClock())
    assert limiter.limit == 8, "starts at 8"
    rounds_until(limiter, 128)
    # No quota known yet: one more in flight for every 16 answers (a quota's first 429s are
    # the requests in flight when it runs out).
    assert limiter.limit == 8
    rounds_until(limiter, 256)
    assert 8 < limiter.limit <= 256 // 16
    rounds_until(limiter, 1200)
    assert limiter.limit == 32, "rises to the hard cap, never past it"


def test_the_limit_falls_when_answers_slow_down_and_rises_once_the_server_is_slow_for_all(
        ) -> None:
    """Four times slower at 32 in flight: a queue somewhere, so fewer go. The probe that
    follows re-measures the latency at low concurrency: the server answers slowly even then
    (it is slower for everybody, not loaded by us), so the limit rises again."""
    limiter = RequestLimiter(32, clock=FakeClock(), learned=Quota(10**6, 60.0, "429"))
    rounds_until(limiter, 400)
    assert limiter.limit == 32
    lowest = 32
    for _ in range(6):
        a_round(limiter, latency=0.2)
        lowest = min(lowest, limiter.limit)
    assert lowest <= 16, "falls when latency grows"
    rounds_until(limiter, limiter.answered + 2500, latency=0.2)
    assert limiter.limit == 32 and limiter.congestion.baseline == pytest.approx(0.2, rel=0.1)


def test_once_a_quota_is_known_the_limit_rises_with_every_window() -> None:
    limiter = RequestLimiter(32, clock=FakeClock(), learned=Quota(1000, 60.0, "429"))
    rounds_until(limiter, 400)
    assert limiter.limit == 32  # 8, 10, 12, 15, 19, 24, 30, 32: a window each, a probe first


def test_the_next_load_starts_at_the_pace_the_last_one_reached() -> None:
    """A load that met no quota leaves its limit, its baseline and its answers in the state:
    the next starts there, and its rise (while no quota is known) counts those answers, so a
    re-load of a few hundred requests does not spend them at 8 in flight."""
    first = RequestLimiter(32, clock=FakeClock())
    rounds_until(first, 1200)
    pace = first.pace()
    assert pace is not None and (pace.limit, pace.answered) == (32, 1024)  # enough for any cap
    assert pace.baseline_s == pytest.approx(0.05)
    again = RequestLimiter(32, clock=FakeClock())
    again.restore(None, Pace.from_state(pace.as_state()))
    assert again.limit == 32
    a_round(again)
    assert again.limit == 32, "no quota known, but the answers before count"
    drain(again)
    held = again.acquire()
    again.release(429, {}, held, 1.0)
    assert again.pace() is None, "a 429: the next load rises from the start again"
    assert Pace.from_state({"limit": "32"}) is None


def test_server_errors_and_lost_connections_lower_the_limit_once_per_burst() -> None:
    clock = FakeClock()
    limiter = RequestLimiter(32, clock=clock, learned=Quota(1000, 60.0, "429"))
    rounds_until(limiter, 400)
    assert limiter.limit == 32
    drain(limiter)
    held = [limiter.acquire() for _ in range(3)]
    limiter.release(503, {}, held[0])
    limiter.release(None, {}, held[1])  # a connection error, the same burst
    assert (limiter.limit, limiter.errors) == (24, 2)
    clock.now += 1.5
    limiter.release(None, {}, held[2])
    assert limiter.limit == 18


def test_a_hard_cap_below_the_start_is_kept() -> None:
    limiter = RequestLimiter(3, clock=FakeClock())
    for _ in range(100):
        answer(limiter)
    assert limiter.limit == 3


def test_the_quota_is_learned_from_429s_alone_and_paced_to() -> None:
    """A fixed window of 5 requests per 10 s that only says Retry-After."""
    clock = FakeClock()
    limiter = RequestLimiter(8, clock=clock)
    for _ in range(5):
        answer(limiter)
    for sent_at in [limiter.acquire() for _ in range(5)]:  # the 6th to 10th: spent until +4 s
        limiter.release(429, {}, sent_at, 4.0)
    assert limiter.quota == Quota(5, None, "429"), "a guess at the count, not yet the length"
    assert limiter._wait_s(urgent=False) == pytest.approx(4.0)
    clock.now += 4.0  # the window turned: a window seen whole, counted
    assert limiter._wait_s(urgent=False) == 0 and limiter.window.counting
    for _ in range(5):
        assert limiter._wait_s(urgent=False) == 0
        answer(limiter)
    for _ in range(4):  # one at a time: while counting, four 429s in a row say it is spent
        answer(limiter, 429, retry_after=9.55)
    quota = limiter.quota
    assert quota is not None and (quota.limit, quota.source) == (5, "429")
    assert quota.window_s == pytest.approx(10.0)
    assert not limiter.window.counting and limiter.throttled == 9 and limiter.quota_waits == 2
    clock.now += 9.55
    for _ in range(5):
        answer(limiter)
    assert limiter._wait_s(urgent=False) == pytest.approx(10.0 - 0.25), \
        "the count spent: the next request waits for the window's end, not for a 429"


def test_a_count_learned_is_confirmed_or_corrected_by_the_window_seen_whole() -> None:
    """Retry-After only, the window alone (congestion aside). The load's first window guesses
    a count of 10: the window turned while requests were in flight. The next window, seen
    whole (it began when the wait ended), is counted: 8 get through, then 429s, answered
    mixed with the 200s (the API answers a 429 sooner), and a late 200 still counts. The count
    becomes 8, and the window's length is learned."""
    window = QuotaWindow(None)
    now = 100.0

    def send() -> float:
        window.sent()
        return now

    for _ in range(10):
        window.answered({}, now, 0, send())
    late = [send() for _ in range(5)]
    now += 0.05
    for sent_at in late:
        window.throttled(1.0, {}, now, sent_at)
    assert window.quota == Quota(10, None, "429") and not window.confirmed
    now += 1.0
    assert window.wait_s(now, 0) == 0 and window.counting and window.remaining is None
    sends = []
    for _ in range(13):
        sends.append(send())
        now += 0.001
    window.throttled(0.9, {}, now, sends[8])
    assert window.wait_s(now, 12) is None, "a 429 came back: nobody goes until the others tell"
    for sent_at in sends[:7]:
        window.answered({}, now, 0, sent_at)
    for sent_at in sends[9:]:
        window.throttled(0.9, {}, now, sent_at)
    assert window.quota is not None and (window.quota.limit, window.quota.source) == (7, "429")
    assert window.quota.window_s == pytest.approx(0.913)
    window.answered({}, now + 0.01, 0, sends[7])  # late, sent before the first 429 came back
    assert window.quota is not None and window.quota.limit == 8 and window.confirmed
    now += 0.9
    assert window.wait_s(now, 0) == 0 and window.remaining == 8 and not window.counting


def test_stray_429s_teach_no_quota() -> None:
    """An API that sheds load answers a 429 now and then, alone (before, a 429 with no other
    request in flight counted as a spent window, and a load learned 3 requests per second)."""
    clock = FakeClock()
    limiter = RequestLimiter(8, clock=clock)
    for n in range(1, 400):
        answer(limiter, 429 if n % 20 == 0 else 200, retry_after=1.0)
    # One at a time, each stray halved the congestion limit: only the quota is judged here.
    limiter.congestion = CongestionLimit(8, clock=clock)
    held = [limiter.acquire() for _ in range(4)]
    limiter.release(429, {}, held[0], 1.0)
    limiter.release(429, {}, held[1], 1.0)
    for sent_at in held[2:]:
        limiter.release(200, {}, sent_at)
    assert limiter.quota is None and limiter.quota_waits == 0
    assert limiter._wait_s(urgent=False) == 0


def test_three_429s_answered_ahead_of_a_request_sent_among_them_are_strays() -> None:
    """Three 429s in a row spend a window only if no request sent among them is still in
    flight: answered out of order, random 429s (5% of a load's answers) looked like a streak,
    and a load of 5,600 requests learned a quota of 3,349 and went on at 4 in flight."""
    clock = FakeClock()
    limiter = RequestLimiter(8, clock=clock)
    held = []
    for _ in range(5):
        held.append(limiter.acquire())
        clock.now += 0.001
    for sent_at in held[0::2]:  # the 1st, 3rd and 5th: 429s, before the 2nd and 4th answer
        limiter.release(429, {}, sent_at, 1.0)
    assert limiter.window.reset_at is None and limiter.quota_waits == 0
    for sent_at in held[1::2]:
        limiter.release(200, {}, sent_at)
    assert limiter.quota is None and limiter._wait_s(urgent=False) == 0


def test_a_guess_from_strays_is_forgotten_when_the_next_window_holds_more() -> None:
    """Five random 429s in a row look like a spent window; the window counted after the wait
    then lets more requests through than the guess: no quota after all, full speed again."""
    window = QuotaWindow(None)
    for _ in range(30):
        window.sent()
        window.answered({}, 100.0, 0, 100.0)
    for _ in range(5):
        window.sent()
        window.throttled(1.0, {}, 100.1, 100.05)
    assert window.quota == Quota(30, None, "429")
    assert window.wait_s(101.2, 0) == 0 and window.counting
    for _ in range(30):
        window.sent()
        window.answered({}, 101.3, 0, 101.25)
    assert window.counting, "30: as the guess"
    window.sent()
    window.answered({}, 101.3, 0, 101.25)
    assert window.quota is None and not window.counting and window.wait_s(101.3, 3) == 0


def test_a_stray_among_a_windows_own_requests_does_not_shorten_its_count() -> None:
    """A confirmed count of 5: a window seen whole sends its 5 and one of them meets a stray
    429. The window is then taken as spent, but the count stays 5 (shortening it to the 200s
    seen would lose one request a window, each time a stray came)."""
    window = QuotaWindow(Quota(5, 10.0, "429"))
    for _ in range(5):
        window.sent(100.0)
    for _ in range(5):
        window.ended(100.0)
        window.answered({}, 100.05, 0, 100.0)
    assert window.wait_s(100.1, 0) == 0  # the count used: a probe, right away
    window.sent(100.1)
    window.ended(100.1)
    window.throttled(9.0, {}, 100.15, 100.1)
    assert window.wait_s(109.15, 0) == 0 and window.remaining == 5  # a window seen whole
    sends = [109.15 + n / 1000 for n in range(5)]
    for sent_at in sends:
        window.sent(sent_at)
    for n, sent_at in enumerate(sends):
        window.ended(sent_at)
        if n == 2:
            window.throttled(1.0, {}, 109.2, sent_at)
        else:
            window.answered({}, 109.2, 0, sent_at)
    assert window.quota == Quota(5, 10.0, "429") and window.reset_at is None, "a stray"


def test_a_lone_429_among_answers_makes_only_its_request_wait() -> None:
    clock = FakeClock()
    limiter = RequestLimiter(8, clock=clock)
    held = [limiter.acquire() for _ in range(3)]
    limiter.release(429, {}, held[0], 1.0)
    assert limiter._wait_s(urgent=False) is None, "a spent window or a stray: the others tell"
    limiter.release(200, {}, held[1])
    assert limiter.quota is None and limiter._wait_s(urgent=False) == 0, "a stray"
    limiter.release(200, {}, held[2])
    assert limiter.quota_waits == 0 and limiter.window.reset_at is None


def spent_for(limiter: RequestLimiter, seconds: int) -> None:
    """The quota's window spent (the API's headers say so) for ``seconds``."""
    sent_at = limiter.acquire()
    limiter.release(200, {"X-RateLimit-Limit": "3", "X-RateLimit-Remaining": "0",
                          "X-RateLimit-Reset": str(seconds)}, sent_at)
    assert limiter._wait_s(urgent=False) == pytest.approx(seconds, abs=0.5)


def test_a_request_waiting_for_the_window_gives_up_when_told() -> None:
    """What was read ahead for a load that has ended: it waits for a window a minute away, and
    gives up unsent (it does not keep the process alive until then) once its event is set and
    the limiter woken; a request made without the event still waits."""
    limiter = RequestLimiter(4)
    spent_for(limiter, 60)
    dropped = threading.Event()
    outcome: list[BaseException] = []

    def wait_ahead() -> None:
        with given_up_when(dropped):
            try:
                limiter.acquire()
            except GivenUp as exc:
                outcome.append(exc)

    ahead = threading.Thread(target=wait_ahead)
    other = threading.Thread(target=limiter.acquire, daemon=True)  # never sent: a minute away
    ahead.start()
    other.start()
    waiting(limiter, 2)
    dropped.set()
    limiter.wake()
    ahead.join(5)
    assert not ahead.is_alive() and len(outcome) == 1
    waiting(limiter, 1)
    assert other.is_alive(), "the other request still waits for the window"
    assert (limiter.sent, limiter.in_flight) == (1, 0), "given up unsent"


def test_requests_behind_one_sent_again_after_a_429_go_when_it_gives_up() -> None:
    """A request sent again after a 429 goes first: every other waits behind it, with no
    timeout. When it gives up they look again, and go once the window turns (before, they
    could wait for an answer that never came: nothing was in flight)."""
    limiter = RequestLimiter(4)
    spent_for(limiter, 3)
    dropped = threading.Event()
    sent: list[Sent] = []

    def again_after_429() -> None:
        with given_up_when(dropped), contextlib.suppress(GivenUp):
            limiter.acquire(urgent=True)

    urgent = threading.Thread(target=again_after_429)
    urgent.start()
    waiting(limiter, 1)
    behind = threading.Thread(target=lambda: sent.append(limiter.acquire()))
    behind.start()
    waiting(limiter, 2)
    assert limiter._wait_s(urgent=False) is None, "it waits behind the urgent one, untimed"
    dropped.set()
    # Not limiter.wake(): only the urgent request is woken, as a window turning wakes it.
    with limiter._cond:
        limiter._cond.notify(1)
    urgent.join(10)
    behind.join(10)
    assert not behind.is_alive() and len(sent) == 1 and limiter.sent == 2


def test_headers_pace_before_any_429() -> None:
    clock = FakeClock()
    limiter = RequestLimiter(1, clock=clock)
    for left in (2, 1, 0):
        answer(limiter, headers={"X-RateLimit-Limit": "3", "X-RateLimit-Remaining": str(left),
                                 "X-RateLimit-Reset": "7"})
    assert limiter.quota == Quota(3, 7.0, "headers")
    wait = limiter._wait_s(urgent=False)
    assert wait == pytest.approx(7.0), "none left: everybody waits for the window to turn"
    clock.now += 7.0
    assert limiter._wait_s(urgent=False) == 0 and limiter.throttled == 0


def test_header_forms() -> None:
    assert header_quota({"X-RateLimit-Limit": "100", "X-RateLimit-Remaining": "5",
                         "X-RateLimit-Reset": str(int(NOW) + 10)}, now=NOW).reset_s == 10.0
    draft = header_quota({"RateLimit-Policy": '"default";q=100;w=6',
                          "RateLimit": '"default";r=42;t=3'})
    assert (draft.limit, draft.remaining, draft.reset_s, draft.window_s) == (100, 42, 3.0, 6.0)
    old = header_quota({"RateLimit-Limit": "10", "RateLimit-Remaining": "4",
                        "RateLimit-Reset": "2"})
    assert (old.limit, old.remaining, old.reset_s) == (10, 4, 2.0)
    assert not header_quota({"Content-Type": "application/json"}).seen


def test_retry_delay_from_seconds_date_or_reset_header() -> None:
    assert retry_delay_s({"Retry-After": "7"}) == 7.0
    assert round(retry_delay_s({"Retry-After": formatdate(NOW + 30, usegmt=True)},
                               now=NOW) or 0) == 30
    assert retry_delay_s({"X-RateLimit-Reset": str(int(NOW) + 12)}, now=NOW) == 12.0
    assert retry_delay_s({"Retry-After": "soon"}) is None
    assert retry_delay_s({}) is None
    assert retry_delay_s({"Retry-After": "3600"}) == 60.0, "capped like the official SDK"


def test_the_budget_counts_a_request_until_a_minute_after_its_answer() -> None:
    budget = SlidingBudget(2, 60.0)
    assert budget.wait_s(0.0) == 0
    budget.sent()
    budget.sent()
    assert budget.wait_s(1.0) is None, "two in flight: wait for an answer"
    budget.answered(2.0)
    assert budget.wait_s(2.0) == 60.0, "answered, but it counts for a minute more"
    budget.answered(5.0)
    assert budget.wait_s(30.0) == pytest.approx(32.0)
    assert budget.wait_s(62.0) == 0


def test_in_flight_never_exceeds_the_limit() -> None:
    limiter = RequestLimiter(3)
    peak = 0
    lock = threading.Lock()

    def request(_: int) -> None:
        nonlocal peak
        sent_at = limiter.acquire()
        with lock:
            peak = max(peak, limiter.in_flight)
        threading.Event().wait(0.005)
        limiter.release(200, {}, sent_at)

    with ThreadPoolExecutor(12) as pool:
        list(pool.map(request, range(60)))
    assert peak == 3 and limiter.in_flight == 0


def test_the_requests_held_by_a_stray_429_all_go_once_it_is_known_for_one() -> None:
    """While a 429's meaning is unknown nobody sends; when an answer shows it was a stray, every
    free slot is filled at once (each answer had woken one waiter, which found the hold and
    waited again: without a wake-up for all, the slots freed meanwhile stayed empty)."""
    limiter = RequestLimiter(8, clock=FakeClock())
    answer(limiter, 429, retry_after=1.0)  # a first stray halves the limit to 4 (one burst)
    answer(limiter)
    held = [limiter.acquire() for _ in range(4)]
    went = threading.Semaphore(0)

    def request() -> None:
        limiter.acquire()
        went.release()

    for _ in range(3):
        threading.Thread(target=request, daemon=True).start()
    while len(limiter._cond._waiters) < 3:  # type: ignore[attr-defined]  # all three wait
        threading.Event().wait(0.01)
    limiter.release(429, {}, held[0], 1.0)  # another stray, same burst: a slot, but hold
    threading.Event().wait(0.2)  # the waiter it woke finds the hold and waits again
    limiter.release(200, {}, held[1])  # sent with it and through: the 429 was a stray
    assert went.acquire(timeout=5) and went.acquire(timeout=5), "both free slots filled"
    assert not went.acquire(timeout=0.2) and (limiter.in_flight, limiter.limit) == (4, 4)
    limiter.release(200, {}, held[2])
    assert went.acquire(timeout=5)


def steps_of_one_workflow(world: WorldConfig, faults: FaultConfig
                          ) -> tuple[list[list[Any]], dict[str, Any], OnepinClient]:
    """Every run's steps of the world's one workflow, fetched by 32 threads through one client
    with only two attempts per request: the steps, the simulator's counts and the client."""
    with Simulator(world, faults) as sim:
        client = OnepinClient(resolve_credentials(sim.api_key, sim.base_url, None),
                              concurrency=32, max_attempts=2)
        workflow = client.workflow(sim.world.workflow_id(0))
        runs = next(iter(client.runs_newest_first(workflow["id"])))
        assert len(runs) == world.runs, "one page"
        with ThreadPoolExecutor(32) as pool:
            steps = list(pool.map(lambda r: client.run_steps(workflow["id"], r["id"],
                                                             include_result=False), runs))
        return steps, sim.stats.snapshot(), client


@pytest.mark.parametrize("headers", [False, True], ids=["retry-after only", "headers"])
def test_a_sustained_quota_never_fails_a_request_and_rarely_answers_429(headers: bool) -> None:
    """32 threads through one client, 10 requests per 1 s, and only two attempts per request:
    before, a request that met the spent quota twice failed (its retries went to the other
    threads, which took the new window first). Now a 429 costs a wait, not an attempt.

    From Retry-After alone, eight windows' worth: the load's first window gives a guess (it
    may count long: the requests in flight when the window turned), and the next window, seen
    whole, is counted. Headers say the count: three windows' worth."""
    faults = FaultConfig(rate_limit_per_min=10, rate_window_s=1, rate_limit_headers=headers)
    world = WorldConfig(seed=11, workflows=1, runs=28 if headers else 78, nodes=3)
    steps, stats, client = steps_of_one_workflow(world, faults)
    assert [len(s) > 0 for s in steps] == [True] * world.runs
    assert stats["statuses"]["200"] == world.runs + 2
    learned = client.limiter.quota
    assert learned is not None
    assert learned.limit == 10, learned
    assert learned.source == ("headers" if headers else "429")
    if headers:
        assert stats["statuses"].get("429", 0) == 0, "paced by the headers: no 429 at all"
    else:  # the first window's discovery (the requests then in flight: the limit, 8 at the
        # start and 10 after one round), then at most one a window (eight windows)
        assert stats["statuses"].get("429", 0) <= 10 + 8


@pytest.mark.parametrize(("step", "wait", "learned"),
                         [(0.02, 6.0, 6.0), (0.04, 6.0, 6.0), (0.08, 6.0, 7.0),
                          (0.08, 5.0, 6.0), (0.06, 5.0, 5.0), (0.02, 6.3, 6.5)])
def test_a_window_length_from_whole_second_waits_is_taken_in_whole_seconds(
        step: float, wait: float, learned: float) -> None:
    """A window seen whole is measured from the wait's end to the wait its last 429 asks: each
    late by up to a second when Retry-After is in whole seconds, so the measure is off by up
    to a second. A length learned long sends the probe late every window, and the load falls
    behind by a window now and then (40 per 2 s learned as 2.6 s: 1.29x the floor), while one
    learned short meets a 429 a window and is measured again; so the measure is rounded down
    to whole seconds unless within a quarter second below the next (6.2 s and 6.4 s are 6 s,
    6.8 s is 7 s, 5.8 s is 6 s, 5.6 s is 5 s); a wait not in whole seconds is taken as it is."""
    window = QuotaWindow(None)
    now = 100.0
    for _ in range(10):
        window.sent()
        window.answered({}, now, 0, now - 0.1)
    for _ in range(5):  # five in a row: spent, a guess of 10
        window.sent()
        window.throttled(1.0, {}, now, now)
    now += 1.0
    assert window.wait_s(now, 0) == 0 and window.counting
    for _ in range(10):  # the window seen whole, counted: 10 in 10 steps
        window.sent()
        window.answered({}, now, 0, now)
        now += step
    for _ in range(4):
        window.sent()
        window.throttled(wait, {}, now, now)
    assert window.quota is not None and (window.quota.limit, window.quota.source) == (10, "429")
    assert window.quota.window_s == pytest.approx(learned)


def test_probes_that_wait_for_the_windows_end_keep_its_phase() -> None:
    """Once the count of a window is spent, one request (the probe) goes when the window's
    learned length is over. When it gets through, the next window is counted from where the
    window was to end, not from the probe's answer, a round trip later: that made the probes
    drift one round trip a window, until one came a whole window late (40 per 2 s). A probe
    that went late (the load was busy) counts from the last window's end before it went."""
    window = QuotaWindow(Quota(10, 2.0, "429"))
    now = 0.0
    for _ in range(10):
        window.sent(now)
        window.answered({}, now + 0.05, 0, now)
        window.ended(now)
    assert window.wait_s(0.2, 0) == 0  # spent; the window's beginning is not known yet
    window.sent(0.2)
    window.answered({}, 0.25, 0, 0.2)  # through: a new window, from the answer (0.25)
    window.ended(0.2)
    began = 0.25
    for _ in range(10):
        for _ in range(9):
            window.sent(began + 0.1)
            window.answered({}, began + 0.15, 0, began + 0.1)
            window.ended(began + 0.1)
        assert window.wait_s(began + 0.2, 0) == pytest.approx(1.8)  # the probe at began + 2 s
        due = began + 2.0
        window.sent(due)
        window.answered({}, due + 0.05, 0, due)
        window.ended(due)
        began = due
    assert began == pytest.approx(20.25)
    for _ in range(9):
        window.sent(began + 0.1)
    assert window.wait_s(began + 0.2, 0) == pytest.approx(1.8)
    late = began + 2.0 + 5.5  # the probe went 2.75 windows after the window's end
    window.sent(late)
    window.answered({}, late + 0.05, 0, late)
    window.ended(late)
    for _ in range(9):
        window.sent(late + 0.1)
    assert window.wait_s(late + 0.2, 0) == pytest.approx(began + 2.0 + 3 * 2.0 - (late + 0.2))


def test_a_sliding_window_quota_never_fails_a_request() -> None:
    """A sliding window (the simulator's ``rate_sliding``: the requests it accepted in the last
    2 s) frees one request at a time as the oldest ages out, so its ``Retry-After`` counts
    from the oldest request and the window's length is learned long (docs/api.md). It is paced
    all the same: every request answered with two attempts each, a count no higher than the
    window's learned, few 429s."""
    faults = FaultConfig(rate_limit_per_min=10, rate_window_s=2, rate_sliding=True)
    world = WorldConfig(seed=11, workflows=1, runs=48, nodes=3)
    steps, stats, client = steps_of_one_workflow(world, faults)
    assert [isinstance(s, list) for s in steps] == [True] * world.runs
    assert stats["statuses"]["200"] == world.runs + 2
    learned = client.limiter.quota
    # Never more than the window allows (a window that begins before the last burst has aged
    # out may end early and be counted short: a count learned low is paced all the same).
    assert learned is not None and learned.source == "429" and 1 <= learned.limit <= 10, learned
    # the first window's discovery (the requests then in flight), then about one a window
    assert stats["statuses"].get("429", 0) <= 10 + 8, stats["statuses"]
