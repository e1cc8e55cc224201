"""A worker's side of the frontier: closing a job with its links in one round trip
(``shared/lua/page_done.lua``, ``robots_done.lua``, ``sitemap_done.lua``)."""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from typing import Literal, TypedDict

from redis.asyncio import Redis

from crawlfleet.shared.jobs import now_ms, page_job_args, page_job_id
from crawlfleet.shared.keys import CrawlKeys, seen_field, sitemap_job_id
from crawlfleet.shared.scripts import Closed
from crawlfleet.shared.scripts import Frontier as Scripts
from crawlfleet.shared.settings import Settings
from crawlfleet.shared.storage import Change
from crawlfleet.shared.urls import fingerprint, origin_of
from crawlfleet.workers.sitemaps import SitemapEntry, SitemapRef

# excluded: not fetched by a rule of the site's (robots.txt), counted apart from failures
Outcome = Literal["fetched", "failed", "excluded", "skipped"]
# links remembered as sent, per process (``SentLinks``): about 150 bytes each
SENT_LINKS_KEPT = 200_000
# fingerprints read per pipeline when a crawl is finalized: bounds the memory of one reply
_READ_BATCH = 10_000


class Verdict(Enum):
    """What a job should do, decided when it is claimed (see ``shared/lua/claim.lua``)."""

    RUN = "run"
    PAUSED = "paused"  # the crawl is paused: the URL goes back to its backlog
    STALE = "stale"  # the page was reached by a shorter path since this job was queued
    STOPPED = "stopped"  # the crawl is cancelled or gone


@dataclass(frozen=True, slots=True)
class PageJob:
    """One (crawl, URL, depth) job, as the frontier promoted it: ``hops`` counts the
    redirects that led to the URL, ``retried`` its transient failures so far."""

    crawl_id: str
    url: str
    depth: int
    parent: str | None
    hops: int = 0
    retried: int = 0

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


@dataclass(frozen=True, slots=True)
class SitemapJob:
    """One (crawl, sitemap) job, as the frontier promoted it: ``level`` counts the indexes
    above it, ``retried`` its transient failures so far; ``discover`` marks the /sitemap.xml of
    a seed's origin, whose job also reads the origin's robots.txt ``Sitemap:`` lines."""

    crawl_id: str
    url: str
    level: int
    retried: int = 0
    discover: bool = False

    @property
    def job_id(self) -> str:
        return sitemap_job_id(self.crawl_id, fingerprint(self.url))


# how a sitemap job ends: read (in whole or up to a cap), not read, or moved (its redirect's
# target is a sitemap of its own)
SitemapOutcome = Literal["read", "skipped", "redirected"]


class SentLinks:
    """The links (and their origins) this process has sent to the frontier lately, with the
    depth they went at.

    A URL's shortest known depth in Redis only ever falls, so a link sent once at depth d
    need not be sent again at d or deeper: navigation links repeat on every page of a site,
    and each would cost Redis a lookup; an origin sent once has had its robots.txt asked for.
    Kept per process (a worker that reconnects to Redis starts a new one, as Redis may have
    lost its latest writes), the oldest dropped first.
    """

    def __init__(self, size: int) -> None:
        self._size = size
        self._depths: OrderedDict[tuple[str, str], int] = OrderedDict()
        self._origins: OrderedDict[tuple[str, str], None] = OrderedDict()

    def unsent(
        self, crawl_id: str, links: list[tuple[str, str]], depth: int
    ) -> list[tuple[str, str]]:
        """The (fingerprint, url) pairs not sent yet at ``depth`` or nearer."""
        depths = self._depths
        return [p for p in links if depths.get((crawl_id, p[0]), depth + 1) > depth]

    def new_origins(self, crawl_id: str, links: list[tuple[str, str]]) -> list[str]:
        """The origins of these links that were never sent."""
        origins = dict.fromkeys(origin_of(url) for _, url in links)
        return [o for o in origins if (crawl_id, o) not in self._origins]

    def sent(self, crawl_id: str, links: list[tuple[str, str]], depth: int) -> None:
        depths = self._depths
        for fp, url in links:
            key = (crawl_id, fp)
            if depths.get(key, depth + 1) > depth:
                depths[key] = depth
            depths.move_to_end(key)
            self._origins[(crawl_id, origin_of(url))] = None
        while len(depths) > self._size:
            depths.popitem(last=False)
        while len(self._origins) > self._size:
            self._origins.popitem(last=False)


@dataclass(frozen=True, slots=True)
class Fetched:
    """How a fetch went, as the host's adaptive politeness learns it (frontier.lua's adapt):
    how long it took, and whether a response came (``answered``) or none in time
    (``timed_out``; neither: it failed otherwise)."""

    took_ms: int
    answered: bool
    timed_out: bool


def _seconds(when: datetime | None) -> int | None:
    """A time as Unix seconds, rounded up: never earlier than it."""
    return None if when is None else math.ceil(when.timestamp())


class _FetchFields(TypedDict):
    took_ms: int
    signal: str


def _fetch_fields(fetched: Fetched | None) -> _FetchFields:
    """What a close tells the frontier of its fetch: ``unsent`` when the job sent no request
    (its host's next job, if the host has a delay, may then take its turn: frontier.lua's
    give_back)."""
    if fetched is None:
        return _FetchFields(took_ms=0, signal="unsent")
    signal = "answer" if fetched.answered else "timeout" if fetched.timed_out else ""
    return _FetchFields(took_ms=fetched.took_ms, signal=signal)


class _JobFields(TypedDict):
    job_id: str
    url: str
    fingerprint: str
    depth: int
    hops: int
    retried: int
    parent: str | None


def _job_fields(job: PageJob) -> _JobFields:
    """What page_done.lua is told of the job it closes, whatever the outcome."""
    return _JobFields(
        job_id=job.job_id, url=job.url, fingerprint=job.fingerprint, depth=job.depth,
        hops=job.hops, retried=job.retried, parent=job.packed_parent,
    )  # fmt: skip


class _SitemapFields(TypedDict):
    job_id: str
    url: str
    level: int
    retried: int
    discover: bool


def _sitemap_fields(job: SitemapJob) -> _SitemapFields:
    """What sitemap_done.lua is told of the job it closes, whatever the outcome."""
    return _SitemapFields(
        job_id=job.job_id, url=job.url, level=job.level, retried=job.retried,
        discover=job.discover,
    )  # fmt: skip


class Frontier:
    """Reads and changes the frontier of every crawl on one Redis, for one worker.

    ``on_queued`` is told the earliest start (ms) of the jobs each close queued: the worker's
    queue reading then knows when to look without asking Redis.
    """

    def __init__(
        self, redis: Redis, settings: Settings, on_queued: Callable[[int], None] | None = None
    ) -> None:
        self.redis = redis
        self.scripts = Scripts(redis, settings.queue_name, settings.slot_lease_ms, batch=True)
        self.sent = SentLinks(SENT_LINKS_KEPT)
        self._on_queued = on_queued

    def _closed(self, closed: Closed) -> bool:
        if closed.earliest_ms and self._on_queued is not None:
            self._on_queued(closed.earliest_ms)
        return closed.closed

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
        fetched: Fetched | None = None,
        change: Change | None = None,
    ) -> int | None:
        """Count the page, admit its new or improved links (and a redirect's target, at the
        page's depth), give back its host slot and promote the host's next URLs; finish the
        crawl if it was the last. ``hold_s`` holds every request to the host (Retry-After);
        ``fetched`` says how the fetch went, for the host's adaptive politeness; ``change``
        what the page is against the earlier crawl (a crawl --since one).

        Returns the number of URLs admitted, or None if the job had already been closed.
        """
        child = job.depth + 1
        pairs = [(fingerprint(u), u) for u in links] if job.depth < depth_limit else []
        pairs = self.sent.unsent(job.crawl_id, pairs, child)
        target = [(fingerprint(redirect), redirect)] if redirect else []
        target = self.sent.unsent(job.crawl_id, target, job.depth)
        new_origins = self.sent.new_origins(job.crawl_id, pairs + target)
        done = await self.scripts.page_done(
            **_job_fields(job),
            outcome=outcome,
            nbytes=nbytes,
            reason=reason,
            change=change or "",
            hold_ms=int(hold_s * 1000),
            **_fetch_fields(fetched),
            redirect=target[0] if target else None,
            links=pairs,
            new_origins=new_origins,
        )
        if done.considered:
            self.sent.sent(job.crawl_id, pairs, child)
            self.sent.sent(job.crawl_id, target, job.depth)
        return done.admitted if self._closed(done) else None

    async def retry(
        self, job: PageJob, backoff_s: float, hold_s: float = 0.0, fetched: Fetched | None = None
    ) -> bool:
        """A transient failure: the URL goes to the back of its host's backlog, not to be
        fetched again for ``backoff_s``; the slot goes to the host's next URL. False if the
        job had been closed already."""
        done = await self.scripts.page_done(
            **_job_fields(job), outcome="retry",
            not_before_ms=now_ms() + int(backoff_s * 1000), hold_ms=int(hold_s * 1000),
            **_fetch_fields(fetched),
        )  # fmt: skip
        return self._closed(done)

    async def requeue(self, job: PageJob) -> bool:
        """The job was not run (its crawl is paused): the URL goes back to the front of its
        host's backlog and the slot is given back. False if the job had been closed already."""
        return self._closed(await self.scripts.page_done(**_job_fields(job), outcome="requeue"))

    async def robots_done(
        self, job_id: str, origin: str, rules: bytes, crawl_delay_s: float, ttl_s: int,
        fetched: Fetched | None = None,
    ) -> bool:  # fmt: skip
        """Keep an origin's robots.txt for the crawl and open its host's backlog; ``fetched``
        says how its fetch went, for the host's adaptive politeness, as a page's does."""
        done = await self.scripts.robots_done(
            job_id=job_id, origin=origin, outcome="ok", retried=0, rules=rules,
            crawl_delay_ms=int(crawl_delay_s * 1000), ttl_s=ttl_s, **_fetch_fields(fetched),
        )  # fmt: skip
        return self._closed(done)

    async def robots_retry(
        self, job_id: str, origin: str, retried: int, backoff_s: float,
        fetched: Fetched | None = None,
    ) -> bool:  # fmt: skip
        """robots.txt could not be had for now (``retried`` times before): asked again after
        ``backoff_s``, its host's pages waiting meanwhile (a timeout is a strike against the
        host: ``fetched``)."""
        done = await self.scripts.robots_done(
            job_id=job_id, origin=origin, outcome="retry", retried=retried,
            not_before_ms=now_ms() + int(backoff_s * 1000), **_fetch_fields(fetched),
        )  # fmt: skip
        return self._closed(done)

    async def sitemap_done(
        self,
        job: SitemapJob,
        outcome: SitemapOutcome,
        pages: list[SitemapEntry] | None = None,
        sitemaps: list[SitemapRef] | None = None,
        reasons: list[str] | None = None,
        hold_s: float = 0.0,
        fetched: Fetched | None = None,
        *,
        lastmods: bool = False,
    ) -> int | None:
        """Count the sitemap, admit the page URLs it listed at depth 0 (within the crawl's cap
        of sitemap URLs) and the sitemaps it points to, give back its host slot and promote
        the host's next entries; ``reasons`` (``sitemap: ...``) are counted in the crawl's.
        With ``lastmods`` (a crawl --since another), each page's ``lastmod`` is kept in Redis
        for its page job (``sitemap_done.lua``); else it goes no further.

        Returns the number of page URLs admitted, or None if the job had already been closed.
        """
        when = {p.url: p.lastmod for p in pages or []} if lastmods else {}
        pairs = [(fingerprint(p.url), p.url) for p in pages or []]
        # sent, not remembered as sent: past the crawl's cap a URL is not admitted, and a
        # link to it from a page must still be sent
        pairs = self.sent.unsent(job.crawl_id, pairs, 0)
        refs = sitemaps or []
        origins = self.sent.new_origins(job.crawl_id, pairs + [("", r.url) for r in refs])
        done = await self.scripts.sitemap_done(
            **_sitemap_fields(job), outcome=outcome, reasons=reasons or [],
            hold_ms=int(hold_s * 1000), **_fetch_fields(fetched),
            sitemaps=[(r.level, r.url) for r in refs], new_origins=origins,
            pages=[(fp, url, _seconds(when.get(url))) for fp, url in pairs],
        )  # fmt: skip
        return done.admitted if self._closed(done) else None

    async def sitemap_retry(
        self, job: SitemapJob, backoff_s: float, hold_s: float = 0.0, fetched: Fetched | None = None
    ) -> bool:
        """A transient failure: the sitemap goes to the back of its host's backlog, not to be
        fetched again for ``backoff_s``. False if the job had been closed already."""
        done = await self.scripts.sitemap_done(
            **_sitemap_fields(job), outcome="retry",
            not_before_ms=now_ms() + int(backoff_s * 1000), hold_ms=int(hold_s * 1000),
            **_fetch_fields(fetched),
        )  # fmt: skip
        return self._closed(done)

    async def finish(self, crawl_id: str, manifest: str, unreached: int | None = None) -> bool:
        """Mark the crawl done if nothing of it is pending, saying where its ``manifest`` is
        (and, of a crawl --since another, how many pages it no longer reaches: ``unreached``),
        and drop its state on its hosts; True if it is now done."""
        now = datetime.now(UTC).isoformat()
        ended = await self.scripts.finish(crawl_id, now, manifest, unreached)
        if ended != 0:  # done now, or before by a run of this job that died here
            await self.scripts.forget_hosts(crawl_id)
        return ended == 1

    async def fail(self, crawl_id: str, reason: str) -> bool:
        """End the crawl as failed for ``reason``: as a cancel does, its queued jobs and
        backlogs are dropped and its running jobs aborted. False if it had ended already."""
        if await self.scripts.cancel(crawl_id, datetime.now(UTC).isoformat(), reason) != 0:
            return False
        await self.scripts.sweep_crawl(crawl_id)
        await self.scripts.forget_hosts(crawl_id)
        return True

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
