"""The Lua scripts in ``shared/lua/``, each behind one typed Python call.

Callers name what they pass; only this module knows the order of a script's KEYS and ARGV.
``seen.lua`` and ``frontier.lua`` are shared fragments, prepended to the scripts that use them.
The scripts that admit, promote, claim or close jobs share frontier.lua's head (arq's queue and
abort set, the time, the slot lease and arq's key prefixes), built by :class:`Frontier` here.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from importlib.resources import files
from typing import Any

from redis.asyncio import Redis
from redis.commands.core import AsyncScript

from crawlfleet.shared.batch import ScriptBatcher
from crawlfleet.shared.crawl import CrawlState
from crawlfleet.shared.jobs import finalize_job_id, now_ms
from crawlfleet.shared.keys import (
    ABORT_JOBS,
    CRAWLS_INDEX,
    IN_PROGRESS_KEY_PREFIX,
    JOB_KEY_PREFIX,
    CrawlKeys,
)

_FRONTIER = ("seen", "frontier")
_FRAGMENTS = {
    "seed": _FRONTIER,
    "claim": _FRONTIER,
    "page_done": _FRONTIER,
    "robots_done": _FRONTIER,
    "sitemap_done": _FRONTIER,
    "fill_hosts": _FRONTIER,
    "sweep": _FRONTIER,
    "finish": ("seen",),
    "cancel": ("seen",),
}
SCRIPTS = ("switch_state", "forget", "in_flight", *_FRAGMENTS)


@cache
def script_source(name: str) -> str:
    """The full Lua source of script ``name`` as sent to Redis."""
    lua = files("crawlfleet.shared.lua")
    parts = [*_FRAGMENTS.get(name, ()), name]
    return "\n".join(lua.joinpath(f"{part}.lua").read_text(encoding="utf-8") for part in parts)


_registered: weakref.WeakKeyDictionary[Redis, dict[str, AsyncScript]] = weakref.WeakKeyDictionary()


def _scripts(redis: Redis) -> dict[str, AsyncScript]:
    """Every script registered on ``redis``, once per client (EVALSHA, loaded on first miss)."""
    scripts = _registered.get(redis)
    if scripts is None:
        scripts = {name: redis.register_script(script_source(name)) for name in SCRIPTS}
        _registered[redis] = scripts
    return scripts


def _claimed_score(until_ms: int, job_try: int) -> float:
    """A claimed job's queue score: the end of its in-progress mark, its try in sixteenths."""
    return int(until_ms) + int(job_try) / 16


@dataclass(frozen=True, slots=True)
class Closed:
    """page_done.lua's or robots_done.lua's answer."""

    closed: bool  # False: the job had been closed already (a re-run)
    earliest_ms: int  # the earliest start of the jobs the call queued, 0 if none
    admitted: int = 0  # URLs admitted
    considered: bool = False  # whether the page's links were weighed


@dataclass(frozen=True, slots=True)
class Seeded:
    """seed.lua's answer."""

    status: int  # 1 created, 0 seeds added, -1 the crawl has ended, -2 its spec is another
    admitted: int  # seeds admitted
    spec_json: str | None = None  # with -2: the crawl's own spec


@dataclass(frozen=True, slots=True)
class Claimed:
    """One job claim.lua claimed and started."""

    job_id: str
    score: float  # its try in sixteenths (claim.lua): hand it back relative to this
    payload: bytes | None
    job_try: int
    aborted: bool
    verdict: str  # the frontier's: run, paused, stale or stopped (claim.lua)
    # of a page job to run: the latest <lastmod> its crawl's sitemaps gave its URL (Unix
    # seconds), kept only for a crawl --since another; None if none
    lastmod: int | None = None


@dataclass(frozen=True, slots=True)
class Claim:
    """What one claim.lua call took, the queue's first score when it took fewer jobs than
    asked for (None when it took as many, or the queue is empty), and whether arq's abort set
    holds any id (a cancelled crawl's running jobs)."""

    jobs: list[Claimed]
    head: float | None
    aborts: bool = False


# hosts filled per script call: a crawl of many hosts never blocks Redis for long
HOSTS_BATCH = 500
# queue entries scanned and job ids swept per script call: a long queue never blocks Redis long
SWEEP_BATCH = 500


class Frontier:
    """The frontier's scripts on one Redis, for one arq queue.

    ``lease_ms`` is how long past its job's start time a slot is kept before, if the job has
    vanished without closing, it is taken to be gone. With ``batch``, calls made in one loop
    turn share a pipeline (``shared/batch.py``).
    """

    def __init__(self, redis: Redis, queue: str, lease_ms: int, *, batch: bool = False) -> None:
        self.redis = redis
        self.queue = queue
        self.lease_ms = lease_ms
        self._scripts = _scripts(redis)
        self._batch = ScriptBatcher(redis) if batch else None

    async def _call(self, name: str, keys: Sequence[Any], args: Sequence[Any]) -> Any:
        script = self._scripts[name]
        if self._batch is not None:
            return await self._batch(script, keys, args)
        return await script(keys=keys, args=args)

    async def _frontier(self, name: str, keys: Sequence[Any], args: Sequence[Any]) -> Any:
        head: list[Any] = [
            now_ms(),
            self.lease_ms,
            JOB_KEY_PREFIX,
            IN_PROGRESS_KEY_PREFIX,
        ]
        return await self._call(name, [self.queue, ABORT_JOBS, *keys], [*head, *args])

    async def seed(
        self,
        *,
        crawl_id: str,
        spec_json: str,
        created_at: str,
        host_limit: int,
        host_delay_ms: int,
        robots: bool,
        max_pages: int,
        depth: int,
        max_pages_per_host: int,
        adaptive: bool,
        seeds: Sequence[tuple[str, str]],
        crawls_index: str,
        sitemaps: Sequence[str] = (),
        max_sitemap_urls: int = 0,
        max_sitemaps: int = 0,
    ) -> Seeded:
        """seed.lua; ``seeds`` are (fingerprint, url) pairs; ``sitemaps`` the /sitemap.xml of
        each seed's origin, for a crawl that reads sitemaps (with its caps)."""
        args: list[Any] = [crawl_id, spec_json, created_at, host_limit, host_delay_ms,
                           int(robots), max_pages, depth, max_pages_per_host,
                           int(adaptive), max_sitemap_urls, max_sitemaps, len(sitemaps),
                           *sitemaps]  # fmt: skip
        for fp, url in seeds:
            args += [fp, url]
        status, admitted, *stored = await self._frontier("seed", [crawls_index], args)
        return Seeded(int(status), int(admitted), stored[0].decode() if stored else None)

    async def page_done(
        self,
        *,
        job_id: str,
        url: str,
        fingerprint: str,
        depth: int,
        hops: int,
        retried: int,
        parent: str | None,
        outcome: str,
        nbytes: int = 0,
        reason: str = "",
        change: str = "",
        not_before_ms: int = 0,
        hold_ms: int = 0,
        took_ms: int = 0,
        signal: str = "",
        redirect: tuple[str, str] | None = None,
        links: Sequence[tuple[str, str]] = (),
        new_origins: Sequence[str] = (),
    ) -> Closed:
        """page_done.lua: ``redirect`` and ``links`` are (fingerprint, url) pairs; ``parent``
        is as the job carries it; ``new_origins`` are the origins among them that the caller
        has not sent before (the only ones whose robots.txt may be new to the crawl);
        ``took_ms`` and ``signal`` (``answer``, ``timeout`` or none) are what the fetch told of
        its host (adaptive politeness), ``unsent`` if the job sent no request (a host with a
        delay then gets its turn back); ``change`` is what the page is against the earlier
        crawl of a crawl --since one (counted once per page, as the outcome is)."""
        redirect_fp, redirect_url = redirect or ("", "")
        args: list[Any] = [job_id, url, fingerprint, depth, hops, retried, parent or "",
                           outcome, nbytes, reason, change, not_before_ms, hold_ms, took_ms,
                           signal,
                           redirect_url, redirect_fp, len(new_origins),
                           *new_origins]  # fmt: skip
        for fp, link in links:
            args += [fp, link]
        status, admitted, considered, earliest = await self._frontier("page_done", [], args)
        return Closed(int(status) > 0, int(earliest), int(admitted), bool(considered))

    async def robots_done(
        self,
        *,
        job_id: str,
        origin: str,
        outcome: str,
        retried: int,
        rules: bytes = b"",
        crawl_delay_ms: int = 0,
        not_before_ms: int = 0,
        ttl_s: int = 0,
        took_ms: int = 0,
        signal: str = "",
    ) -> Closed:
        """robots_done.lua: ``took_ms`` and ``signal`` as page_done's, of the robots.txt
        fetch (none: no request was sent)."""
        args = [job_id, origin, outcome, rules, crawl_delay_ms, not_before_ms, ttl_s, retried,
                took_ms, signal]  # fmt: skip
        status, earliest = await self._frontier("robots_done", [], args)
        return Closed(int(status) > 0, int(earliest))

    async def sitemap_done(
        self,
        *,
        job_id: str,
        url: str,
        level: int,
        retried: int,
        discover: bool,
        outcome: str,
        reasons: Sequence[str] = (),
        not_before_ms: int = 0,
        hold_ms: int = 0,
        took_ms: int = 0,
        signal: str = "",
        sitemaps: Sequence[tuple[int, str]] = (),
        pages: Sequence[tuple[str, str, int | None]] = (),
        new_origins: Sequence[str] = (),
    ) -> Closed:
        """sitemap_done.lua: ``sitemaps`` are (level, url) pairs, ``pages`` (fingerprint, url,
        lastmod) triples, lastmod in Unix seconds (None: none to keep); ``reasons`` hold no
        line break; the rest as ``page_done``'s."""
        args: list[Any] = [job_id, url, level, retried, int(discover), outcome,
                           "\n".join(reasons), not_before_ms, hold_ms, took_ms, signal,
                           len(new_origins), *new_origins, len(sitemaps)]  # fmt: skip
        for sitemap_level, sitemap in sitemaps:
            args += [sitemap_level, sitemap]
        for fp, page, lastmod in pages:
            args += [fp, page, "" if lastmod is None else lastmod]
        status, admitted, considered, earliest = await self._frontier("sitemap_done", [], args)
        return Closed(int(status) > 0, int(earliest), int(admitted), bool(considered))

    async def fill_hosts(self, hosts: Sequence[str]) -> int:
        """fill_hosts.lua: promote URLs on these hosts' free slots."""
        return int(await self._frontier("fill_hosts", [], list(hosts)))

    async def fill_crawl_hosts(self, crawl_id: str) -> None:
        """fill_hosts.lua on every host where the crawl has a backlog, a batch at a time: a
        resumed crawl's URLs are promoted; an ended crawl's state on each host is dropped, and
        its hosts go to the crawls waiting on them."""
        batch: list[str] = []
        async for host in self.redis.sscan_iter(CrawlKeys(crawl_id).hosts, count=HOSTS_BATCH):
            batch.append(host.decode())
            if len(batch) >= HOSTS_BATCH:
                await self.fill_hosts(batch)
                batch = []
        if batch:
            await self.fill_hosts(batch)

    async def forget_hosts(self, crawl_id: str) -> None:
        """Drop an ended crawl's state on each of its hosts, then the set of its hosts."""
        await self.fill_crawl_hosts(crawl_id)
        await self.redis.delete(CrawlKeys(crawl_id).hosts)

    async def sweep(self, job_ids: Sequence[str | bytes]) -> tuple[int, int]:
        """sweep.lua: drop a cancelled crawl's queued jobs; (removed, aborted)."""
        removed, aborted = await self._frontier("sweep", [], list(job_ids))
        return int(removed), int(aborted)

    async def sweep_crawl(self, crawl_id: str) -> tuple[int, int]:
        """sweep.lua on every job of an ended crawl in arq's queue (which all crawls share),
        a batch at a time; (removed, aborted)."""
        removed = aborted = 0
        batch: list[bytes] = []
        async for member, _score in self.redis.zscan_iter(
            self.queue, match=f"{crawl_id}:*", count=SWEEP_BATCH
        ):
            batch.append(member)
            if len(batch) >= SWEEP_BATCH:
                dropped, stopped = await self.sweep(batch)
                removed, aborted, batch = removed + dropped, aborted + stopped, []
        if batch:
            dropped, stopped = await self.sweep(batch)
            removed, aborted = removed + dropped, aborted + stopped
        return removed, aborted

    async def claim(self, *, want: int, in_progress_ms: int, scan_max: int) -> Claim:
        """claim.lua: claim, start and judge up to ``want`` due jobs."""
        head, aborts, *flat = await self._frontier("claim", [], [in_progress_ms, want, scan_max])
        jobs = [
            Claimed(job_id.decode(), _claimed_score(until, try_), payload, int(try_), bool(ab),
                    verdict.decode(), int(lastmod) if lastmod else None)
            for job_id, until, payload, try_, ab, verdict, lastmod in (
                flat[i : i + 7] for i in range(0, len(flat), 7)
            )
        ]  # fmt: skip
        return Claim(jobs, float(head) if head else None, bool(aborts))

    async def finish(
        self, crawl_id: str, finished_at: str, manifest: str, unreached: int | None = None
    ) -> int:
        """finish.lua: mark the crawl done if nothing of it is pending, with where its
        ``manifest`` is and, of a crawl --since another, how many pages it no longer reaches
        (set on a cancelled crawl too): 1 done now, 0 still pending, -1 it had ended."""
        keys = CrawlKeys(crawl_id)
        script_keys = [keys.meta, keys.stats, keys.origins, keys.sitemaps]
        count = "" if unreached is None else str(unreached)
        args = [finished_at, keys.seen, keys.robots(""), manifest, keys.lastmods, count]
        return int(await self._call("finish", script_keys, args))

    async def cancel(self, crawl_id: str, finished_at: str, failed: str | None = None) -> int:
        """cancel.lua: the crawl is cancelled, or failed for the reason ``failed``; 0, -1 no
        such crawl, -2 ended."""
        keys = CrawlKeys(crawl_id)
        script_keys = [keys.meta, keys.stats, keys.origins, keys.sitemaps]
        state = "cancelled" if failed is None else "failed"
        args = [finished_at, keys.seen, keys.robots(""), state, failed or "", keys.lastmods]
        return int(await self._call("cancel", script_keys, args))

    async def forget(self, crawl_id: str) -> int:
        """forget.lua: 0, -1 no such crawl, -2 not ended."""
        keys = CrawlKeys(crawl_id)
        script_keys = [keys.meta, keys.stats, keys.reasons, keys.busiest, keys.hosts, CRAWLS_INDEX]
        return int(await self._call("forget", script_keys, [crawl_id]))

    async def pause(self, crawl_id: str) -> int:
        """switch_state.lua from running to paused: 0, -1 no such crawl, -2 not running."""
        return await self._switch(crawl_id, CrawlState.RUNNING, CrawlState.PAUSED)

    async def resume(self, crawl_id: str) -> int:
        """switch_state.lua from paused to running: 0, -1 no such crawl, -2 not paused."""
        return await self._switch(crawl_id, CrawlState.PAUSED, CrawlState.RUNNING)

    async def _switch(self, crawl_id: str, old: CrawlState, new: CrawlState) -> int:
        return int(await self._call("switch_state", [CrawlKeys(crawl_id).meta], [old, new]))


async def in_flight(redis: Redis, queue: str, crawl_id: str) -> int:
    """in_flight.lua: the crawl's page and robots.txt jobs its workers hold now (claimed,
    neither closed nor handed back)."""
    script = _scripts(redis)["in_flight"]
    return int(await script(keys=[queue], args=[now_ms(), crawl_id, finalize_job_id(crawl_id)]))
