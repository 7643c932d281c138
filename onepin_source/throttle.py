"""When the next request may go: requests in flight, the API's quota, a budget of our own.

All requests of a source go through one :class:`RequestLimiter`, applied by the adapter mounted
on the shared session. Three things bound them:

- **Congestion** (requests in flight): :class:`onepin_source.congestion.CongestionLimit`. It
  starts at ``START_CONCURRENCY`` (8), rises while answers stay about as fast as the server's
  answers at low concurrency, and falls when they are much slower (the server queues them); a
  429 halves it, a 5xx or a connection error takes a quarter off (once per burst).
  ``concurrency`` is the hard cap (default 32): ``--concurrency 1`` means one request at a
  time. Until the API has said anything of a quota, it rises only by one for every
  ``ANSWERS_PER_SLOT_UNTIL_QUOTA_KNOWN`` (16) answers: the requests in flight when a quota
  first runs out all meet 429s.
- **The API's quota** (:class:`onepin_source.quota.QuotaWindow`): learned from rate-limit
  headers, or from 429s; when a window's requests are spent, nobody sends until it turns.
- **A budget** (``max_requests_per_minute``): never more than N requests in any 60 s.

A 429 does not use up a request's retries: the adapter waits for the window (``Retry-After``)
and sends the request again, ahead of requests that have not been sent yet, for up to
``QUOTA_PATIENCE_S``: otherwise a request that met a spent quota four times in a row would lose
its retries to the other threads, which take the new window's requests first.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, NamedTuple

from requests import PreparedRequest, Response
from requests.adapters import HTTPAdapter

from onepin_source.congestion import CongestionLimit, Pace
from onepin_source.quota import Quota, QuotaWindow, SlidingBudget, retry_delay_s
from onepin_source.settings import (
    ANSWERS_PER_SLOT_UNTIL_QUOTA_KNOWN,
    QUOTA_PATIENCE_S,
    START_CONCURRENCY,
)

log = logging.getLogger(__name__)
_BUDGET_WINDOW_S = 60.0
_NO_RETRY_AFTER_S = 1.0  # a 429 that names no wait: try again after a second
_ERROR_BACKOFF = 0.75  # a 5xx or a connection error: a quarter fewer in flight
# Answers without a quota remembered for the next load: enough for the rise to reach any cap
_PACE_ANSWERS_KEPT = 64 * ANSWERS_PER_SLOT_UNTIL_QUOTA_KNOWN
_giving_up = threading.local()  # the event that makes this thread's waiting requests give up


class Sent(NamedTuple):
    """A request let go by :meth:`RequestLimiter.acquire`: when, and with how many in flight
    (itself included)."""

    at: float
    in_flight: int


class GivenUp(Exception):
    """A request that gave up waiting for its turn (:func:`given_up_when`): it was not sent."""


@contextmanager
def given_up_when(event: threading.Event) -> Iterator[None]:
    """Requests this thread makes in the block give up (raise :class:`GivenUp`) instead of
    waiting on for a slot or the quota's window once ``event`` is set and the limiter is woken
    (:meth:`RequestLimiter.wake`): what was read ahead for a load that has ended is not sent a
    window later, and the process does not wait for it to exit."""
    outer = getattr(_giving_up, "event", None)
    _giving_up.event = event
    try:
        yield
    finally:
        _giving_up.event = outer


class RequestLimiter:
    """The shared gate every request of a source passes (thread-safe)."""

    def __init__(self, concurrency: int, *, max_requests_per_minute: int | None = None,
                 learned: Quota | None = None, clock: Any = time.monotonic,
                 patience_s: float = QUOTA_PATIENCE_S) -> None:
        """``concurrency``: requests in flight at most; ``learned``: the quota to start from;
        ``patience_s``: how long a request may keep meeting 429s (0: the first is final)."""
        self.patience_s = patience_s
        self.max_limit = concurrency
        self.congestion = CongestionLimit(concurrency, start=START_CONCURRENCY, clock=clock)
        self.in_flight = 0
        self.sent = 0
        self.answered = 0
        self.throttled = 0  # 429s
        self.slowdowns = 0  # 429 bursts that lowered the limit
        self.errors = 0  # 5xx answers and connection errors
        self.quota_waits = 0  # times everybody waited for the quota's window to turn
        self.window = QuotaWindow(learned)
        self.budget = SlidingBudget(max_requests_per_minute, _BUDGET_WINDOW_S) \
            if max_requests_per_minute else None
        self._clock = clock
        self._cond = threading.Condition()
        self._urgent = 0  # requests waiting to be sent again after a 429: they go first
        self._answered_before = 0  # by earlier loads, with nothing said of a quota (restore)

    @property
    def limit(self) -> int:
        """Requests that may be in flight now (the congestion limit)."""
        return self.congestion.limit

    # ---- the gate ----------------------------------------------------------------------------
    def acquire(self, *, urgent: bool = False) -> Sent:
        """Wait until a request may go; returns when it went, for its latency. Raises
        :class:`GivenUp` instead, unsent, once this thread's :func:`given_up_when` event is set
        and the limiter woken."""
        give_up: threading.Event | None = getattr(_giving_up, "event", None)
        with self._cond:
            if urgent:
                self._urgent += 1
            try:
                while True:
                    if give_up is not None and give_up.is_set():
                        # Others may wait behind it (every request waits behind one sent again
                        # after a 429): they look again.
                        self._cond.notify_all()
                        raise GivenUp("gave up waiting to send: the request is no longer wanted")
                    wait = self._wait_s(urgent)
                    if wait == 0:
                        sent_at = float(self._clock())
                        self.in_flight += 1
                        self.sent += 1
                        self.window.sent(sent_at)
                        if self.budget:
                            self.budget.sent()
                        return Sent(sent_at, self.in_flight)
                    self._cond.wait(timeout=wait)
            finally:
                if urgent:
                    self._urgent -= 1

    def wake(self) -> None:
        """Wake every waiting request to look again (one may have been given up)."""
        with self._cond:
            self._cond.notify_all()

    def _wait_s(self, urgent: bool) -> float | None:
        """0 if a request may go now, else how long to wait (None: until an answer)."""
        if self._urgent and not urgent:
            return None
        if self.in_flight >= self.limit:
            return None
        now = self._clock()
        waits = [self.window.wait_s(now, self.in_flight)]
        if self.budget:
            waits.append(self.budget.wait_s(now))
        if any(w is None for w in waits):
            return None
        return max(w for w in waits if w is not None)

    def release(self, status: int | None, headers: Any = None, sent: Sent | None = None,
                retry_after_s: float | None = None) -> None:
        """A request ended: ``status`` None for a connection error."""
        headers = headers or {}
        sent_at = sent.at if sent is not None else None
        with self._cond:
            now = self._clock()
            self.in_flight -= 1
            if sent_at is not None:
                self.window.ended(sent_at)
            if self.budget:
                self.budget.answered(now)
            limit, spent, unsure = self.limit, self.window.remaining == 0, self.window.unsure
            if status == 429:
                self.throttled += 1
                self._on_429(now, retry_after_s, headers, sent_at)
            elif status is not None:
                self.answered += 1
                self.window.answered(headers, now, self.in_flight, sent_at)
                if status >= 500:
                    self._on_error()
                elif status < 400 and sent is not None:
                    self.congestion.answered(now - sent.at, sent.in_flight,
                                             ceiling=self._until_quota_known())
            else:
                self._on_error()
            # Wake as many waiters as slots were freed, not all of them: with several batches'
            # pools waiting, waking every thread on every answer made the 50 x 100 full load
            # 1.4x slower. Requests sent again after a 429 go first, a window that turned lets
            # many go, and so does a 429 found to be a stray (the waiters woken while it was
            # unsure waited again): then all re-check.
            if self._urgent or spent and self.window.remaining != 0 \
                    or unsure and not self.window.unsure:
                self._cond.notify_all()
            else:
                self._cond.notify(1 + max(0, self.limit - limit))

    def _on_429(self, now: float, retry_after_s: float | None, headers: Any,
                sent_at: float | None) -> None:
        delay = _NO_RETRY_AFTER_S if retry_after_s is None else retry_after_s
        if self.congestion.backed_off(0.5, burst_s=min(delay, 1.0)):
            self.slowdowns += 1
            log.info("429 from the API: %d requests in flight at most now", self.limit)
        was_waiting = self.window.reset_at is not None
        self.window.throttled(delay, headers, now, sent_at)
        if self.window.reset_at is not None and not was_waiting:
            self.quota_waits += 1
            log.info("the API's quota is spent: everybody waits %.1f s (%s)", delay,
                     self.describe() or "quota not yet known")

    def _on_error(self) -> None:
        """A 5xx or a connection error (a timeout, a dropped connection): fewer in flight."""
        self.errors += 1
        if self.congestion.backed_off(_ERROR_BACKOFF):
            log.info("server error or no answer: %d requests in flight at most now", self.limit)

    def _until_quota_known(self) -> int:
        """The most in flight while the API has said nothing of a quota: the requests in
        flight when one first runs out all meet 429s (``ANSWERS_PER_SLOT_UNTIL_QUOTA_KNOWN``)."""
        if self.window.known:
            return self.max_limit
        answered = self.answered + self._answered_before
        return max(START_CONCURRENCY, answered // ANSWERS_PER_SLOT_UNTIL_QUOTA_KNOWN)

    # ---- what it learned ---------------------------------------------------------------------
    def restore(self, learned: Quota | None, pace: Pace | None = None) -> None:
        """Start from what an earlier load learned (unless this one learned something): the
        API's quota, and the pace it reached (its answers count toward the rise while no
        quota is known: a re-load of a workspace whose first load met no quota starts fast)."""
        with self._cond:
            if learned is not None and self.window.quota is None:
                self.window = QuotaWindow(learned)
                log.info("pacing to the quota the last load learned: %s", learned.describe())
            if pace is not None and not self.sent:
                self.congestion.restore(pace)
                self._answered_before = pace.answered

    def pace(self) -> Pace | None:
        """What this load learned of the server's pace; None after a 429 (the next load then
        rises from the start again, as far as no quota is known)."""
        with self._cond:
            if self.throttled:
                return None
            answered = min(self.answered + self._answered_before, _PACE_ANSWERS_KEPT)
            return self.congestion.pace(answered)

    @property
    def quota(self) -> Quota | None:
        return self.window.quota

    def describe(self) -> str | None:
        """The quota learned, for the log and the progress line."""
        return self.window.quota.describe() if self.window.quota else None


def _pause(seconds: float) -> None:
    """Sleep, or less if this thread's requests give up meanwhile (:func:`given_up_when`)."""
    give_up: threading.Event | None = getattr(_giving_up, "event", None)
    if give_up is None:
        time.sleep(seconds)
    else:
        give_up.wait(seconds)


class LimitedAdapter(HTTPAdapter):
    """A pooled, thread-safe :class:`HTTPAdapter` that sends through a :class:`RequestLimiter`,
    and sends a request again after a 429 (the quota's wait) without using up its retries."""

    def __init__(self, limiter: RequestLimiter, pool_maxsize: int) -> None:
        super().__init__(pool_connections=4, pool_maxsize=pool_maxsize)
        self.limiter = limiter

    def send(self, request: PreparedRequest, *args: Any, **kwargs: Any) -> Response:
        deadline = time.monotonic() + self.limiter.patience_s
        urgent = False
        while True:
            response = self._send_once(request, urgent, *args, **kwargs)
            if response.status_code != 429 or time.monotonic() >= deadline:
                return response
            # Wait out the 429 (everybody does, when the quota is spent), then go first.
            delay = retry_delay_s(response.headers)
            _pause(min(delay if delay is not None else _NO_RETRY_AFTER_S,
                       max(0.0, deadline - time.monotonic())))
            urgent = True

    def _send_once(self, request: PreparedRequest, urgent: bool, *args: Any,
                   **kwargs: Any) -> Response:
        sent = self.limiter.acquire(urgent=urgent)
        status: int | None = None
        headers: Any = None
        delay: float | None = None
        try:
            response = super().send(request, *args, **kwargs)
            if not kwargs.get("stream"):
                response.content  # noqa: B018 - read the body (and free the connection) in the slot
            status, headers = response.status_code, response.headers
            if status == 429:
                delay = retry_delay_s(headers)
            return response
        finally:
            self.limiter.release(status, headers, sent, delay)
