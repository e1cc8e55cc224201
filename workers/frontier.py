"""A worker's side of the frontier: may a job run, and closing it with its links in one round
trip (``shared/lua/start.lua``, ``page_done.lua``, ``robots_done.lua``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from typing import Literal

from redis.asyncio import Redis

from shared.jobs import crawl_of_job, now_ms, page_job_args, page_job_id
from shared.keys import CrawlKeys, seen_field
from shared.scripts import Frontier as Scripts
from shared.settings import Settings
from shared.urls import fingerprint

Outcome = Literal["fetched", "failed", "skipped"]
# fingerprints read per pipeline when a crawl is finalized: bounds the memory of one reply
_READ_BATCH = 10_000


class Verdict(Enum):
    """What a job should do, decided when it starts (see ``shared/lua/start.lua``)."""

    RUN = "run"
    DONE_ALREADY = "done"  # a re-run of a job that already closed
    PAUSED = "paused"  # the crawl is paused: the URL goes back to its backlog
    STALE = "stale"  # the page was reached by a shorter path since this job was queued
    STOPPED = "stopped"  # the crawl is cancelled or gone
    EARLY = "early"  # claimed after the host's next job: queued again for its turn


@dataclass(frozen=True, slots=True)
class Start:
    """The answer of :meth:`Frontier.start`."""

    verdict: Verdict
    tries: int  # starts without a close, this one included (more than 1: a worker died)
    retried: int  # transient fetch failures of this job retried so far


@dataclass(frozen=True, slots=True)
class PageJob:
    """One (crawl, URL, depth) job; ``hops`` counts the redirects that led to the URL."""

    crawl_id: str
    url: str
    depth: int
    parent: str | None
    hops: int = 0

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.url)

    @property
    def job_id(self) -> str:
        return page_job_id(self.crawl_id, self.fingerprint, self.depth)

    @property
    def packed_parent(self) -> str | None:
        """The parent as the job's arguments carry it (a path when on the same origin)."""
        return page_job_args(self.url, self.depth, self.parent)[2]


class Frontier:
    """Reads and changes the frontier of every crawl on one Redis, for one worker."""

    def __init__(self, redis: Redis, settings: Settings) -> None:
        self.redis = redis
        self.settings = settings
        self.scripts = Scripts(redis, settings.queue_name, settings.slot_lease_ms, batch=True)

    async def start(self, job: PageJob) -> Start:
        """Decide whether ``job`` should fetch, in one round trip, and count the start."""
        started = await self.scripts.start(
            job_id=job.job_id, url=job.url, fingerprint=job.fingerprint, depth=job.depth
        )
        return Start(Verdict(started.verdict), started.tries, started.retried)

    async def start_robots(self, job_id: str, origin: str) -> Start:
        """The start of a robots.txt job."""
        started = await self.scripts.start(job_id=job_id, url=origin, fingerprint="", depth=0)
        return Start(Verdict(started.verdict), started.tries, started.retried)

    async def hand_back(self, job_id: str) -> None:
        """Take back the start of a job handed back on purpose (not a lost try)."""
        await self.redis.hincrby(CrawlKeys(crawl_of_job(job_id)).tries, job_id, -1)  # type: ignore[misc]

    async def close(
        self,
        job: PageJob,
        depth_limit: int,
        outcome: Outcome,
        nbytes: int,
        links: list[str],
        reason: str = "",
        redirect: str | None = None,
        hold_s: float = 0.0,
    ) -> int | None:
        """Count the page, admit its new or improved links (and a redirect's target, at the
        page's depth), give back its host slot and promote the host's next URLs; finish the
        crawl if it was the last. ``hold_s`` holds every request to the host (Retry-After).

        Returns the number of URLs admitted, or None if the job had already been closed.
        """
        pairs = [(fingerprint(u), u) for u in links] if job.depth < depth_limit else []
        status, admitted = await self.scripts.page_done(
            job_id=job.job_id,
            url=job.url,
            fingerprint=job.fingerprint,
            depth=job.depth,
            hops=job.hops,
            parent=job.packed_parent,
            outcome=outcome,
            nbytes=nbytes,
            reason=reason,
            hold_ms=int(hold_s * 1000),
            redirect=(fingerprint(redirect), redirect) if redirect else None,
            links=pairs,
        )
        return None if status < 0 else admitted

    async def retry(self, job: PageJob, backoff_s: float, hold_s: float = 0.0) -> bool:
        """A transient failure: the URL goes to the back of its host's backlog, not to be
        fetched again for ``backoff_s``; the slot goes to the host's next URL. False if the
        job had been closed already."""
        status, _ = await self.scripts.page_done(
            job_id=job.job_id, url=job.url, fingerprint=job.fingerprint, depth=job.depth,
            hops=job.hops, parent=job.packed_parent, outcome="retry",
            not_before_ms=now_ms() + int(backoff_s * 1000), hold_ms=int(hold_s * 1000),
        )  # fmt: skip
        return status > 0

    async def requeue(self, job: PageJob) -> bool:
        """The job was not run (its crawl is paused): the URL goes back to the front of its
        host's backlog and the slot is given back. False if the job had been closed already."""
        status, _ = await self.scripts.page_done(
            job_id=job.job_id, url=job.url, fingerprint=job.fingerprint, depth=job.depth,
            hops=job.hops, parent=job.packed_parent, outcome="requeue",
        )  # fmt: skip
        return status > 0

    async def robots_done(
        self, job_id: str, origin: str, rules: bytes, crawl_delay_s: float, ttl_s: int
    ) -> bool:
        """Keep an origin's robots.txt for the crawl and open its host's backlog."""
        reply = await self.scripts.robots_done(
            job_id=job_id, origin=origin, outcome="ok", rules=rules,
            crawl_delay_ms=int(crawl_delay_s * 1000), ttl_s=ttl_s,
        )  # fmt: skip
        return reply > 0

    async def robots_retry(self, job_id: str, origin: str, backoff_s: float) -> bool:
        """robots.txt could not be had for now: asked again after ``backoff_s``, its host's
        pages waiting meanwhile."""
        reply = await self.scripts.robots_done(
            job_id=job_id, origin=origin, outcome="retry",
            not_before_ms=now_ms() + int(backoff_s * 1000),
        )  # fmt: skip
        return reply > 0

    async def finish(self, crawl_id: str) -> bool:
        """Mark the crawl done if nothing of it is pending; True if it is now done."""
        return await self.scripts.finish(crawl_id, datetime.now(UTC).isoformat())

    async def best_depths(self, crawl_id: str, fingerprints: list[str]) -> list[int | None]:
        """The shortest known depth of each fingerprint (None if never seen)."""
        if not fingerprints:
            return []
        keys = CrawlKeys(crawl_id)
        values: list[bytes | None] = []
        for at in range(0, len(fingerprints), _READ_BATCH):
            async with self.redis.pipeline(transaction=False) as pipe:
                for fp in fingerprints[at : at + _READ_BATCH]:
                    pipe.hget(keys.seen_bucket(fp), seen_field(fp))
                values += await pipe.execute()
        return [None if v is None else int(v) // 2 for v in values]
