"""The simulated clock: frozen until advanced, so every answer is reproducible."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

# The simulated world begins here; runs are spread forward from it.
EPOCH = datetime(2026, 1, 5, tzinfo=UTC)
EPOCH_MS = int(EPOCH.timestamp() * 1000)


class SimClock:
    """Milliseconds since the Unix epoch, moved only by :meth:`advance` or :meth:`set`."""

    def __init__(self, now_ms: int) -> None:
        self._now_ms = now_ms
        self._lock = threading.Lock()

    @property
    def now_ms(self) -> int:
        with self._lock:
            return self._now_ms

    def advance(self, seconds: float) -> int:
        if seconds < 0:
            raise ValueError("the simulated clock only moves forward")
        with self._lock:
            self._now_ms += int(seconds * 1000)
            return self._now_ms

    def set(self, now_ms: int) -> None:
        with self._lock:
            self._now_ms = now_ms


def iso_ms(ms: int) -> str:
    """Format epoch milliseconds as the API does: ISO-8601 UTC with a ``Z``."""
    dt = datetime.fromtimestamp(ms / 1000, tz=UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def parse_iso_ms(text: str) -> int | None:
    """Parse an ISO-8601 datetime that carries a UTC offset; None if naive or malformed."""
    try:
        dt = datetime.fromisoformat(text.replace("Z", "+00:00").replace(" ", "+"))
    except ValueError:
        return None
    if dt.tzinfo is None:
        return None
    return int(dt.timestamp() * 1000)
