"""robots.txt: fetched once per origin per crawl by a job of its own, kept in Redis, parsed with
protego once per worker process and kept parsed.

The frontier fetches an origin's robots.txt before any page of it (its host's backlog waits
behind a ``fetch_robots`` job, ``shared/lua/frontier.lua``). As RFC 9309 says: a 2xx robots.txt
is obeyed; a 4xx means there are no rules (allow all); a 5xx, a 429 or no answer means the site
is unreachable for now, so the job is tried again later and, once the crawl's retries are
spent, the origin's pages fail with the reason (an address the crawl's network policy refuses
is asked for again only while that policy is not settled: ``workers.jobs.running``). At most
``ROBOTS_MAX_BYTES`` are read (Google's limit), and parsing runs in a thread, so a huge
robots.txt never blocks the event loop.
"""

from __future__ import annotations

import asyncio
import json
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import httpx
from protego import Protego
from redis.asyncio import Redis

from crawlfleet.shared.keys import CrawlKeys
from crawlfleet.shared.settings import Settings
from crawlfleet.shared.urls import origin_of
from crawlfleet.workers.fetch import FetchResult, fetch
from crawlfleet.workers.metrics import WorkerMetrics
from crawlfleet.workers.turns import FetchTurns

ROBOTS_MAX_BYTES = 500 * 1024
ROBOTS_TTL_S = 24 * 3600
# parsed robots.txt kept per process, by (crawl, origin): the oldest is dropped past this
PARSED_KEPT = 1024
# the first wait before an unreachable robots.txt is asked for again (then doubled): every page
# of its origin waits on it, and a site that fails for a moment should not lose them all
ROBOTS_RETRY_BASE_S = 5.0


@dataclass(frozen=True)
class Rules:
    """The robots.txt of one origin: a parser, no rules (allow all), or unreachable."""

    parser: Protego | None
    unreachable: str | None = None

    def allows(self, url: str, user_agent: str) -> bool:
        return self.parser is None or bool(self.parser.can_fetch(url, user_agent))

    def sitemaps(self) -> list[str]:
        """The ``Sitemap:`` lines, as written (a URL, absolute or not)."""
        return [] if self.parser is None else list(self.parser.sitemaps)

    def crawl_delay(self, user_agent: str) -> float:
        if self.parser is None:
            return 0.0
        delay = self.parser.crawl_delay(user_agent)
        return float(delay) if delay else 0.0


def entry_of(result: FetchResult) -> tuple[bytes, bool]:
    """The JSON kept in Redis for a robots.txt fetch, and whether it left the origin
    unreachable (worth asking again, but for a refused address: ``worth_retrying``)."""
    if result.status is None or result.status == 429 or result.status >= 500:
        reason = f"status {result.status}" if result.error is None else str(result.error)
        return json.dumps({"state": "unreachable", "reason": reason}).encode(), True
    if 200 <= result.status < 300:
        body = result.body.decode("utf-8", errors="replace")
        return json.dumps({"state": "rules", "body": body}).encode(), False
    return json.dumps({"state": "allow-all", "status": result.status}).encode(), False


def _parse(raw: bytes) -> Rules:
    entry = json.loads(raw)
    if entry["state"] == "unreachable":
        return Rules(None, unreachable=str(entry["reason"]))
    return Rules(Protego.parse(entry["body"]) if entry["state"] == "rules" else None)


class RobotsCache:
    """robots.txt rules per (crawl, origin): parsed in this process, else read from Redis."""

    def __init__(
        self, redis: Redis, settings: Settings, turns: FetchTurns, metrics: WorkerMetrics
    ) -> None:
        self.redis = redis
        self.settings = settings
        self.turns = turns  # a robots.txt request is one of the worker's requests in flight
        self.metrics = metrics
        self._parsed: OrderedDict[tuple[str, str], Rules] = OrderedDict()
        self._parsing: dict[tuple[str, str], asyncio.Future[Rules]] = {}
        self.parses = 0  # robots.txt parsed by this process

    async def fetch(
        self, origin: str, client: httpx.AsyncClient, *, exchange: bool = False
    ) -> FetchResult:
        """GET the origin's robots.txt, at most ``ROBOTS_MAX_BYTES`` of it; with ``exchange``,
        keep what went over the wire (for the WARC records of a crawl that writes them)."""
        url = f"{origin}/robots.txt"
        async with self.turns.turn():
            with self.metrics.request():
                return await fetch(client, url, self.settings, ROBOTS_MAX_BYTES, exchange=exchange)

    async def rules(
        self,
        crawl_id: str,
        url: str,
        client: httpx.AsyncClient,
        record: Callable[[FetchResult], Awaitable[object]] | None = None,
    ) -> Rules:
        """The rules for ``url`` in ``crawl_id``; fetched here (with ``client``, the crawl's)
        only if Redis lost them (they expire after ``ROBOTS_TTL_S``), that fetch given to
        ``record`` (a crawl's WARC writer) when it got a response."""
        origin = origin_of(url)
        key = (crawl_id, origin)
        known = self._parsed.get(key)
        if known is not None:
            self._parsed.move_to_end(key)
            return known
        raw = await self.redis.get(CrawlKeys(crawl_id).robots(origin))
        if raw is None:
            result = await self.fetch(origin, client, exchange=record is not None)
            if record is not None and result.exchange is not None:
                await record(result)
            raw, _ = entry_of(result)
            await self.redis.set(CrawlKeys(crawl_id).robots(origin), raw, ex=ROBOTS_TTL_S)
        return await self.parse(crawl_id, origin, raw)

    async def parse(self, crawl_id: str, origin: str, raw: bytes) -> Rules:
        """Parse (in a thread) and keep the rules of one origin; jobs asking for the same
        origin meanwhile wait for that one parse."""
        key = (crawl_id, origin)
        known = self._parsed.get(key)
        if known is not None:
            return known
        parsing = self._parsing.get(key)
        if parsing is not None:
            return await asyncio.shield(parsing)
        parsing = asyncio.get_running_loop().create_future()
        self._parsing[key] = parsing
        try:
            self.parses += 1
            rules = await asyncio.to_thread(_parse, raw)
        except Exception as exc:
            parsing.set_exception(exc)
            parsing.exception()  # retrieved: no "never retrieved" warning if nobody waits
            raise
        except BaseException:
            parsing.cancel()
            raise
        finally:
            del self._parsing[key]
        parsing.set_result(rules)
        self._parsed[key] = rules
        while len(self._parsed) > PARSED_KEPT:
            self._parsed.popitem(last=False)
        return rules
