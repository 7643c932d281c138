"""How many requests may be in flight: a limit that follows what the server can take.

More requests in flight buy more answers a second as long as the server answers them as fast as
it answers a few; once it is at its limit they only queue there, and every answer gets slower in
proportion. So the limit is judged by how the answers' latency compares with the server's own
latency when we barely load it (the *baseline*), never by one round against the fastest answer
ever seen: a server whose answers vary by 2x on their own (every real one) would look loaded
all the time.

- **Windows.** Answers are judged in windows of at least :data:`WINDOW_ANSWERS`, or as many as
  the limit. A window's latency is the mean of its fastest 95% (:func:`trimmed_mean`):
  one answer from a heavy tail moves a plain mean a lot and this one little, and the two modes
  of a bimodal server average out where a median would jump between them.
- **The baseline** is the same statistic over :data:`PROBE_ANSWERS` answers to requests sent
  with at most :data:`PROBE_IN_FLIGHT` in flight: the server's latency with us barely loading
  it. Such answers come on their own (a quota-bound phase, a load's tail; not a load's first
  answers, which also pay for new connections); when
  none have for :data:`PROBE_INTERVAL_S` (or when the limit first rises past its start, or
  soon after it fell on latency), a *probe* holds the limit at ``PROBE_IN_FLIGHT`` until they
  have (Envoy's adaptive concurrency re-measures its baseline at low concurrency
  the same way, as BBR's ProbeRTT does). A baseline taken at high concurrency would drift up
  with the very queue it should reveal; one re-measured keeps up with a server that became
  slower for everybody (a probe that finds the latency moved by more than ``GROW_BELOW``
  forgets the answers before it). Until the first, the windows at the starting limit (8) stand
  in; the first probe comes when the limit first rises past it, while few are in flight.
- **The pace** a load reached (:class:`Pace`: limit, baseline, answers) is kept in the state,
  and the next load starts from it (:meth:`CongestionLimit.restore`).
- **The step**, per window, from ``ratio = window / baseline``: below :data:`GROW_BELOW` the
  limit rises, by a quarter while the ratio stays under 1.1 and by one after (only if the
  window kept three quarters of the limit in flight: a client short of work learns nothing of
  the server); two windows in a row above :data:`SHRINK_ABOVE` lower it to
  ``limit * GROW_BELOW / ratio`` (at most halved): queueing latency grows with the requests in
  flight, so that is about where the queue is gone, and one slow window is noise where two are
  a queue; in between it holds. Only answers to requests sent a round trip (the baseline) after
  the limit last moved count: the queue a change makes or drains takes that long to show.
- **Errors** lower it whatever the latency (:meth:`CongestionLimit.backed_off`), once per
  burst: a 429 halves it (:mod:`onepin_source.throttle`), a 5xx or a connection error (a
  timeout) takes a quarter off.

``cap`` (``--concurrency``) is never passed; a ``ceiling`` given with an answer bounds the rise
(the limiter's while no quota is known).
"""

from __future__ import annotations

import logging
import math
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from onepin_source.settings import (
    BASELINE_ANSWERS,
    GROW_BELOW,
    PROBE_AFTER_LOWERED_S,
    PROBE_ANSWERS,
    PROBE_IN_FLIGHT,
    PROBE_INTERVAL_S,
    SHRINK_ABOVE,
    START_CONCURRENCY,
    WINDOW_ANSWERS,
)

log = logging.getLogger(__name__)
_TRIMMED = 0.05  # the slowest twentieth of a window is left out of its latency
_STEADY = 1.1  # a window within this of the baseline: latency holds, the limit rises fast
_BUSY = 0.75  # a window whose requests went with less of the limit in flight is no reason to rise


def trimmed_mean(latencies: Sequence[float]) -> float:
    """The mean of the fastest 95% (all of them when there are fewer than twenty)."""
    ordered = sorted(latencies)
    kept = ordered[:max(1, len(ordered) - math.floor(len(ordered) * _TRIMMED))]
    return sum(kept) / len(kept)


@dataclass(frozen=True)
class Pace:
    """What a load learned of the server, for the next to start from: the limit it reached, the
    baseline latency, and how many answers came without the API saying anything of a quota
    (the limiter's rise while no quota is known counts them: :mod:`onepin_source.throttle`)."""

    limit: int
    baseline_s: float
    answered: int

    def as_state(self) -> dict[str, Any]:
        return {"limit": self.limit, "baseline_s": self.baseline_s, "answered": self.answered}

    @classmethod
    def from_state(cls, value: Any) -> Pace | None:
        if not isinstance(value, Mapping):
            return None
        limit, baseline, answered = (value.get(k) for k in ("limit", "baseline_s", "answered"))
        if not (isinstance(limit, int) and isinstance(baseline, int | float)
                and isinstance(answered, int)) or limit < 1 or baseline <= 0:
            return None
        return cls(limit, float(baseline), answered)


class CongestionLimit:
    """The congestion limit of one client (not thread-safe: the limiter holds its lock)."""

    def __init__(self, cap: int, *, start: int = START_CONCURRENCY,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.cap = cap
        self._start = min(start, cap)
        self._limit = float(self._start)
        self._clock = clock
        self._window: list[float] = []
        self._window_in_flight = 0  # the in-flight counts its requests were sent at, summed
        # Latencies of the last answers to requests sent with few in flight, and how many of
        # them came since the baseline was last measured
        self._low: deque[float] = deque(maxlen=BASELINE_ANSWERS)
        self._low_new = 0
        self.baseline: float | None = None  # seconds
        self._measured_at: float | None = None  # when the baseline was last measured
        self._lowered_since = False  # the limit fell on latency since then
        self._first_windows: list[float] = []  # until the first probe, at the starting limit
        self._slow = False  # the last window judged was above SHRINK_ABOVE
        self._changed_at = -math.inf  # when the limit last moved: earlier requests tell nothing
        self._probing = False
        self._burst_until = 0.0
        self.lowered = 0  # windows that lowered the limit on latency
        self.probes = 0

    @property
    def limit(self) -> int:
        """Requests that may be in flight now."""
        limit = max(1, int(self._limit))
        return min(limit, PROBE_IN_FLIGHT) if self._probing else limit

    def pace(self, answered: int) -> Pace | None:
        """What to start the next load from (None before any baseline)."""
        if self.baseline is None:
            return None
        return Pace(max(1, int(self._limit)), self.baseline, answered)

    def restore(self, pace: Pace) -> None:
        """Start where an earlier load left off: its limit and baseline (a probe re-measures
        it within :data:`PROBE_INTERVAL_S`, sooner if answers are slower now)."""
        self._limit = float(min(self.cap, max(1, pace.limit)))
        self._start = max(self._start, int(self._limit))
        self.baseline = pace.baseline_s
        self._measured_at = self._clock()

    def answered(self, latency_s: float, in_flight_at_send: int, *,
                 ceiling: int | None = None) -> None:
        """An answer (not an error) came ``latency_s`` after its request was sent with
        ``in_flight_at_send`` requests in flight, itself included."""
        now = self._clock()
        # Not before the first window: a load's first answers also pay for new connections
        if in_flight_at_send <= PROBE_IN_FLIGHT and self.baseline is not None:
            self._low.append(latency_s)
            self._low_new += 1
            if self._low_new >= PROBE_ANSWERS:
                self._measure(now)
                return
        settled = self._changed_at + (self.baseline or 0.0)
        if self._probing or now - latency_s < settled:
            # sent before the limit moved, or within a round trip of it while the queue it
            # makes (or drains) builds, or while a probe drains the queue
            return
        self._window.append(latency_s)
        self._window_in_flight += in_flight_at_send
        if len(self._window) >= max(WINDOW_ANSWERS, self.limit):
            self._judge(now, ceiling)

    def backed_off(self, factor: float, *, burst_s: float = 1.0) -> bool:
        """An error said the server has too much: the limit times ``factor``, once per burst
        (errors within ``burst_s`` of the first are the same burst). True if it fell."""
        now = self._clock()
        if now < self._burst_until:
            return False
        self._burst_until = now + burst_s
        before = self.limit
        self._limit = max(1.0, math.floor(self._limit * factor))
        self._changed_at = now
        self._window.clear()  # sent before the limit fell
        self._window_in_flight = 0
        return self.limit < before

    def _measure(self, now: float) -> None:
        """Enough answers at low concurrency: the new baseline; a probe ends."""
        latest = trimmed_mean(list(self._low)[-self._low_new:])
        pooled = trimmed_mean(self._low)
        if pooled > 0 and not 1 / GROW_BELOW <= latest / pooled <= GROW_BELOW:
            # the server's own latency moved (it is slower or faster for everybody): what
            # came before no longer says what it is
            for _ in range(len(self._low) - self._low_new):
                self._low.popleft()
            pooled = latest
        self.baseline = pooled
        self._measured_at = now
        self._low_new = 0
        self._lowered_since = False
        if self._probing:
            self._probing = False
            self._changed_at = now
            self._window.clear()
            self._window_in_flight = 0

    def _judge(self, now: float, ceiling: int | None) -> None:
        window, latency = self._window, trimmed_mean(self._window)
        busy = self._window_in_flight / len(window) >= _BUSY * self.limit
        self._window = []
        self._window_in_flight = 0
        if self._measured_at is None and self._limit <= self._start:
            # nothing at low concurrency yet: the windows at the starting limit stand in
            self._first_windows = [*self._first_windows, *window][-BASELINE_ANSWERS:]
            self.baseline = trimmed_mean(self._first_windows)
        if self.baseline is None:  # fell below its start before a first window: wait for one
            return
        ratio = latency / self.baseline if self.baseline > 0 else 1.0
        top = self.cap if ceiling is None else min(self.cap, ceiling)
        before = self._limit
        if ratio < GROW_BELOW and busy and self._limit < top:
            # by a quarter while latency holds, by one once it begins to rise
            step = self._limit * 0.25 if ratio < _STEADY else 0.0
            self._limit = min(top, self._limit + max(1.0, step))
            self._changed_at = now
        elif ratio > SHRINK_ABOVE and self._slow and self._limit > 1:
            self._limit = max(1.0, self._limit * max(0.5, GROW_BELOW / ratio))
            self._changed_at = now
            self.lowered += 1
            self._lowered_since = True
        self._slow = ratio > SHRINK_ABOVE and self._limit == before
        if self.limit > PROBE_IN_FLIGHT and self._probe_due(now):
            self._probing = True
            self._changed_at = now
            self.probes += 1
        log.debug("window of %d: %.1f ms, %.2fx the baseline %.1f ms; limit %.1f -> %.1f%s",
                  len(window), 1000 * latency, ratio, 1000 * self.baseline, before,
                  self._limit, ", probing" if self._probing else "")

    def _probe_due(self, now: float) -> bool:
        """Time to measure the baseline: the limit has left its start (the first probe, cheap
        there: few are in flight), or it was measured long ago, or the limit fell on latency
        since (the server may have become slower for everybody)."""
        if self._measured_at is None:  # at the cap from the start (--concurrency 8 or less)
            return self._limit > self._start or self._limit >= self.cap
        age = now - self._measured_at
        return age >= PROBE_INTERVAL_S or self._lowered_since and age >= PROBE_AFTER_LOWERED_S
