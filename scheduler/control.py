"""Creating, seeding, cancelling, pausing and resuming crawls."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime

from redis.asyncio import Redis

from shared.crawl import CrawlSpec
from shared.errors import CrawlNotEnded, CrawlNotRunning, UnknownCrawl
from shared.keys import CRAWLS_INDEX, CrawlKeys
from shared.scripts import Frontier
from shared.settings import Settings
from shared.urls import fingerprint

# queue entries scanned and job ids swept per script call: a long queue never blocks Redis long
_BATCH = 500


def frontier_of(redis: Redis, settings: Settings) -> Frontier:
    """The frontier's scripts for ``settings``' queue."""
    return Frontier(redis, settings.queue_name, settings.slot_lease_ms)


@dataclass(frozen=True)
class SeedResult:
    """What seeding did: whether the crawl is new, and how many seeds were admitted."""

    created: bool
    queued: int


async def seed_crawl(redis: Redis, settings: Settings, spec: CrawlSpec) -> SeedResult:
    """Create the crawl (or add seeds to it while it runs) and admit the seeds at depth 0."""
    status, admitted = await frontier_of(redis, settings).seed(
        crawl_id=spec.crawl_id,
        spec_json=spec.model_dump_json(),
        created_at=datetime.now(UTC).isoformat(),
        host_limit=spec.per_host_concurrency,
        host_delay_ms=int(spec.per_host_delay * 1000),
        robots=spec.obey_robots,
        max_pages=spec.max_pages or 0,
        depth=spec.depth,
        max_pages_per_host=spec.max_pages_per_host,
        adaptive=spec.adaptive,
        seeds=[(fingerprint(url), url) for url in spec.seeds],
        crawls_index=CRAWLS_INDEX,
    )
    if status < 0:
        raise CrawlNotRunning(f"crawl {spec.crawl_id!r} has ended; seed a new crawl id")
    return SeedResult(created=status == 1, queued=admitted)


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


async def forget_crawl(redis: Redis, settings: Settings, crawl_id: str) -> None:
    """Remove an ended crawl's record from Redis (its files stay on disk)."""
    code = await frontier_of(redis, settings).forget(crawl_id)
    if code == -2:
        raise CrawlNotEnded(f"crawl {crawl_id!r} has not ended: cancel it first")
    _check(code, crawl_id, "ended")


async def _batches(items: AsyncIterator[bytes]) -> AsyncIterator[list[bytes]]:
    batch: list[bytes] = []
    async for item in items:
        batch.append(item)
        if len(batch) >= _BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


async def cancel_crawl(redis: Redis, settings: Settings, crawl_id: str) -> CancelResult:
    """Cancel a running or paused crawl: drop its queued jobs and backlogs, abort its running
    jobs; the hosts it held go to the other crawls waiting on them."""
    frontier = frontier_of(redis, settings)
    _check(await frontier.cancel(crawl_id, datetime.now(UTC).isoformat()), crawl_id,
           "running or paused")  # fmt: skip
    dropped = aborted = 0
    queued = redis.zscan_iter(settings.queue_name, match=f"{crawl_id}:*", count=_BATCH)
    async for batch in _batches(member async for member, _score in queued):
        removed, stopped = await frontier.sweep(batch)
        dropped, aborted = dropped + removed, aborted + stopped
    await frontier.forget_hosts(crawl_id)
    return CancelResult(dropped=dropped, aborted=aborted)


async def _pending(redis: Redis, crawl_id: str) -> int:
    return int(await redis.hget(CrawlKeys(crawl_id).stats, "pending") or 0)  # type: ignore[misc]


async def pause_crawl(redis: Redis, settings: Settings, crawl_id: str) -> int:
    """Hold a running crawl: nothing more of it is promoted; returns the URLs it holds."""
    _check(await frontier_of(redis, settings).pause(crawl_id), crawl_id, "running")
    return await _pending(redis, crawl_id)


async def resume_crawl(redis: Redis, settings: Settings, crawl_id: str) -> int:
    """Release a paused crawl: its hosts' free slots take its URLs again; returns how many
    URLs it holds."""
    frontier = frontier_of(redis, settings)
    _check(await frontier.resume(crawl_id), crawl_id, "paused")
    await frontier.fill_crawl_hosts(crawl_id)
    return await _pending(redis, crawl_id)
