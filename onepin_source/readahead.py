"""The next piece's answers, fetched while the current piece is committed.

Between two pieces of a checkpointed load (:mod:`onepin_source.pieces`) dlt normalizes and
loads a package, and nothing is fetched: at 50 ms a request, the 1,000 x 3 first load spent
~0.3 s a piece, 14 times, with nothing in flight. So once a piece is extracted (its package and
state saved), ``run_load`` calls :meth:`~onepin_source.pieces.Pieces.extracted`: the next
piece's workflows are reserved and read ahead in the background: the same listing code, on a
throwaway copy of their marks, and the steps of the runs it hands on. Every answer waits here,
keyed by path and parameters; the next extract runs the same code on the real state, makes the
same requests, and takes the answers (waiting for one still in flight) instead of sending them.

Nothing is written to the load state ahead, so what is committed is exactly what a load without
read-ahead commits. When the next extract begins (or the load ends), nothing more is sent ahead;
a request the read-ahead has not sent is sent by the extract, so a request that succeeds is sent
once. A request that fails ahead (an exception, or an answer ``keep`` refuses: an HTTP error)
leaves nothing to take: the extract sends it again and meets the error where it is handled. At
most :data:`~onepin_source.settings.READ_AHEAD_ANSWERS` answers are held (a piece may be one
huge workflow); the extract fetches the rest. Each read-ahead drops what the last one left.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from typing import Any

from onepin_source.settings import READ_AHEAD_ANSWERS

log = logging.getLogger(__name__)
Key = tuple[str, tuple[tuple[str, str], ...]]


class Stopped(Exception):
    """Raised to a read-ahead request once the extract it read ahead for has begun, the load
    has ended, a newer read-ahead has begun, or enough answers are held."""


def request_key(path: str, params: Mapping[str, Any] | None) -> Key:
    return path, tuple(sorted((name, str(value)) for name, value in (params or {}).items()))


class ReadAhead:
    """Answers fetched ahead, each taken at most once (thread-safe)."""

    def __init__(self, keep: Callable[[Any], bool] = lambda answer: True,
                 most: int = READ_AHEAD_ANSWERS, wake: Callable[[], None] = lambda: None) -> None:
        """``keep``: whether an answer may be taken (else it is sent again); ``wake``: wakes the
        requests waiting for their turn, to see their generation dropped."""
        self._keep = keep
        self._most = most
        self._wake = wake
        self._lock = threading.Lock()
        self._answers: dict[Key, Future[Any]] = {}
        self._open = False
        # The current read-ahead's generation: set when what it sends is no longer wanted (the
        # load ended, a newer read-ahead began); its requests still waiting for their turn then
        # give up, unsent (onepin_source.throttle.given_up_when).
        self._generation = threading.Event()
        self.registered = 0  # requests sent ahead, in all (for tests and logs)

    def open(self) -> threading.Event:
        """Begin a read-ahead: drop what the last one left; returns its generation, which
        its requests give :meth:`fetch` (a request of an older one is refused) and which is set
        once they are no longer wanted."""
        with self._lock:
            self._answers.clear()
            self._open = True
            self._generation.set()  # the last one's requests waiting for their turn give up
            generation = self._generation = threading.Event()
        self._wake()
        return generation

    def start(self, work: Callable[[], None]) -> threading.Thread:
        """Run ``work`` (which sends through :meth:`fetch`) in a thread of its own."""
        thread = threading.Thread(target=self._run, args=(work,), name="onepin-ahead", daemon=True)
        thread.start()
        return thread

    def stop(self, *, drop: bool = False) -> None:
        """Send nothing more ahead; answers in flight still arrive and can be taken, unless
        ``drop``ped (the load has ended, or nobody will ask for them): then the requests still
        waiting for their turn give up (their generation is set)."""
        with self._lock:
            self._open = False
            if drop:
                self._answers.clear()
                self._generation.set()
        if drop:
            self._wake()

    def fetch(self, key: Key, send: Callable[[], Any], generation: threading.Event) -> Any:
        """Send a request ahead (``send``) and keep its answer; raises :class:`Stopped` when
        nothing more is sent ahead. The same request asked twice ahead is sent once."""
        with self._lock:
            if not self._open or generation is not self._generation \
                    or len(self._answers) >= self._most:
                raise Stopped
            future = self._answers.get(key)
            mine = future is None
            if future is None:
                future = self._answers[key] = Future()
                self.registered += 1
        if not mine:
            return future.result()
        try:
            answer = send()
        except BaseException as exc:
            with self._lock:  # a failure is not kept: the extract sends the request itself
                if self._answers.get(key) is future:
                    del self._answers[key]
            future.set_exception(exc)
            raise
        future.set_result(answer)
        return answer

    @property
    def idle(self) -> bool:
        """Nothing is being read ahead and nothing is held: no request need look here (read
        without the lock: only :meth:`open` makes it false, between extracts)."""
        return not self._open and not self._answers

    def take(self, key: Key) -> Any | None:
        """The answer fetched ahead for this request (waiting for it if in flight), or None.
        Nothing more is sent ahead from here: a request taken is never sent ahead after."""
        with self._lock:
            self._open = False
            future = self._answers.pop(key, None)
        if future is None:
            return None
        try:
            answer = future.result()
        except Exception:  # noqa: BLE001 - failed ahead: the caller sends it again
            return None
        return answer if self._keep(answer) else None

    def _run(self, work: Callable[[], None]) -> None:
        try:
            work()
        except Stopped:
            pass
        except Exception as exc:  # noqa: BLE001 - the extract fetches what is missing
            log.debug("reading ahead stopped: %s", exc)
