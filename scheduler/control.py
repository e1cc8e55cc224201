"""Creating, seeding and cancelling crawls."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from redis.asyncio import Redis

from shared.crawl import CrawlSpec
from shared.errors import CrawlNotRunning, UnknownCrawl
from shared.jobs import CRAWL_PAGE, job_payload, now_ms, page_job_id
from shared.keys import CRAWLS_INDEX, JOB_KEY_PREFIX, CrawlKeys
from shared.scripts import Scripts
from shared.settings import Settings
from shared.urls import fingerprint


@dataclass(frozen=True)
class SeedResult:
    """What seeding did: whether the crawl is new, and how many seeds were queued."""

    created: bool
    queued: int


async def seed_crawl(redis: Redis, settings: Settings, spec: CrawlSpec) -> SeedResult:
    """Create the crawl (or add seeds to it while it runs) and queue the seeds at depth 0."""
    keys = CrawlKeys(spec.crawl_id)
    now = now_ms()
    args: list[Any] = [
        spec.crawl_id,
        spec.model_dump_json(),
        datetime.now(UTC).isoformat(),
        now,
        settings.job_expiry_s * 1000,
        spec.max_pages or 0,
        JOB_KEY_PREFIX,
    ]
    for url in spec.seeds:
        fp = fingerprint(url)
        job_id = page_job_id(spec.crawl_id, fp, 0)
        args += [fp, job_id, job_payload(CRAWL_PAGE, (spec.crawl_id, url, 0, None), now)]
    status, queued = await Scripts.register(redis).seed(
        keys=[keys.meta, CRAWLS_INDEX, keys.seen, keys.pending, keys.stats, settings.queue_name],
        args=args,
    )
    if status < 0:
        raise CrawlNotRunning(f"crawl {spec.crawl_id!r} has ended; seed a new crawl id")
    return SeedResult(created=status == 1, queued=int(queued))


async def cancel_crawl(redis: Redis, settings: Settings, crawl_id: str) -> int:
    """Cancel a running crawl; returns the number of queued jobs dropped."""
    keys = CrawlKeys(crawl_id)
    dropped = int(
        await Scripts.register(redis).cancel(
            keys=[keys.meta, keys.pending, settings.queue_name],
            args=[datetime.now(UTC).isoformat(), JOB_KEY_PREFIX],
        )
    )
    if dropped == -1:
        raise UnknownCrawl(f"no crawl with id {crawl_id!r}")
    if dropped == -2:
        raise CrawlNotRunning(f"crawl {crawl_id!r} is not running")
    return dropped
