"""A worker's jobs waiting for their host, and how many jobs a worker claims meanwhile."""

from __future__ import annotations

import asyncio

from redis.asyncio import Redis

from shared.keys import HostKeys
from shared.settings import Settings
from workers.arq_worker import HELD_BACK, FleetWorker
from workers.politeness import BUSY, Politeness
from workers.worker import build_worker

HOST = "example.org"


async def test_a_slot_given_back_goes_to_the_first_job_waiting_for_it(redis: Redis) -> None:
    """Jobs waiting for a busy host ask again as soon as a job of the same worker gives a slot
    of it back, one waiting job per slot and first come first served, not at their next poll
    (made 1.5 s here; each is woken well within that)."""
    politeness = Politeness(redis, lease_s=30, busy_poll_s=1.5)
    first = politeness.ask(HOST, 1, 0)
    await politeness.take(first)
    waiting = [politeness.ask(HOST, 1, 0) for _ in range(2)]
    second, third = (asyncio.create_task(politeness.take(ask, BUSY)) for ask in waiting)
    await asyncio.sleep(0.05)
    assert politeness.held_back == 2
    await politeness.release(first)
    await asyncio.wait_for(asyncio.shield(second), 1.0)
    assert not third.done()  # one slot given back, one job woken
    assert await redis.zrange(HostKeys(HOST).slots, 0, -1) == [waiting[0].token.encode()]
    await politeness.release(waiting[0])
    await asyncio.wait_for(third, 1.0)
    assert politeness.held_back == 0


async def test_a_worker_claims_fewer_jobs_while_many_are_held_back(settings: Settings) -> None:
    """A worker holds twice its concurrency in jobs, but claims no more than half of that
    less the jobs held back by their host's limits: a one-host crawl does not fill every
    slot with jobs that only wait."""
    worker = build_worker(settings.model_copy(update={"concurrency": 32}))
    assert isinstance(worker, FleetWorker) and worker.max_jobs == 64
    held_back = 0
    worker.ctx[HELD_BACK] = lambda: held_back
    assert worker._wanted() == 32
    worker.job_counter = 50
    assert worker._wanted() == 14
    worker.job_counter, held_back = 20, 25
    assert worker._wanted() == 7
    held_back = 40
    assert worker._wanted() < 0
