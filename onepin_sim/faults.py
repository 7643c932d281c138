"""Fault injection knobs (all off by default, all seeded) and per-endpoint request accounting."""

from __future__ import annotations

import math
import random
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass, fields
from typing import Any


@dataclass
class FaultConfig:
    """What can go wrong, and how often. Shares are probabilities per API request."""

    latency_ms: float = 0.0
    jitter_ms: float = 0.0
    share_429: float = 0.0
    retry_after_s: int = 1
    rate_limit_per_min: int = 0  # 0 = unlimited; else requests per key per fixed window
    rate_window_s: int = 60  # the window's length (shorter in tests)
    share_5xx: float = 0.0
    html_share_of_5xx: float = 0.5
    share_malformed: float = 0.0
    share_dropped: float = 0.0
    odd_steps: float = 0.0  # share of steps served in undocumented shapes (see odd.py)
    seed: int = 0

    def update(self, values: dict[str, Any]) -> None:
        known = {f.name: f.type for f in fields(self)}
        for name, value in values.items():
            if name not in known:
                raise ValueError(f"unknown fault knob {name!r}; known: {', '.join(known)}")
            setattr(self, name, type(getattr(self, name))(value))

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class FaultInjector:
    """Decides, per request, which fault (if any) to inject."""

    def __init__(self, config: FaultConfig) -> None:
        self.config = config
        self._rng = random.Random(config.seed)
        self._lock = threading.Lock()
        self._window: tuple[int, Counter[str]] = (0, Counter())

    def latency_s(self) -> float:
        with self._lock:
            jitter = self._rng.uniform(0, self.config.jitter_ms) if self.config.jitter_ms else 0.0
        return (self.config.latency_ms + jitter) / 1000

    def rate_limited(self, key: str) -> int | None:
        """Seconds until the key's window resets if it is over its per-minute limit."""
        limit = self.config.rate_limit_per_min
        if limit <= 0:
            return None
        length = max(1, self.config.rate_window_s)
        now = time.time()
        window = int(now // length)
        with self._lock:
            if self._window[0] != window:
                self._window = (window, Counter())
            self._window[1][key] += 1
            over = self._window[1][key] > limit
        return max(1, math.ceil(length - now % length)) if over else None

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

    def count(self, kind: str, status: int, fault: str | None = None) -> None:
        with self._lock:
            self.requests[kind] += 1
            self.statuses[status] += 1
            if fault:
                self.faults[fault] += 1

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
            self.statuses.clear()
            self.faults.clear()

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {"requests": dict(self.requests), "total": sum(self.requests.values()),
                    "statuses": {str(k): v for k, v in self.statuses.items()},
                    "faults": dict(self.faults)}
