"""Creating, seeding and cancelling crawls."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from redis.asyncio import Redis

from shared.crawl import CrawlSpec
from shared.errors import CrawlNotRunning, UnknownCrawl
from shared.jobs import CRAWL_PAGE, job_payload, now_ms, page_job_id
from shared.keys import ABORT_JOBS, CRAWLS_INDEX, IN_PROGRESS_KEY_PREFIX, JOB_KEY_PREFIX, CrawlKeys
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
        spec.max_pages or 0,
        JOB_KEY_PREFIX,
    ]
    for url in spec.seeds:
        fp = fingerprint(url)
        job_id = page_job_id(spec.crawl_id, fp, 0)
        args += [fp, job_id, job_payload(CRAWL_PAGE, (spec.crawl_id, url, 0, None), now)]
    status, queued = await Scripts.register(redis).seed(
        keys=[
            keys.meta,
            CRAWLS_INDEX,
            keys.seen,
            keys.pending,
            keys.stats,
            settings.queue_name,
            keys.parked,
        ],
        args=args,
    )
    if status < 0:
        raise CrawlNotRunning(f"crawl {spec.crawl_id!r} has ended; seed a new crawl id")
    return SeedResult(created=status == 1, queued=int(queued))


@dataclass(frozen=True)
class CancelResult:
    """What cancelling did: queued jobs dropped, running jobs asked to abort."""

    dropped: int
    aborted: int


def _check(code: int, crawl_id: str, wanted: str) -> int:
    if code == -1:
        raise UnknownCrawl(f"no crawl with id {crawl_id!r}")
    if code == -2:
        raise CrawlNotRunning(f"crawl {crawl_id!r} is not {wanted}")
    return code


async def cancel_crawl(redis: Redis, settings: Settings, crawl_id: str) -> CancelResult:
    """Cancel a running or paused crawl: drop its queued jobs, abort its running ones."""
    keys = CrawlKeys(crawl_id)
    dropped, aborted = await Scripts.register(redis).cancel(
        keys=[keys.meta, keys.pending, settings.queue_name, keys.parked, keys.tries, ABORT_JOBS],
        args=[datetime.now(UTC).isoformat(), JOB_KEY_PREFIX, IN_PROGRESS_KEY_PREFIX, now_ms()],
    )
    _check(int(dropped), crawl_id, "running or paused")
    return CancelResult(dropped=int(dropped), aborted=int(aborted))


async def pause_crawl(redis: Redis, settings: Settings, crawl_id: str) -> int:
    """Hold a running crawl: its queued jobs are parked; returns how many."""
    keys = CrawlKeys(crawl_id)
    parked = await Scripts.register(redis).pause(
        keys=[keys.meta, keys.pending, settings.queue_name, keys.parked],
        args=[IN_PROGRESS_KEY_PREFIX],
    )
    return _check(int(parked), crawl_id, "running")


async def resume_crawl(redis: Redis, settings: Settings, crawl_id: str) -> int:
    """Release a paused crawl: its parked jobs are queued again; returns how many."""
    keys = CrawlKeys(crawl_id)
    queued = await Scripts.register(redis).resume(
        keys=[keys.meta, keys.parked, settings.queue_name], args=[now_ms()]
    )
    return _check(int(queued), crawl_id, "paused")
