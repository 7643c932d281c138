"""How many requests are in flight, and how a 429 slows every worker down, not just its own.

All requests of a source go through one :class:`RequestLimiter`, applied by the adapter mounted
on the shared session. It works like TCP's congestion control (AIMD):

- at most ``limit`` requests are in flight; the limit starts at the configured concurrency;
- a 429 halves it (once per burst: the requests already in flight may answer 429 too), so every
  worker slows down; each full round of successful answers raises it by one again;
- a 429 while the limit is already 1 means the key's quota is spent: everybody waits the
  ``Retry-After`` (or ``X-RateLimit-Reset``) of that answer before the next request.

The request that got the 429 is retried by dlt's retrying session after its own ``Retry-After``;
it releases its slot meanwhile, so a sporadic 429 costs one request a delay, not the load.
"""

from __future__ import annotations

import logging
import threading
import time
from email.utils import parsedate_to_datetime
from typing import Any

from requests import PreparedRequest, Response
from requests.adapters import HTTPAdapter

from onepin_source.settings import MAX_RETRY_DELAY_S

log = logging.getLogger(__name__)


class RequestLimiter:
    """An adaptive bound on requests in flight, shared by every thread of a source."""

    def __init__(self, concurrency: int, clock: Any = time.monotonic) -> None:
        self.max_limit = concurrency
        self.limit = concurrency
        self.in_flight = 0
        self.slowdowns = 0  # 429s that lowered the limit
        self.pauses = 0  # 429s that paused everybody
        self._clock = clock
        self._paused_until = 0.0
        self._calm_until = 0.0  # 429s before this belong to the burst already acted on
        self._successes = 0
        self._cond = threading.Condition()

    def acquire(self) -> None:
        with self._cond:
            while True:
                wait = self._paused_until - self._clock()
                if wait <= 0 and self.in_flight < self.limit:
                    self.in_flight += 1
                    return
                self._cond.wait(timeout=wait if wait > 0 else None)

    def release(self, status: int | None, retry_after_s: float | None = None) -> None:
        with self._cond:
            self.in_flight -= 1
            freed = 1
            if status == 429:
                self._on_429(retry_after_s if retry_after_s is not None else 1.0)
            elif status is not None and status < 400:
                self._successes += 1
                if self._successes >= self.limit and self.limit < self.max_limit:
                    self.limit += 1
                    self._successes = 0
                    freed = 2
            # Wake as many waiters as slots were freed, not all of them: with several batches'
            # worker pools waiting, waking every thread on every answer costs more than the
            # requests. A waiter that finds a pause waits it out with a timeout.
            self._cond.notify(freed)

    def _on_429(self, retry_after_s: float) -> None:
        now = self._clock()
        self._successes = 0
        if now < self._calm_until:
            return
        delay = min(retry_after_s, MAX_RETRY_DELAY_S)
        self._calm_until = now + min(delay, 1.0)
        if self.limit > 1:
            self.limit = max(1, self.limit // 2)
            self.slowdowns += 1
            log.info("429 from the API: %d requests in flight at most now", self.limit)
        else:
            self._paused_until = max(self._paused_until, now + delay)
            self.pauses += 1
            log.info("429 from the API at one request in flight: everybody waits %.1f s", delay)


class LimitedAdapter(HTTPAdapter):
    """A pooled, thread-safe :class:`HTTPAdapter` that sends through a :class:`RequestLimiter`."""

    def __init__(self, limiter: RequestLimiter, pool_maxsize: int) -> None:
        super().__init__(pool_connections=4, pool_maxsize=pool_maxsize)
        self.limiter = limiter

    def send(self, request: PreparedRequest, *args: Any, **kwargs: Any) -> Response:
        self.limiter.acquire()
        status: int | None = None
        delay: float | None = None
        try:
            response = super().send(request, *args, **kwargs)
            if not kwargs.get("stream"):
                response.content  # noqa: B018 - read the body (and free the connection) in the slot
            status = response.status_code
            if status == 429:
                delay = retry_delay_s(response.headers)
            return response
        finally:
            self.limiter.release(status, delay)


def retry_delay_s(headers: Any, now: float | None = None) -> float | None:
    """Seconds to wait from ``Retry-After`` (seconds or HTTP date) or ``X-RateLimit-Reset``."""
    now = time.time() if now is None else now
    value = headers.get("Retry-After")
    if value:
        value = value.strip()
        if value.isdigit():
            return float(value)
        try:
            return max(0.0, parsedate_to_datetime(value).timestamp() - now)
        except (TypeError, ValueError):
            return None
    reset = headers.get("X-RateLimit-Reset")
    if reset and reset.strip().isdigit():
        return max(0.0, float(reset) - now)
    return None
