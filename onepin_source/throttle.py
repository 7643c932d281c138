"""One pause for every worker: a 429 from the API holds back all requests, not just its own.

dlt's retrying session already waits ``Retry-After`` before retrying the request that got the
429; with many workers sharing one key, the others would keep hitting the limit meanwhile. The
adapter below is mounted on the shared session: before sending it waits out the pause, and a 429
(or 503) with ``Retry-After`` or ``X-RateLimit-Reset`` extends the pause for everybody.
"""

from __future__ import annotations

import logging
import threading
import time
from email.utils import parsedate_to_datetime
from typing import Any

from requests import PreparedRequest, Response
from requests.adapters import HTTPAdapter

log = logging.getLogger(__name__)
MAX_PAUSE_S = 60.0  # the official SDK's cap on Retry-After


class SharedPause:
    """A monotonic deadline before which no request is sent."""

    def __init__(self, clock: Any = time.monotonic, sleep: Any = time.sleep) -> None:
        self._clock = clock
        self._sleep = sleep
        self._until = 0.0
        self._lock = threading.Lock()
        self.pauses = 0  # how many responses asked for a pause (for progress and benchmarks)

    def hold(self, seconds: float) -> None:
        with self._lock:
            self.pauses += 1
            self._until = max(self._until, self._clock() + min(seconds, MAX_PAUSE_S))

    def wait(self) -> None:
        while (remaining := self._until - self._clock()) > 0:
            self._sleep(remaining)


class PacedAdapter(HTTPAdapter):
    """An :class:`HTTPAdapter` that honours a :class:`SharedPause` (thread-safe, pooled)."""

    def __init__(self, pause: SharedPause, pool_maxsize: int) -> None:
        super().__init__(pool_connections=4, pool_maxsize=pool_maxsize)
        self.pause = pause

    def send(self, request: PreparedRequest, *args: Any, **kwargs: Any) -> Response:
        self.pause.wait()
        response = super().send(request, *args, **kwargs)
        if response.status_code in (429, 503):
            delay = retry_delay_s(response.headers)
            if delay:
                log.info("API asked to slow down (%s); pausing all requests %.1f s",
                         response.status_code, delay)
                self.pause.hold(delay)
        return response


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
