"""Creating, seeding, cancelling, pausing and resuming crawls."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from redis.asyncio import Redis

from shared.crawl import CrawlSpec
from shared.errors import CrawlNotRunning, UnknownCrawl
from shared.jobs import CRAWL_PAGE, job_payload, now_ms, page_job_args, page_job_id
from shared.keys import ABORT_JOBS, CRAWLS_INDEX, IN_PROGRESS_KEY_PREFIX, JOB_KEY_PREFIX, CrawlKeys
from shared.scripts import Scripts
from shared.settings import Settings
from shared.urls import fingerprint

# queue entries scanned, and job ids swept per script call, when a crawl is cancelled or paused
_SWEEP_BATCH = 500


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
        args += [fp, job_id, job_payload(CRAWL_PAGE, page_job_args(url, 0, None), now)]
    status, queued = await Scripts.register(redis).seed(
        keys=[
            keys.meta,
            CRAWLS_INDEX,
            keys.seen,
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
    parked = await Scripts.register(redis).cancel(
        keys=[keys.meta, keys.parked, keys.tries, keys.stats],
        args=[datetime.now(UTC).isoformat(), JOB_KEY_PREFIX],
    )
    _check(int(parked), crawl_id, "running or paused")
    dropped, aborted = await _sweep(redis, settings, crawl_id)
    return CancelResult(dropped=int(parked) + dropped, aborted=aborted)


async def pause_crawl(redis: Redis, settings: Settings, crawl_id: str) -> int:
    """Hold a running crawl: its queued jobs are parked; returns how many."""
    keys = CrawlKeys(crawl_id)
    _check(int(await Scripts.register(redis).pause(keys=[keys.meta])), crawl_id, "running")
    parked, _ = await _sweep(redis, settings, crawl_id)
    return parked


async def _sweep(redis: Redis, settings: Settings, crawl_id: str) -> tuple[int, int]:
    """Apply a cancel or pause to the crawl's jobs in arq's queue, which every crawl shares:
    scanned in batches, so that a long queue never blocks Redis. Returns (removed or parked,
    aborted)."""
    keys = CrawlKeys(crawl_id)
    sweep = Scripts.register(redis).sweep
    moved = aborted = 0
    batch: list[bytes] = []

    async def flush() -> None:
        nonlocal moved, aborted
        if batch:
            done, stopped = await sweep(
                keys=[keys.meta, settings.queue_name, keys.parked, ABORT_JOBS],
                args=[JOB_KEY_PREFIX, IN_PROGRESS_KEY_PREFIX, now_ms(), *batch],
            )
            moved, aborted = moved + int(done), aborted + int(stopped)
            batch.clear()

    async for member, _score in redis.zscan_iter(
        settings.queue_name, match=f"{crawl_id}:*", count=_SWEEP_BATCH
    ):
        batch.append(member)
        if len(batch) >= _SWEEP_BATCH:
            await flush()
    await flush()
    return moved, aborted


async def resume_crawl(redis: Redis, settings: Settings, crawl_id: str) -> int:
    """Release a paused crawl: its parked jobs are queued again; returns how many."""
    keys = CrawlKeys(crawl_id)
    queued = await Scripts.register(redis).resume(
        keys=[keys.meta, keys.parked, settings.queue_name], args=[now_ms()]
    )
    return _check(int(queued), crawl_id, "paused")
