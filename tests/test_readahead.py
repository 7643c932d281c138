"""Answers read ahead (``onepin_source.readahead``) through a real client and the simulator:
taken once instead of sent again, waited for while in flight, never kept when they failed,
and nothing sent ahead once stopped."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from onepin_sim import Simulator
from onepin_source.client import OnepinClient
from onepin_source.config import resolve_credentials
from onepin_source.errors import OnepinNotFoundError
from onepin_source.readahead import ReadAhead, Stopped
from tests.helpers import waiting


def client_of(sim: Simulator) -> OnepinClient:
    return OnepinClient(resolve_credentials(sim.api_key, sim.base_url, None), read_ahead=True)


def read_ahead(client: OnepinClient, work: Any) -> threading.Thread:
    """Run ``work(ahead_client)`` as the source does, in the read-ahead's own thread."""
    assert client.read_ahead is not None
    ahead = client.reading_ahead()
    return client.read_ahead.start(lambda: work(ahead))


def finished(thread: threading.Thread) -> None:
    thread.join(10)
    assert not thread.is_alive()


def first_run(sim: Simulator, client: OnepinClient) -> tuple[str, str]:
    workflow_id = sim.world.workflow_id(0)
    run = next(iter(client.runs_newest_first(workflow_id)))[0]
    return workflow_id, str(run["id"])


def requests_of(sim: Simulator) -> dict[str, int]:
    assert sim.stats.wait_idle()
    counts: dict[str, int] = sim.stats.snapshot()["requests"]
    return counts


def test_an_answer_read_ahead_is_taken_once_instead_of_sent(sim: Simulator) -> None:
    client = client_of(sim)
    workflow_id, run_id = first_run(sim, client)
    sim.stats.reset()
    finished(read_ahead(client, lambda ahead: ahead.run_steps(workflow_id, run_id,
                                                              include_result=True)))
    assert requests_of(sim) == {"steps": 1}
    steps = client.run_steps(workflow_id, run_id, include_result=True)
    assert requests_of(sim) == {"steps": 1}  # taken, not sent
    assert steps and client.run_steps(workflow_id, run_id, include_result=True) == steps
    assert requests_of(sim) == {"steps": 2}  # taken once: the second is sent
    # Another request (other parameters) is not the one read ahead.
    finished(read_ahead(client, lambda ahead: ahead.run_steps(workflow_id, run_id,
                                                              include_result=True)))
    client.run_steps(workflow_id, run_id, include_result=False)
    assert requests_of(sim) == {"steps": 4}


def test_a_request_still_in_flight_ahead_is_waited_for_not_sent_again(sim: Simulator) -> None:
    client = client_of(sim)
    workflow_id, run_id = first_run(sim, client)
    sim.stats.reset()
    sim.set_faults(latency_ms=300)
    assert client.read_ahead is not None
    thread = read_ahead(client, lambda ahead: ahead.run_steps(workflow_id, run_id,
                                                              include_result=True))
    deadline = time.monotonic() + 10
    while client.read_ahead.registered < 1:  # registered before it is sent
        assert time.monotonic() < deadline
        time.sleep(0.001)
    client.read_ahead.stop()  # the extract begins: nothing more is sent ahead
    steps = client.run_steps(workflow_id, run_id, include_result=True)
    finished(thread)
    sim.set_faults(latency_ms=0)
    assert requests_of(sim) == {"steps": 1}
    assert [s["id"] for s in steps] == [
        s["id"] for s in client.run_steps(workflow_id, run_id, include_result=True)]


def test_what_failed_ahead_is_sent_again_and_meets_its_error_there(sim: Simulator) -> None:
    client = client_of(sim)
    workflow_id = sim.world.workflow_id(0)
    missing = "00000000-0000-4000-8000-000000000000"
    sim.stats.reset()
    failed: list[BaseException] = []

    def work(ahead: OnepinClient) -> None:
        try:
            ahead.run(workflow_id, missing)
        except OnepinNotFoundError as exc:
            failed.append(exc)

    finished(read_ahead(client, work))
    assert len(failed) == 1
    with pytest.raises(OnepinNotFoundError, match="404"):
        client.run(workflow_id, missing)
    assert requests_of(sim) == {"run": 2}  # the 404 was not kept: the extract asked itself


def test_nothing_is_sent_ahead_once_stopped(sim: Simulator) -> None:
    client = client_of(sim)
    workflow_id, run_id = first_run(sim, client)
    assert client.read_ahead is not None
    ahead = client.reading_ahead()
    client.read_ahead.stop()
    sim.stats.reset()
    with pytest.raises(Stopped):
        ahead.run_steps(workflow_id, run_id, include_result=True)
    assert requests_of(sim) == {}


def test_a_request_waiting_its_turn_ahead_gives_up_when_the_load_ends(sim: Simulator) -> None:
    """A read-ahead request waiting for a slot (or a quota's window) when the load ends (the
    read-ahead dropped) is never sent, and its thread ends at once; the extract's own request
    is unaffected."""
    client = OnepinClient(resolve_credentials(sim.api_key, sim.base_url, None), concurrency=1,
                          read_ahead=True)
    workflow_id, run_id = first_run(sim, client)
    assert client.read_ahead is not None
    sim.stats.reset()
    held = client.limiter.acquire()  # the one slot is taken: the request ahead waits
    thread = read_ahead(client, lambda ahead: ahead.run_steps(workflow_id, run_id,
                                                              include_result=True))
    waiting(client.limiter, 1)
    assert thread.is_alive() and client.read_ahead.registered == 1
    client.read_ahead.stop(drop=True)  # the load ended (Pieces.stop_reading_ahead(drop=True))
    finished(thread)
    client.limiter.release(200, {}, held)
    assert requests_of(sim) == {}
    assert client.run_steps(workflow_id, run_id, include_result=True)
    assert requests_of(sim) == {"steps": 1}


def test_answers_not_taken_are_dropped_by_the_next_read_ahead() -> None:
    ahead = ReadAhead()
    first = ahead.open()
    ahead.fetch(("/a", ()), lambda: "a", first)
    ahead.fetch(("/b", ()), lambda: "b", first)
    assert ahead.take(("/b", ())) == "b"
    second = ahead.open()  # the piece after: what the last one left is dropped
    assert (ahead.take(("/a", ())), ahead.take(("/b", ()))) == (None, None)
    ahead.open()
    with pytest.raises(Stopped):  # a request of an older read-ahead is refused
        ahead.fetch(("/c", ()), lambda: "c", second)


def test_a_request_taken_is_never_sent_ahead_after() -> None:
    ahead = ReadAhead()
    generation = ahead.open()
    assert ahead.take(("/a", ())) is None  # the extract sends it itself
    with pytest.raises(Stopped):
        ahead.fetch(("/a", ()), lambda: "a", generation)


def test_at_most_so_many_answers_are_held() -> None:
    ahead = ReadAhead(most=2)
    generation = ahead.open()
    ahead.fetch(("/a", ()), lambda: "a", generation)
    ahead.fetch(("/b", ()), lambda: "b", generation)
    with pytest.raises(Stopped):
        ahead.fetch(("/c", ()), lambda: "c", generation)
    assert ahead.take(("/a", ())) == "a"


def test_a_failed_answer_is_not_kept() -> None:
    ahead = ReadAhead()
    generation = ahead.open()

    def fail() -> Any:
        raise ConnectionError("cut")

    with pytest.raises(ConnectionError):
        ahead.fetch(("/a", ()), fail, generation)
    assert ahead.take(("/a", ())) is None
