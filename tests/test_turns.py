"""Fetch turns: a worker's requests answered at once, and how late ones give theirs up."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from crawlfleet.shared.errors import NoTurn
from crawlfleet.shared.settings import FETCH_TURN_WAIT_S
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
    """On a crawl whose requests all take about as long, none is late once the worker has
    seen a few: a job waiting for a turn waits for one to be answered."""
    turns = FetchTurns(2, park_after_s=2.0, max_parked=10)
    usual = 0.3  # over a tenth of park_after_s: the average decides here
    assert YIELD_FACTOR * usual < 2.0

    async def usual_request() -> None:
        async with turns.turn():
            await asyncio.sleep(usual)

    # the first ones may park, taken for late until the worker learns what is usual
    await asyncio.gather(*(usual_request() for _ in range(12)))
    learnt = turns.ever_parked
    await asyncio.gather(*(usual_request() for _ in range(12)))
    assert turns.ever_parked == learnt


async def test_before_any_answer_a_request_is_late_after_a_tenth_of_park_after() -> None:
    """Before the worker has seen a request answered, a request that has waited a tenth of
    ``park_after_s`` is late: a job waiting for a turn gets it then, the late request parked,
    long before it would park on its own."""
    # a tenth of it is within a job's wait for a turn; all of it would be past it (NoTurn)
    park_after_s = 30.0
    assert park_after_s / 10 < FETCH_TURN_WAIT_S < park_after_s
    turns = FetchTurns(1, park_after_s=park_after_s, max_parked=10)
    never = asyncio.Event()
    first = asyncio.create_task(fetch_in_turn(turns, never))
    await asyncio.sleep(0)
    async with turns.turn():
        assert turns.ever_parked == 1 and not first.done()
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
