"""The next piece's answers, fetched while the current piece is committed.

Between two pieces of a checkpointed load (:mod:`onepin_source.pieces`) dlt normalizes and
loads a package, and nothing is fetched: at 50 ms a request, the 1,000 x 3 first load spent
~0.3 s a piece, 14 times, with nothing in flight. So once a piece's answers are all in, the
source reserves the next piece (:meth:`Pieces.reserve_next`) and reads it ahead in the
background: the same listing code, on a throwaway copy of the workflows'
marks, and the steps of the runs it hands on. Every answer waits here, keyed by path and
parameters; the next extract runs the same code on the real state, makes the same requests, and
takes the answers (waiting for one still in flight) instead of sending them again.

Nothing is written to the load state ahead, so what is committed is exactly what a load without
read-ahead commits. When the next extract begins, the read-ahead sends nothing more (a request
is never sent twice: one not yet sent ahead is sent by the extract); answers not taken are
dropped with the next read-ahead. A request that fails ahead (an exception, or an answer
``keep`` refuses: an HTTP error) leaves nothing to take: the extract sends it itself and meets the
error where it is handled. A killed load loses
what was read ahead with the piece in flight, as it loses that piece.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Hashable
from concurrent.futures import Future
from typing import Any

log = logging.getLogger(__name__)
Key = tuple[str, Hashable]


class Stopped(Exception):
    """Raised to a read-ahead request once the extract it read ahead for has begun."""


def request_key(path: str, params: dict[str, Any] | None) -> Key:
    return path, tuple(sorted((params or {}).items()))


class ReadAhead:
    """Answers fetched ahead, each taken at most once (thread-safe)."""

    def __init__(self, keep: Callable[[Any], bool] = lambda answer: True) -> None:
        self._keep = keep
        self._lock = threading.Lock()
        self._answers: dict[Key, Future[Any]] = {}
        self._open = False
        self.sent = 0  # requests sent ahead, in all

    def start(self, work: Callable[[], None]) -> threading.Thread:
        """Drop what the last read-ahead left and run ``work`` in a thread of its own; its
        requests go through :meth:`fetch`."""
        with self._lock:
            self._answers.clear()
            self._open = True
        thread = threading.Thread(target=self._run, args=(work,), name="onepin-ahead", daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        """Send nothing more ahead (answers in flight still arrive, and can be taken)."""
        with self._lock:
            self._open = False

    def fetch(self, key: Key, send: Callable[[], Any]) -> Any:
        """Send a request ahead (``send``) and keep its answer; raises :class:`Stopped` once
        stopped. The same request asked twice ahead is sent once."""
        with self._lock:
            if not self._open:
                raise Stopped
            future = self._answers.get(key)
            if future is None:
                future = self._answers[key] = Future()
                self.sent += 1
                mine = True
            else:
                mine = False
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

    def take(self, key: Key) -> Any | None:
        """The answer fetched ahead for this request (waiting for it if in flight), or None."""
        with self._lock:
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
