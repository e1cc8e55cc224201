"""The crawl frontier in Redis: may a job run, and closing it with its links in one round trip."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from typing import Any, Literal

from redis.asyncio import Redis

from shared.crawl import CrawlSpec
from shared.jobs import (
    CRAWL_PAGE,
    FINALIZE_CRAWL,
    finalize_job_id,
    job_payload,
    now_ms,
    page_job_id,
)
from shared.keys import JOB_KEY_PREFIX, CrawlKeys
from shared.scripts import Scripts
from shared.settings import Settings
from shared.urls import fingerprint

Outcome = Literal["fetched", "failed", "skipped"]


class Verdict(Enum):
    """What a job should do, decided when it starts (see ``shared/lua/start.lua``)."""

    RUN = "run"
    DONE_ALREADY = "done"  # a re-run of a job that already closed
    PAUSED = "paused"  # the crawl is paused: hand the job back
    STALE = "stale"  # the page was reached by a shorter path since this job was queued
    STOPPED = "stopped"  # the crawl is cancelled or gone


@dataclass(frozen=True, slots=True)
class PageJob:
    """One (crawl, URL, depth) job."""

    crawl_id: str
    url: str
    depth: int
    parent: str | None

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.url)

    @property
    def job_id(self) -> str:
        return page_job_id(self.crawl_id, self.fingerprint, self.depth)


class Frontier:
    """Reads and changes the frontier of every crawl on one Redis."""

    def __init__(self, redis: Redis, settings: Settings) -> None:
        self.redis = redis
        self.settings = settings
        self.scripts = Scripts.register(redis)

    async def start(self, job: PageJob) -> tuple[Verdict, int]:
        """Decide whether ``job`` should fetch, in one round trip.

        Returns the verdict and, for ``RUN``, how often the job has now been started without
        being closed (more than once means a worker died while running it).
        """
        keys = CrawlKeys(job.crawl_id)
        verdict, tries = await self.scripts.start(
            keys=[keys.meta, keys.pending, keys.seen, keys.tries],
            args=[job.job_id, job.fingerprint, job.depth],
        )
        return Verdict(verdict.decode()), int(tries)

    async def uncount_start(self, job: PageJob) -> None:
        """Take back the start of a job handed back on purpose (so it is not a lost try)."""
        await self.redis.hincrby(CrawlKeys(job.crawl_id).tries, job.job_id, -1)  # type: ignore[misc]

    async def close(
        self,
        job: PageJob,
        spec: CrawlSpec,
        outcome: Outcome,
        nbytes: int,
        links: list[str],
    ) -> int | None:
        """Count the page, queue its new or improved links, finish the crawl if it was the last.

        Returns the number of links queued, or None if the job had already been closed.
        """
        keys = CrawlKeys(job.crawl_id)
        now = now_ms()
        child_depth = job.depth + 1
        args: list[Any] = [
            job.job_id,
            job.fingerprint,
            job.depth,
            outcome,
            nbytes,
            now,
            spec.max_pages or 0,
            JOB_KEY_PREFIX,
            finalize_job_id(job.crawl_id),
            job_payload(FINALIZE_CRAWL, (job.crawl_id,), now),
        ]
        if child_depth <= spec.depth:
            for url in links:
                fp = fingerprint(url)
                args += [
                    fp,
                    page_job_id(job.crawl_id, fp, child_depth),
                    job_payload(CRAWL_PAGE, (job.crawl_id, url, child_depth, job.url), now),
                ]
        status, queued = await self.scripts.page_done(
            keys=[
                keys.meta,
                keys.seen,
                keys.pending,
                keys.stats,
                self.settings.queue_name,
                keys.parked,
                keys.tries,
            ],
            args=args,
        )
        return None if status < 0 else int(queued)

    async def finish(self, crawl_id: str) -> bool:
        """Mark the crawl done if nothing of it is pending; True if it is now done."""
        keys = CrawlKeys(crawl_id)
        done = await self.scripts.finish(
            keys=[keys.meta, keys.pending], args=[datetime.now(UTC).isoformat()]
        )
        return bool(done)

    async def best_depths(self, crawl_id: str, fingerprints: list[str]) -> list[int | None]:
        """The shortest known depth of each fingerprint (None if never seen)."""
        if not fingerprints:
            return []
        scores = await self.redis.zmscore(CrawlKeys(crawl_id).seen, fingerprints)
        return [None if s is None else int(s) for s in scores]
