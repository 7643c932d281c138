"""How long the simulated API takes to answer: latency profiles (``--latency-profile``).

No real API answers in constant time, so a limiter tuned on a constant one proves little. Each
profile is a distribution around ``median_ms`` (seeded, so a run can be repeated):

- ``constant``: always the median (plus the older ``--jitter-ms``, uniform, if set);
- ``uniform``: evenly from half the median to one and a half times it;
- ``lognormal``: a heavy tail, ``median * exp(sigma * N(0, 1))`` with ``sigma`` 0.8 (the
  mean is 1.38x the median, one answer in twenty takes 3.7x it);
- ``bimodal``: half the answers at 0.6x the median and half at 1.6x (each +-10%), as a cache
  hit and a miss (24 and 64 ms at a 40 ms median);
- ``saturating``: a server with ``capacity`` workers, each answer taking the median (+-10%) of
  a worker's time: with more requests in flight than workers the rest queue (first come, first
  served) and every answer slows down in proportion, as a server at its limit does.

:meth:`Latency.service_s` draws one answer's time; :meth:`Latency.serve` spends it (waiting
for a worker first, when saturating) in the thread handling the request.
"""

from __future__ import annotations

import math
import random
import threading
import time
from dataclasses import dataclass

PROFILES = ("constant", "uniform", "lognormal", "bimodal", "saturating")
LOGNORMAL_SIGMA = 0.8
BIMODAL_MODES = (0.6, 1.6)
DEFAULT_CAPACITY = 16  # workers of the saturating server


@dataclass(frozen=True)
class LatencySpec:
    """A profile and its parameters, as the simulator's flags give them."""

    profile: str = "constant"
    median_ms: float = 0.0
    jitter_ms: float = 0.0  # constant only: a uniform 0..jitter added (the older flag)
    capacity: int = DEFAULT_CAPACITY
    sigma: float = LOGNORMAL_SIGMA

    def __post_init__(self) -> None:
        if self.profile not in PROFILES:
            raise ValueError(f"unknown latency profile {self.profile!r}; one of "
                             f"{', '.join(PROFILES)}")
        if self.capacity < 1:
            raise ValueError(f"capacity must be at least 1, not {self.capacity}")

    @property
    def mean_ms(self) -> float:
        """The mean answer time (unloaded, for ``saturating``)."""
        factor = {"lognormal": math.exp(self.sigma ** 2 / 2),
                  "bimodal": sum(BIMODAL_MODES) / len(BIMODAL_MODES)}.get(self.profile, 1.0)
        return self.median_ms * factor + (self.jitter_ms / 2 if self.profile == "constant" else 0)


class Latency:
    """Draws answer times from a :class:`LatencySpec` (thread-safe)."""

    def __init__(self, spec: LatencySpec, seed: int = 0) -> None:
        self.spec = spec
        self._rng = random.Random(f"latency:{seed}")
        self._lock = threading.Lock()
        self._workers = threading.BoundedSemaphore(spec.capacity) \
            if spec.profile == "saturating" else None

    def service_s(self) -> float:
        """One answer's time at the server, in seconds (without any queueing)."""
        spec, median = self.spec, self.spec.median_ms
        with self._lock:
            rng = self._rng
            if spec.profile == "constant":
                ms = median + (rng.uniform(0, spec.jitter_ms) if spec.jitter_ms else 0.0)
            elif spec.profile == "uniform":
                ms = rng.uniform(0.5 * median, 1.5 * median)
            elif spec.profile == "lognormal":
                ms = median * math.exp(spec.sigma * rng.gauss(0.0, 1.0))
            elif spec.profile == "bimodal":
                ms = median * rng.choice(BIMODAL_MODES) * rng.uniform(0.9, 1.1)
            else:  # saturating: a worker's time
                ms = median * rng.uniform(0.9, 1.1)
        return ms / 1000

    def serve(self) -> None:
        """Spend one answer's time (after waiting for a free worker, when saturating)."""
        seconds = self.service_s()
        if self._workers is None:
            if seconds > 0:
                time.sleep(seconds)
            return
        with self._workers:
            time.sleep(seconds)
