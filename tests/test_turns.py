"""Fetch turns: a worker's requests answered at once, and how late ones give theirs up."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from crawlfleet.shared.errors import NoTurn
from crawlfleet.workers.turns import YIELD_FACTOR, FetchTurns


async def until(condition: Callable[[], bool], timeout: float = 60.0) -> None:
    """Wait for ``condition`` (checked every 5 ms), failing after ``timeout`` seconds."""
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.005)


async def fetch_in_turn(turns: FetchTurns, answered: asyncio.Event) -> None:
    """A request in one of the turns that waits until ``answered``."""
    async with turns.turn():
        await answered.wait()


async def answer_quickly(turns: FetchTurns, times: int) -> None:
    for _ in range(times):
        async with turns.turn():
            await asyncio.sleep(0.001)


async def test_a_late_request_gives_its_turn_to_a_waiting_job_one_for_each() -> None:
    """With every turn held by requests long unanswered (hosts that never answer), a job
    waiting for a turn gets one from the late request held longest, long before any would
    park on its own: one parks for each job that waits, the others keep their turns until a
    job comes."""
    turns = FetchTurns(2, park_after_s=4.0, max_parked=10)
    await answer_quickly(turns, 5)  # what the worker's requests usually take
    never, done = asyncio.Event(), asyncio.Event()
    slow = [asyncio.create_task(fetch_in_turn(turns, never)) for _ in range(2)]
    await asyncio.sleep(0)
    assert turns._turns.locked()
    jobs = [asyncio.create_task(fetch_in_turn(turns, done))]
    await until(lambda: turns.parked == 1)
    await asyncio.sleep(0)
    assert turns._turns.locked() and not jobs[0].done()  # the job holds the turn given up
    # the other slow request is late already: the next job that waits gets its turn at once
    jobs.append(asyncio.create_task(fetch_in_turn(turns, done)))
    await until(lambda: turns.parked == 2)
    assert not any(t.done() for t in slow)
    done.set()
    await asyncio.gather(*jobs)
    never.set()
    await asyncio.gather(*slow)
    assert turns.parked == 0 and turns.ever_parked == 2


async def test_requests_as_slow_as_usual_keep_their_turns() -> None:
    """On a crawl whose requests all take about as long, none is late: a job waiting for a
    turn waits for one to be answered, and nothing parks before ``park_after_s``."""
    turns = FetchTurns(2, park_after_s=1.0, max_parked=10)
    usual = 0.15  # over a tenth of park_after_s: the average decides here
    assert YIELD_FACTOR * usual < 1.0

    async def usual_request() -> None:
        async with turns.turn():
            await asyncio.sleep(usual)

    await asyncio.gather(*(usual_request() for _ in range(12)))
    assert turns.ever_parked == 0


async def test_with_no_request_answered_yet_none_is_late() -> None:
    """Before any request has been answered the worker knows nothing of how long they take:
    the first ones keep their turns up to ``park_after_s``, and a job that waits meanwhile
    gets one when they park."""
    turns = FetchTurns(1, park_after_s=1.0, max_parked=10)
    never = asyncio.Event()
    first = asyncio.create_task(fetch_in_turn(turns, never))
    await asyncio.sleep(0)
    parked_at_turn: list[int] = []

    async def waiting_job() -> None:
        async with turns.turn():
            parked_at_turn.append(turns.ever_parked)

    await waiting_job()
    assert parked_at_turn == [1]  # its turn came from the first request parking
    never.set()
    await first


async def test_no_late_request_to_park_for_a_waiting_job_at_max_parked() -> None:
    """At ``max_parked`` a late request keeps its turn: a job that waits for one gives up
    after its wait (NoTurn), to be run again."""
    turns = FetchTurns(1, park_after_s=0.5, max_parked=0)
    await answer_quickly(turns, 3)
    never = asyncio.Event()
    held = asyncio.create_task(fetch_in_turn(turns, never))
    await until(lambda: turns._turns.locked())
    with pytest.raises(NoTurn):
        async with turns.turn():
            pass
    assert turns.ever_parked == 0
    never.set()
    await held
