"""What a worker process owns: a crawl's rules read once, however many of its jobs ask at once."""

from __future__ import annotations

import asyncio

import pytest
from redis.asyncio import Redis

from crawlfleet.scheduler.control import seed_crawl
from crawlfleet.shared.crawl import CrawlSpec
from crawlfleet.shared.errors import UnknownCrawl
from crawlfleet.shared.settings import Settings
from crawlfleet.workers.context import WorkerContext

# a crawl whose first jobs are many: one seed on each of this many hosts
SEED_HOSTS = 300


async def spec_reads(redis: Redis) -> int:
    """HGETs Redis has run since its statistics were reset (a spec is read with one)."""
    stats = await redis.info("commandstats")
    return int(stats.get("cmdstat_hget", {}).get("calls", 0))


async def seed_many_hosts(redis: Redis, settings: Settings, crawl_id: str) -> None:
    seeds = [f"http://127.0.{h // 250}.{2 + h % 250}:9/p/0.html" for h in range(SEED_HOSTS)]
    spec = CrawlSpec(crawl_id=crawl_id, seeds=seeds, depth=1, allow_private=True)
    await seed_crawl(redis, settings, spec)


async def test_first_jobs_of_a_crawl_share_one_read_of_its_rules(
    worker: WorkerContext, settings: Settings, redis: Redis
) -> None:
    """A crawl's first jobs, asking for its rules all at once, wait for one read of its spec
    and one scope over its seeds, and all get those same rules."""
    await seed_many_hosts(redis, settings, "many")
    await redis.config_resetstat()
    rules = await asyncio.gather(*(worker.rules_for("many") for _ in range(SEED_HOSTS)))
    assert await spec_reads(redis) == 1
    assert all(r is rules[0] for r in rules)
    assert len(rules[0].spec.seeds) == SEED_HOSTS
    assert await worker.rules_for("many") is rules[0]
    assert await spec_reads(redis) == 1


async def test_a_cancelled_job_leaves_the_read_to_the_others(
    worker: WorkerContext, settings: Settings, redis: Redis
) -> None:
    """A job cancelled while the rules are read (its deadline, a shutdown) cancels only its
    own wait: the jobs that asked beside it get the rules of that same read."""
    await seed_many_hosts(redis, settings, "cut")
    await redis.config_resetstat()
    first = asyncio.create_task(worker.rules_for("cut"))
    second = asyncio.create_task(worker.rules_for("cut"))
    await asyncio.sleep(0)  # both wait on the read now
    first.cancel()
    rules = await second
    with pytest.raises(asyncio.CancelledError):
        await first
    assert rules.spec.crawl_id == "cut"
    assert await spec_reads(redis) == 1


async def test_a_failed_read_is_raised_to_every_job_and_tried_again(
    worker: WorkerContext, redis: Redis
) -> None:
    """A crawl with no spec fails every job that asked together, and the next job reads
    again rather than getting the old failure."""
    results = await asyncio.gather(
        *(worker.rules_for("nothing") for _ in range(5)), return_exceptions=True
    )
    assert all(isinstance(r, UnknownCrawl) for r in results)
    await redis.config_resetstat()
    with pytest.raises(UnknownCrawl):
        await worker.rules_for("nothing")
    assert await spec_reads(redis) == 1
