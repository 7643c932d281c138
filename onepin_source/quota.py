"""The API's per-key quota, learned from its answers, and a budget of our own.

The Onepin API has a per-key quota (API-key objects carry ``rate_limit_per_min``; the docs'
example is 1000) whose window and headers are not documented (``docs/api.md``). So the quota is
learned while loading:

- **from headers**, before any 429: ``X-RateLimit-Limit/-Remaining/-Reset`` (``Reset`` in Unix
  seconds, or seconds from now when small), the IETF draft's ``RateLimit-Policy: "p";q=100;w=60``
  and ``RateLimit: "p";r=42;t=30``, and the older draft's ``RateLimit-Limit/-Remaining/-Reset``.
  Each answer says how many requests are left and when the window frees them: when none are
  left, nobody sends until then.
- **from 429s alone** (``Retry-After`` or ``X-RateLimit-Reset``): a streak of 429s (five in
  a row, in the order their requests were sent; four while a window is counted, as many as it
  keeps in flight) says the window is spent and when it ends; a
  lone 429 is a stray (an API shedding load) and teaches nothing. The load's first window gives
  a guess at the count (it may span two windows); the next window seen whole (it begins when a
  wait ends) is counted with few requests in flight (:attr:`QuotaWindow.counting`), and its
  200s are the count. From then on each window gets that many requests at full speed; when they
  are spent, one request at a time goes (at the window's end, once its length is known) until
  the window turns (its answer is a 200 again) or a 429 says how long to wait.

What was learned (:class:`Quota`) is kept in the pipeline's state, so the next load starts paced.

``--max-requests-per-minute N`` is a budget of our own for a key shared with other users: never
more than N requests in any 60 s, counting a request from when it is sent until 60 s after its
answer (so the server, which counts it somewhere in between, never sees more than N in any 60 s).
"""

from __future__ import annotations

import contextlib
import logging
import math
import re
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any

from onepin_source.settings import (
    COUNTING_IN_FLIGHT,
    MAX_RETRY_DELAY_S,
    SPENT_AFTER_429S,
    WHOLE_SECONDS_WITHIN_S,
)

log = logging.getLogger(__name__)

# X-RateLimit-Reset below this is seconds from now (GitHub-style APIs send Unix seconds, others
# a delta); a Unix time is above 1e9 since 2001.
_RESET_IS_DELTA_BELOW = 1e9
_DRAFT_PARAM = re.compile(r";\s*([a-z]+)\s*=\s*(\d+(?:\.\d+)?)")


@dataclass(frozen=True)
class Quota:
    """What the API allows one key: ``limit`` requests per ``window_s`` seconds."""

    limit: int
    window_s: float | None  # None: not seen yet (a 429 told the count, not yet the length)
    source: str  # "headers" or "429"

    def describe(self) -> str:
        window = f"{self.window_s:.0f} s" if self.window_s else "window not yet known"
        return f"{self.limit} requests per {window} (learned from {self.source})"

    def as_state(self) -> dict[str, Any]:
        return {"limit": self.limit, "window_s": self.window_s, "source": self.source}

    @classmethod
    def from_state(cls, value: Any) -> Quota | None:
        if not isinstance(value, Mapping) or not isinstance(value.get("limit"), int):
            return None
        window = value.get("window_s")
        return cls(value["limit"], float(window) if window else None,
                   str(value.get("source") or "429"))


@dataclass(frozen=True)
class HeaderQuota:
    """What one answer's rate-limit headers say (any field may be missing)."""

    limit: int | None = None
    remaining: int | None = None
    reset_s: float | None = None  # seconds from now until the window frees requests
    window_s: float | None = None

    @property
    def seen(self) -> bool:
        return self.limit is not None or self.remaining is not None


def header_quota(headers: Mapping[str, str], now: float | None = None) -> HeaderQuota:
    """The quota in ``headers``: ``X-RateLimit-*``, IETF ``RateLimit``/``RateLimit-Policy`` or
    the older draft's ``RateLimit-Limit/-Remaining/-Reset``."""
    now = time.time() if now is None else now
    policy = _draft_params(headers.get("RateLimit-Policy"))
    current = _draft_params(headers.get("RateLimit"))
    limit = _int(headers.get("X-RateLimit-Limit")) or _int(headers.get("RateLimit-Limit")) \
        or _int(policy.get("q")) or _int(current.get("limit"))
    remaining = _first_int(headers.get("X-RateLimit-Remaining"),
                           headers.get("RateLimit-Remaining"), current.get("r"),
                           current.get("remaining"))
    reset = _float(headers.get("X-RateLimit-Reset"))
    if reset is not None and reset >= _RESET_IS_DELTA_BELOW:
        reset = max(0.0, reset - now)
    if reset is None:
        reset = _float(headers.get("RateLimit-Reset")) or _float(current.get("t")) \
            or _float(current.get("reset"))
    return HeaderQuota(limit, remaining, reset, _float(policy.get("w")))


def retry_delay_s(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """Seconds a 429 asks us to wait: ``Retry-After`` (seconds or an HTTP date), else the
    quota headers' reset; capped like the official SDK (60 s)."""
    now = time.time() if now is None else now
    value = (headers.get("Retry-After") or "").strip()
    delay: float | None = None
    if value.isdigit():
        delay = float(value)
    elif value:
        try:
            delay = max(0.0, parsedate_to_datetime(value).timestamp() - now)
        except (TypeError, ValueError):
            delay = None
    if delay is None:
        delay = header_quota(headers, now).reset_s
    return None if delay is None else min(delay, MAX_RETRY_DELAY_S)


def _draft_params(value: str | None) -> dict[str, str]:
    """``q``/``w``/``r``/``t`` of the IETF draft's ``"policy";q=100;w=60``, or the older
    draft's ``limit=100, remaining=50, reset=5``."""
    if not value:
        return {}
    found = dict(_DRAFT_PARAM.findall(";" + value.split(",")[0]))
    found.update(re.findall(r"(limit|remaining|reset)\s*=\s*(\d+)", value))
    return found


def _float(value: Any) -> float | None:
    try:
        return float(str(value).strip()) if value is not None else None
    except ValueError:
        return None


def _int(value: Any) -> int | None:
    number = _float(value)
    return int(number) if number is not None else None


def _first_int(*values: Any) -> int | None:
    return next((n for n in map(_int, values) if n is not None), None)


class SlidingBudget:
    """At most ``limit`` requests in any ``window_s``: a request counts from its sending until
    ``window_s`` after its answer."""

    def __init__(self, limit: int, window_s: float) -> None:
        self.limit = limit
        self.window_s = window_s
        self._answered: deque[float] = deque()
        self._in_flight = 0

    def wait_s(self, now: float) -> float | None:
        """0 if a request may go now, else seconds to wait (None: until an answer)."""
        while self._answered and self._answered[0] <= now - self.window_s:
            self._answered.popleft()
        if self._in_flight + len(self._answered) < self.limit:
            return 0.0
        if not self._answered:
            return None
        return self._answered[0] + self.window_s - now

    def sent(self) -> None:
        self._in_flight += 1

    def answered(self, now: float) -> None:
        self._in_flight -= 1
        self._answered.append(now)


class QuotaWindow:
    """The API's window as far as we know it (not thread-safe: the limiter holds its lock).

    ``remaining`` None: no count known, send freely; N: N requests left; 0: spent, so one
    request at a time asks whether the window turned. ``reset_at``: everybody waits until then.

    From 429s alone, a count is *confirmed* by a window seen whole: one that began when a wait
    ended (``Retry-After`` is never early, so none of the window before is in it) and was spent.
    Until then the count is a guess (the load's first window may have begun before the load,
    or the count spans two windows), and :attr:`counting` asks the limiter to keep few requests
    in flight: the 429s that end a window are the requests then in flight."""

    def __init__(self, learned: Quota | None) -> None:
        self.quota = learned
        self.confirmed = learned is not None and (learned.source == "headers"
                                                  or learned.window_s is not None)
        self.remaining: int | None = learned.limit if learned else None
        self.reset_at: float | None = None
        self._headers = learned is not None and learned.source == "headers"
        self._ends: float | None = None  # when the headers last said the window turns
        # When each request answered since the last wait ended (or the load began) was sent.
        self._sends: list[float] = []
        self._first_429: float | None = None  # when the first 429 of the last streak came back
        # A count was just taken: late answers to requests sent before this add to it
        self._cutoff: float | None = None
        self._began: float | None = None  # when the window began (a wait ended, a probe)
        self._whole = False  # it began when a wait ended: none of our requests were in it yet
        self._lengths: list[float] = []  # the lengths of the windows seen whole
        self._whole_seconds = True  # every wait a 429 asked for was in whole seconds
        self._streak = 0  # 429s in a row, in the order their requests were sent
        self._streak_sent = 0.0  # when the first request of the streak was sent
        self._streak_last = 0.0  # when the last request of the streak was sent
        self._flying: list[float] = []  # when each request now in flight was sent
        self._probing = False  # a request went alone to ask whether the window turned

    @property
    def known(self) -> bool:
        """The API has said something of its quota: headers, a spent window, an earlier load."""
        return self.quota is not None or self._headers

    @property
    def counting(self) -> bool:
        """The count from 429s is not confirmed yet: few requests in flight (:meth:`wait_s`)."""
        return self.quota is not None and not self.confirmed and self.reset_at is None

    @property
    def unsure(self) -> bool:
        """A 429 came back and the answers in flight have not yet told whether the window is
        spent or it was a stray: nobody sends meanwhile (:meth:`wait_s`)."""
        return bool(self._streak) and self.reset_at is None

    def wait_s(self, now: float, in_flight: int) -> float | None:
        """0 if a request may go now, else seconds to wait (None: until an answer)."""
        if self.reset_at is not None:
            if now < self.reset_at:
                return self.reset_at - now
            self._reopen(self.reset_at)
        if self.unsure and in_flight:
            return None  # a 429 came back: spent or a stray? The answers in flight tell
        if self.counting and in_flight >= COUNTING_IN_FLIGHT:
            return None
        if self.remaining is None or self.remaining > 0:
            return 0.0
        if in_flight:
            return None
        # Spent: one request asks whether the window turned, once its learned length is over
        # (earlier, it would only meet a 429).
        ends = self._window_end()
        return max(0.0, (now if ends is None else ends) - now)

    def _reopen(self, at: float) -> None:
        """The wait is over: with headers, one request asks what is left; from 429s alone, the
        window holds the count learned, or is counted (:attr:`counting`)."""
        log.debug("the wait is over; %s answered since the window before began",
                  len(self._sends))
        self.reset_at = None
        self._began = at
        self._whole = True
        self._streak = 0
        self._restart_count()
        self._cutoff = None
        if self._headers:
            self.remaining = 1
        else:
            self.remaining = self.quota.limit if self.quota and self.confirmed else None

    def sent(self, at: float | None = None) -> None:
        """A request goes (sent ``at``: then :meth:`ended` must follow its answer)."""
        if at is not None:
            self._flying.append(at)
        if self.remaining is not None and self.remaining > 0:
            self.remaining -= 1
        elif self.remaining == 0:
            self._probing = True  # sent alone (wait_s): the next answer is its

    def _window_end(self) -> float | None:
        """When the current window ends, if its beginning and the length are known."""
        if self._began is None or self.quota is None or not self.quota.window_s:
            return None
        return self._began + self.quota.window_s

    def ended(self, sent_at: float) -> None:
        """The request sent at ``sent_at`` is no longer in flight (any answer, or none)."""
        with contextlib.suppress(ValueError):
            self._flying.remove(sent_at)

    def _gap(self) -> bool:
        """A request sent between the streak's first and last is still in flight: until it
        tells, the streak may be strays answered out of order."""
        return any(self._streak_sent < s < self._streak_last for s in self._flying)

    def _restart_count(self, *sends: float) -> None:
        self._sends = list(sends)
        self._first_429 = None

    def answered(self, headers: Mapping[str, str], now: float, others_in_flight: int,
                 sent_at: float | None = None) -> None:
        """A request (sent at ``sent_at``) got an answer other than a 429."""
        sent = now if sent_at is None else sent_at
        if sent >= self._streak_sent:  # sent before the streak's requests: it does not break it
            self._streak = 0
        seen = header_quota(headers)
        if seen.seen:
            self._from_headers(seen, now, others_in_flight)
            return
        if self.reset_at is not None:
            # Sent before the window's first 429 came back, answered after the window was found
            # spent: it was in its count.
            if self.quota is not None and self._cutoff is not None and sent < self._cutoff:
                self.quota = Quota(self.quota.limit + 1, self.quota.window_s, "429")
            return
        self._sends.append(sent)
        if self._first_429 is not None and sent > self._first_429:
            self._first_429 = None  # sent after the 429 came back, and through: a stray 429
        if self.counting and self.remaining is None and self._whole and self.quota is not None \
                and len(self._sends) > self.quota.limit:
            # The window being counted holds more than the guess: its streak was strays
            # (random 429s, five in a row), not a quota. Forget it; full speed again.
            log.info("more than %d requests since the wait got through: no quota after all",
                     self.quota.limit)
            self.quota = None
        probe, self._probing = self._probing, False
        if probe and self.quota is not None:
            # One request beyond the count got through: a new window (the probe went once the
            # learned length was over, or right away while it is not known). A probe that
            # waited for the window's end keeps the phase: the window began at that end (or a
            # whole number of windows after it), not when this answer came back, a round trip
            # later window after window (at 40 requests per 2 s the probes drifted 50 ms a
            # window, until one came a window late). The probe went alone, so the window it
            # waited for is still the one recorded.
            log.debug("a probe got through: a new window")
            due, length = self._window_end(), self.quota.window_s
            self._began = due + (sent - due) // length * length \
                if due is not None and length and sent >= due else now
            self._whole = False  # it began late by up to the probe's wait: its length is not
            self._restart_count(sent)
            self.remaining = max(0, self.quota.limit - 1)

    def throttled(self, delay_s: float, headers: Mapping[str, str], now: float,
                  sent_at: float | None = None) -> None:
        """A 429 that asks to wait ``delay_s``. The window is spent when the headers say so,
        when the probe sent once the count learned was used up meets it, or when five 429s come
        in a row (in the order the requests were sent, none sent among them still in flight);
        then everybody waits. Any other 429 is a stray: only its own request waits. (An API
        that sheds load now and then answers stray 429s; taking each for a spent window, as a
        429 with no other request in flight was before, learned quotas of 3 per second.)

        The window's count is the requests answered since the window began (or the load) that
        were sent before the first 429 of the streak came back; a request sent after it that
        gets through makes it a stray. The load's first window gives a guess: it may have
        begun before the load, or turned while requests were in flight. A window seen whole
        gives the count (when it holds fewer than the guess, or is being counted) and a length
        (the mean of those seen whole: ``Retry-After`` is in whole seconds)."""
        sent = now if sent_at is None else sent_at
        self._whole_seconds = self._whole_seconds and float(delay_s).is_integer()
        self._streak_sent = sent if not self._streak else min(self._streak_sent, sent)
        self._streak_last = sent if not self._streak else max(self._streak_last, sent)
        self._streak += 1
        probe, self._probing = self._probing, False
        first = now if self._first_429 is None else self._first_429
        self._first_429 = first
        seen = header_quota(headers)
        if seen.seen:
            self._from_headers(seen, now, 0)
        elif self.reset_at is None:
            # A window being counted has a count guessed: as many 429s in a row as it keeps
            # in flight end it (five would take one more request, and one more 429).
            needed = COUNTING_IN_FLIGHT if self.counting else SPENT_AFTER_429S
            streak = self._streak >= needed and not self._gap()
            if not (streak or probe and self.remaining == 0):
                log.debug("a stray 429 (%s left, %s answered)", self.remaining, len(self._sends))
                return
            counted = sum(1 for s in self._sends if s < first)
            log.debug("spent: %s left, %s answered, streak %s", self.remaining, counted,
                      self._streak)
            if self.quota is None:
                if counted > 0:
                    self.quota = Quota(counted, None, "429")
                    self._cutoff = first
            elif self._whole and self._began is not None and self.quota.source == "429":
                self._lengths.append(now + delay_s - self._began)
                limit = self.quota.limit
                # Counted, or spent by a streak before its count was used (the count was too
                # long). Not when the count was used and the probe met a 429: a stray among the
                # count's own requests would shorten it by one, window after window.
                if counted and (not self.confirmed or streak and counted < limit):
                    limit, self._cutoff = counted, first
                self.quota = Quota(limit, self._length(), "429")
                self.confirmed = True
        self.remaining = 0
        self.reset_at = max(self.reset_at or 0.0, now + delay_s)

    def _length(self) -> float:
        """The window's length: the mean of the windows seen whole. Each is measured from a
        wait's end to a 429's asked wait, both late by up to a second when ``Retry-After`` is
        in whole seconds, so one is off by up to a second either way; the length is then taken
        in whole seconds, rounded down unless the mean is within a quarter second below the
        next (6.2 s and 6.4 s are 6 s, 5.8 s and 6.8 s are 6 s and 7 s). A length learned long
        sends the probe late every window and the load falls a window behind now and then,
        learning nothing more (40 per 2 s learned as 2.6 s: 1.29x the floor); short, the probe
        meets one 429 a window and waits its ``Retry-After``, and each such window is measured
        whole, so the mean comes closer."""
        mean = sum(self._lengths) / len(self._lengths)
        if not self._whole_seconds:
            return mean
        return float(max(1, math.floor(mean + WHOLE_SECONDS_WITHIN_S)))

    def _from_headers(self, seen: HeaderQuota, now: float, others_in_flight: int) -> None:
        """Trust the server's count, less the requests of ours it may not have counted yet."""
        self._headers = True
        if seen.limit is not None:
            longest = max(seen.reset_s or 0.0, (self.quota.window_s if self.quota else 0) or 0)
            self.quota = Quota(seen.limit, seen.window_s or longest or None, "headers")
        ends = now + seen.reset_s if seen.reset_s is not None else None
        if seen.remaining is not None:
            left = max(0, seen.remaining - others_in_flight)
            same = ends is not None and self._ends is not None and abs(ends - self._ends) < 1.0
            self.remaining = min(self.remaining, left) \
                if same and self.remaining is not None else left
        self._ends = ends
        if self.remaining == 0 and ends is not None:
            self.reset_at = max(self.reset_at or 0.0, ends)
