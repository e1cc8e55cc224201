"""The crawl frontier in Redis: may a job run, and closing it with its links in one round trip."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from typing import Any, Literal

from redis.asyncio import Redis

from shared.batch import ScriptBatcher
from shared.crawl import CrawlSpec
from shared.jobs import (
    CRAWL_PAGE,
    FINALIZE_CRAWL,
    finalize_job_id,
    job_payload,
    now_ms,
    page_job_args,
    page_job_id,
)
from shared.keys import (
    ABORT_JOBS,
    IN_PROGRESS_KEY_PREFIX,
    JOB_KEY_PREFIX,
    RETRY_KEY_PREFIX,
    CrawlKeys,
    HostKeys,
    fetch_attempts_field,
    job_key,
    seen_field,
)
from shared.scripts import Scripts
from shared.settings import Settings
from shared.urls import fingerprint
from workers.politeness import SlotAsk

Outcome = Literal["fetched", "failed", "skipped"]
# fingerprints read per pipeline when a crawl is finalized: bounds the memory of one reply
_READ_BATCH = 10_000


class Verdict(Enum):
    """What a job should do, decided when it starts (see ``shared/lua/start.lua``)."""

    RUN = "run"
    DONE_ALREADY = "done"  # a re-run of a job that already closed
    PAUSED = "paused"  # the crawl is paused: hand the job back
    STALE = "stale"  # the page was reached by a shorter path since this job was queued
    STOPPED = "stopped"  # the crawl is cancelled or gone


@dataclass(frozen=True, slots=True)
class Start:
    """The answer of :meth:`Frontier.start`."""

    verdict: Verdict
    tries: int  # starts without a close, this one included (more than 1: a worker died)
    retried: int  # transient fetch failures of this job retried so far
    slot_wait_ms: int | None = None  # the host slot asked for: 0 taken, BUSY, or ms to wait


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
        self.batch = ScriptBatcher(redis)

    async def start(self, job: PageJob, slot: SlotAsk | None = None) -> Start:
        """Decide whether ``job`` should fetch, in one round trip, and count the start; with
        ``slot``, also try to take that host slot if the job is to run."""
        keys = CrawlKeys(job.crawl_id)
        script_keys = [keys.meta, job_key(job.job_id), keys.seen, keys.tries]
        args: list[Any] = [job.job_id, job.fingerprint, job.depth]
        if slot is not None:
            script_keys += slot.keys
            args += slot.args
        verdict, tries, retried, wait = await self.batch(self.scripts.start, script_keys, args)
        return Start(
            Verdict(verdict.decode()), int(tries), int(retried), None if wait == -1 else int(wait)
        )

    async def hand_back(self, job: PageJob, *, fetch_failed: bool = False) -> None:
        """Take back the start of a job handed back on purpose (it is not a lost try);
        with ``fetch_failed``, also count one more retried transient fetch failure."""
        tries = CrawlKeys(job.crawl_id).tries
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hincrby(tries, job.job_id, -1)
            if fetch_failed:
                pipe.hincrby(tries, fetch_attempts_field(job.job_id), 1)
            await pipe.execute()

    async def close(
        self,
        job: PageJob,
        spec: CrawlSpec,
        outcome: Outcome,
        nbytes: int,
        links: list[str],
        reason: str = "",
        slot: SlotAsk | None = None,
    ) -> int | None:
        """Count the page, queue its new or improved links, finish the crawl if it was the last,
        give back ``slot``, and do arq's clean-up of the finished job.

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
            reason,
            slot.token if slot is not None else "",
        ]
        if child_depth <= spec.depth:
            for url in links:
                fp = fingerprint(url)
                args += [
                    fp,
                    page_job_id(job.crawl_id, fp, child_depth),
                    job_payload(CRAWL_PAGE, page_job_args(url, child_depth, job.url), now),
                ]
        status, queued = await self.batch(
            self.scripts.page_done,
            [
                keys.meta,
                keys.seen,
                job_key(job.job_id),
                keys.stats,
                self.settings.queue_name,
                keys.parked,
                keys.tries,
                keys.reasons,
                HostKeys(slot.host if slot is not None else "-").slots,
                IN_PROGRESS_KEY_PREFIX + job.job_id,
                RETRY_KEY_PREFIX + job.job_id,
                ABORT_JOBS,
            ],
            args,
        )
        return None if status < 0 else int(queued)

    async def finish(self, crawl_id: str) -> bool:
        """Mark the crawl done if nothing of it is pending; True if it is now done."""
        keys = CrawlKeys(crawl_id)
        done = await self.scripts.finish(
            keys=[keys.meta, keys.stats], args=[datetime.now(UTC).isoformat()]
        )
        return bool(done)

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
