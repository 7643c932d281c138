"""Run several generators at once in threads and yield their items as they come.

The runs of many workflows are listed concurrently (their requests go through the client's
request limiter like every other); a bounded queue keeps memory to a few pages however many runs
a workflow has. An error in any generator stops the others and is raised to the consumer.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")
_DONE = object()
_PUT_POLL_S = 0.1  # how often a blocked producer looks whether the consumer has gone


class _Failed:
    def __init__(self, error: BaseException) -> None:
        self.error = error


def interleave(jobs: Sequence[Callable[[], Iterator[T]]], *, threads: int,
               buffer: int = 8) -> Iterator[T]:
    """Items of every ``job()`` generator, run ``threads`` at a time, in arrival order."""
    if not jobs:
        return
    items: queue.Queue[Any] = queue.Queue(maxsize=buffer)
    stop = threading.Event()

    def put(item: Any) -> bool:
        while not stop.is_set():
            try:
                items.put(item, timeout=_PUT_POLL_S)
                return True
            except queue.Full:
                continue
        return False

    def run(job: Callable[[], Iterator[T]]) -> None:
        if stop.is_set():  # the consumer has gone: start nothing new
            return
        try:
            for item in job():
                if not put(item):
                    return
        except BaseException as error:  # noqa: BLE001 - handed to the consumer
            put(_Failed(error))
        finally:
            put(_DONE)

    with ThreadPoolExecutor(max_workers=min(threads, len(jobs)),
                            thread_name_prefix="onepin-runs") as pool:
        for job in jobs:
            pool.submit(run, job)
        try:
            done = 0
            while done < len(jobs):
                item = items.get()
                if item is _DONE:
                    done += 1
                elif isinstance(item, _Failed):
                    raise item.error
                else:
                    yield item
        finally:
            stop.set()
