"""Creating, seeding, cancelling, pausing and resuming crawls."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from redis.asyncio import Redis

from crawlfleet.shared.crawl import SITEMAPS_PER_CRAWL, CrawlSpec, CrawlState
from crawlfleet.shared.errors import (
    CrawlNotEnded,
    CrawlNotRunning,
    NoEarlierCrawl,
    SpecConflict,
    UnknownCrawl,
)
from crawlfleet.shared.jobs import FINALIZE_CRAWL, finalize_job_id, job_payload, now_ms
from crawlfleet.shared.keys import CRAWLS_INDEX, CrawlKeys, job_key
from crawlfleet.shared.scripts import Frontier
from crawlfleet.shared.settings import Settings
from crawlfleet.shared.storage import CrawlLayout
from crawlfleet.shared.urls import fingerprint, origin_of


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
    seeded = await frontier_of(redis, settings).seed(
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
        sitemaps=seed_sitemaps(spec),
        max_sitemap_urls=spec.max_sitemap_urls,
        max_sitemaps=SITEMAPS_PER_CRAWL,
    )
    if seeded.status == -1:
        raise CrawlNotRunning(f"crawl {spec.crawl_id!r} has ended; seed a new crawl id")
    if seeded.status == -2:
        raise SpecConflict(
            f"crawl {spec.crawl_id!r} was seeded with other options "
            f"({_differences(seeded.spec_json, spec)}): give the same ones to add seeds to it, "
            "or another crawl id"
        )
    return SeedResult(created=seeded.status == 1, queued=seeded.admitted)


def seed_sitemaps(spec: CrawlSpec) -> list[str]:
    """The /sitemap.xml of each seed's origin, for a crawl that reads sitemaps (its job reads
    the origin's robots.txt Sitemap: lines too)."""
    if not spec.sitemaps:
        return []
    return list(dict.fromkeys(f"{origin_of(url)}/sitemap.xml" for url in spec.seeds))


def check_since_files(data_dir: Path, since: str) -> None:
    """That ``data_dir`` holds the finished crawl ``since`` (its manifest); NoEarlierCrawl if
    not."""
    layout = CrawlLayout(data_dir, since)
    if not layout.has_file(layout.manifest):
        raise NoEarlierCrawl(
            f"--since {since}: no finished crawl {since!r} in {data_dir} "
            f"(no {layout.manifest.name}): give a crawl that is done there"
        )


async def check_since(redis: Redis, data_dir: Path, since: str) -> None:
    """That the crawl a new crawl is --since may be: done, if Redis knows it (its files are
    then in the workers' data directory, which they check), else finished in ``data_dir``
    (a crawl forgotten from Redis); NoEarlierCrawl if not."""
    state: bytes | None = await redis.hget(CrawlKeys(since).meta, "state")  # type: ignore[misc]
    if state is None:
        check_since_files(data_dir, since)
    elif state.decode() != CrawlState.DONE:
        raise NoEarlierCrawl(
            f"--since {since}: crawl {since!r} is {state.decode()}, not done: "
            "crawl again since a crawl that is done"
        )


def _differences(stored_json: str | None, given: CrawlSpec) -> str:
    """What differs between a crawl's stored spec and ``given``, seeds aside: ``depth 2, not
    3``, one option after another."""
    try:
        stored = CrawlSpec.model_validate_json(stored_json or "").model_dump(exclude={"seeds"})
    except ValueError:  # written by another version, or by hand
        return "its spec cannot be read"
    wanted = given.model_dump(exclude={"seeds"})
    said = [
        f"{name} {json.dumps(value)}, not {json.dumps(wanted[name])}"
        for name, value in stored.items()
        if value != wanted[name]
    ]
    return "; ".join(said) or "its spec is stored otherwise"


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
    """Remove an ended crawl's record from Redis (its files stay on disk), and its finalize
    job if no worker has run it yet (a cancelled crawl's manifest is then not written)."""
    code = await frontier_of(redis, settings).forget(crawl_id)
    if code == -2:
        raise CrawlNotEnded(f"crawl {crawl_id!r} has not ended: cancel it first")
    _check(code, crawl_id, "ended")
    job_id = finalize_job_id(crawl_id)
    async with redis.pipeline(transaction=True) as pipe:
        pipe.zrem(settings.queue_name, job_id)
        pipe.delete(job_key(job_id))
        await pipe.execute()


async def cancel_crawl(redis: Redis, settings: Settings, crawl_id: str) -> CancelResult:
    """Cancel a running or paused crawl: drop its queued jobs and backlogs, abort its running
    jobs; the hosts it held go to the other crawls waiting on them. A worker then writes the
    manifest of what the crawl had fetched (its finalize job, queued last)."""
    frontier = frontier_of(redis, settings)
    _check(await frontier.cancel(crawl_id, datetime.now(UTC).isoformat()), crawl_id,
           "running or paused")  # fmt: skip
    dropped, aborted = await frontier.sweep_crawl(crawl_id)
    await frontier.forget_hosts(crawl_id)
    await _queue_finalize(redis, settings, crawl_id)
    return CancelResult(dropped=dropped, aborted=aborted)


async def _queue_finalize(redis: Redis, settings: Settings, crawl_id: str) -> None:
    """Queue the crawl's finalize job as arq's enqueue would (after the sweep, which drops
    every job of the crawl)."""
    job_id, now = finalize_job_id(crawl_id), now_ms()
    async with redis.pipeline(transaction=True) as pipe:
        pipe.set(job_key(job_id), job_payload(FINALIZE_CRAWL, (crawl_id,), now))
        pipe.zadd(settings.queue_name, {job_id: now})
        await pipe.execute()


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
