"""Fault injection knobs (all off by default, all seeded) and per-endpoint request accounting."""

from __future__ import annotations

import bisect
import math
import random
import threading
import time
from collections import Counter, deque
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from onepin_sim.latency import DEFAULT_CAPACITY, Latency, LatencySpec


@dataclass
class FaultConfig:
    """What can go wrong, and how often. Shares are probabilities per API request."""

    latency_ms: float = 0.0  # the median answer time (onepin_sim.latency)
    jitter_ms: float = 0.0  # the constant profile only: uniform 0..jitter added
    latency_profile: str = "constant"  # constant, uniform, lognormal, bimodal, saturating
    capacity: int = DEFAULT_CAPACITY  # the saturating server's workers
    share_429: float = 0.0
    retry_after_s: int = 1
    rate_limit_per_min: int = 0  # 0 = unlimited; else requests per key per window
    rate_window_s: int = 60  # the window's length (shorter in tests)
    rate_sliding: bool = False  # a sliding window (any rate_window_s) instead of a fixed one
    # Send the quota on every answer: X-RateLimit-Limit/-Remaining/-Reset and the IETF draft's
    # RateLimit-Policy / RateLimit. Off by default: the real API's headers are unknown.
    rate_limit_headers: bool = False
    share_5xx: float = 0.0
    html_share_of_5xx: float = 0.5
    share_malformed: float = 0.0
    share_dropped: float = 0.0
    odd_steps: float = 0.0  # share of steps served in undocumented shapes (see odd.py)
    record_requests: bool = False  # keep every API request's path and query (/_sim/requests)
    seed: int = 0

    def update(self, values: dict[str, Any]) -> None:
        known = {f.name: f.type for f in fields(self)}
        for name in values:
            if name not in known:
                raise ValueError(f"unknown fault knob {name!r}; known: {', '.join(known)}")
        typed = {name: type(getattr(self, name))(value) for name, value in values.items()}
        # an unknown profile or a capacity under 1 is refused before anything is set
        replace(self, **typed).latency_spec()
        for name, value in typed.items():
            setattr(self, name, value)

    def latency_spec(self) -> LatencySpec:
        return LatencySpec(self.latency_profile, self.latency_ms, self.jitter_ms, self.capacity)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class QuotaState:
    """A key's quota as one request found it: whether it was over, and what the headers say."""

    over: bool
    limit: int
    remaining: int
    reset_s: int  # seconds until the window frees a request (fixed: the window's end)
    window_s: int

    def headers(self) -> dict[str, str]:
        return {"X-RateLimit-Limit": str(self.limit),
                "X-RateLimit-Remaining": str(self.remaining),
                "X-RateLimit-Reset": str(math.ceil(time.time()) + self.reset_s),
                "RateLimit-Policy": f'"default";q={self.limit};w={self.window_s}',
                "RateLimit": f'"default";r={self.remaining};t={self.reset_s}'}


class FaultInjector:
    """Decides, per request, which fault (if any) to inject."""

    def __init__(self, config: FaultConfig) -> None:
        self.config = config
        self._rng = random.Random(config.seed)
        self._lock = threading.Lock()
        self._window: tuple[int, Counter[str]] = (0, Counter())
        self._accepted: dict[str, deque[float]] = {}  # sliding window: accepted requests' times
        self._latency = Latency(config.latency_spec(), config.seed)

    @property
    def latency(self) -> Latency:
        """The answer times of the current configuration (a new one when it changed)."""
        spec = self.config.latency_spec()
        with self._lock:
            if self._latency.spec != spec:
                self._latency = Latency(spec, self.config.seed)
            return self._latency

    def quota(self, key: str) -> QuotaState | None:
        """The key's quota after this request (None: no quota configured). A fixed window
        counts every request since the window began; a sliding one the requests it accepted in
        the last ``rate_window_s``, so a rejected request costs nothing."""
        limit = self.config.rate_limit_per_min
        if limit <= 0:
            return None
        length = max(1, self.config.rate_window_s)
        now = time.time()
        with self._lock:
            if self.config.rate_sliding:
                accepted = self._accepted.setdefault(key, deque())
                while accepted and accepted[0] <= now - length:
                    accepted.popleft()
                over = len(accepted) >= limit
                if not over:
                    accepted.append(now)
                used = len(accepted)
                reset = accepted[0] + length - now if accepted else 0.0
            else:
                window = int(now // length)
                if self._window[0] != window:
                    self._window = (window, Counter())
                self._window[1][key] += 1
                used = self._window[1][key]
                over = used > limit
                reset = length - now % length
        return QuotaState(over, limit, max(0, limit - used), max(1, math.ceil(reset)), length)

    def draw(self) -> str | None:
        """One of ``dropped``, ``429``, ``5xx``, ``malformed`` or None."""
        c = self.config
        with self._lock:
            roll = self._rng.random()
        for name, share in (("dropped", c.share_dropped), ("429", c.share_429),
                            ("5xx", c.share_5xx), ("malformed", c.share_malformed)):
            if roll < share:
                return name
            roll -= share
        return None

    def pick(self, options: tuple[Any, ...]) -> Any:
        with self._lock:
            return self._rng.choice(options)

    def html_body(self) -> bool:
        with self._lock:
            return self._rng.random() < self.config.html_share_of_5xx


class RequestStats:
    """Thread-safe counts of requests per endpoint kind, per status, and of injected faults."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: Counter[str] = Counter()
        self.statuses: Counter[int] = Counter()
        self.faults: Counter[str] = Counter()
        self._times: list[float] = []  # when each request was answered (monotonic), in order
        self._answered: list[float] = []  # the same, for requests not answered 429
        self._in_progress = 0  # API requests being handled (counted when answered)
        self.most_in_flight = 0  # the most API requests handled at once since the last reset
        self._handled_s: list[float] = []  # how long each API request took to answer
        self.paths: list[str] = []  # each API request's path and query, when recorded
        self._idle = threading.Condition(self._lock)

    def begin(self) -> float:
        """An API request arrived; returns when, for :meth:`end`."""
        with self._lock:
            self._in_progress += 1
            self.most_in_flight = max(self.most_in_flight, self._in_progress)
        return time.monotonic()

    def end(self, began: float) -> None:
        with self._lock:
            self._in_progress -= 1
            self._handled_s.append(time.monotonic() - began)
            if not self._in_progress:
                self._idle.notify_all()

    def record(self, path: str) -> None:
        with self._lock:
            self.paths.append(path)

    def wait_idle(self, timeout_s: float = 10.0) -> bool:
        """Wait until no API request is being handled (a killed client's last requests are
        counted once answered, after their latency): True unless ``timeout_s`` passed first."""
        with self._lock:
            return self._idle.wait_for(lambda: not self._in_progress, timeout=timeout_s)

    def count(self, kind: str, status: int, fault: str | None = None) -> None:
        with self._lock:
            self.requests[kind] += 1
            self.statuses[status] += 1
            if fault:
                self.faults[fault] += 1
            now = time.monotonic()
            self._times.append(now)
            if status != 429:
                self._answered.append(now)

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
            self.statuses.clear()
            self.faults.clear()
            self._times.clear()
            self._answered.clear()
            self._handled_s.clear()
            self.paths.clear()
            self.most_in_flight = self._in_progress

    def most_in_any_window(self, window_s: float, *, answered: bool = False) -> int:
        """The most requests (or requests not answered 429) in any ``window_s`` seconds."""
        with self._lock:
            times = list(self._answered if answered else self._times)
        return max((i + 1 - bisect.bisect_right(times, t - window_s, 0, i + 1)
                    for i, t in enumerate(times)), default=0)

    def snapshot(self, window_s: float = 60.0) -> dict[str, Any]:
        most = {"window_s": window_s, "requests": self.most_in_any_window(window_s),
                "answered": self.most_in_any_window(window_s, answered=True)}
        with self._lock:
            handled = sorted(self._handled_s)
            return {"requests": dict(self.requests), "total": sum(self.requests.values()),
                    "answer_ms": {f"p{q}": round(1000 * handled[int(q / 100 * (len(handled) - 1))],
                                                 1) if handled else None for q in (50, 95)},
                    "statuses": {str(k): v for k, v in self.statuses.items()},
                    "faults": dict(self.faults), "most_in_any_window": most,
                    "most_in_flight": self.most_in_flight}
