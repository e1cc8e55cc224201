"""robots.txt: fetched once per origin per crawl, kept in Redis, parsed with protego.

As RFC 9309 says: a 2xx robots.txt is obeyed; a 4xx means there are no rules (allow all); a
5xx, a 429 or no answer means the site is unreachable for now, so its pages wait and are
tried again later.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx
from protego import Protego
from redis.asyncio import Redis

from shared.keys import CrawlKeys
from shared.settings import Settings
from workers.fetch import fetch
from workers.turns import FetchTurns

ROBOTS_MAX_BYTES = 512 * 1024  # RFC 9309: parse at least 500 KiB
ROBOTS_TTL_S = 24 * 3600
UNREACHABLE_TTL_S = 30  # how long "robots.txt unreachable" is believed before asking again
LOCK_S = 30


class RobotsUnreachable(Exception):
    """The origin's robots.txt could not be had: its pages must wait."""

    def __init__(self, origin: str, reason: str) -> None:
        super().__init__(f"robots.txt of {origin} unreachable: {reason}")
        self.reason = reason
        self.retry_in = float(UNREACHABLE_TTL_S)


@dataclass(frozen=True)
class Rules:
    """The parsed robots.txt of one origin (None: no rules, everything allowed)."""

    parser: Protego | None

    def allows(self, url: str, user_agent: str) -> bool:
        return self.parser is None or bool(self.parser.can_fetch(url, user_agent))

    def crawl_delay(self, user_agent: str) -> float:
        if self.parser is None:
            return 0.0
        delay = self.parser.crawl_delay(user_agent)
        return float(delay) if delay else 0.0


def origin_of(url: str) -> str:
    """``scheme://host:port`` of a URL: robots.txt applies per origin."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return f"{parts.scheme}://{parts.hostname}:{port}"


class RobotsCache:
    """robots.txt rules per (crawl, origin): in this process, then in Redis, then fetched."""

    def __init__(self, redis: Redis, settings: Settings, turns: FetchTurns) -> None:
        self.redis = redis
        self.settings = settings
        self.turns = turns  # a robots.txt request is one of the worker's requests in flight
        self._local: dict[tuple[str, str], tuple[float, Rules]] = {}

    def known(self, crawl_id: str, url: str) -> Rules | None:
        """The rules for ``url`` if this process has them fresh, without asking Redis."""
        cached = self._local.get((crawl_id, origin_of(url)))
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        return None

    async def rules(self, crawl_id: str, url: str, client: httpx.AsyncClient) -> Rules:
        """The rules for ``url`` in ``crawl_id`` (fetched with ``client``, the crawl's);
        RobotsUnreachable if they cannot be had now, NoTurn if no fetch turn came free."""
        known = self.known(crawl_id, url)
        if known is not None:
            return known
        origin = origin_of(url)
        keys = CrawlKeys(crawl_id)
        for _ in range(int(LOCK_S / 0.1)):
            raw = await self.redis.get(keys.robots(origin))
            if raw is not None:
                return self._remember(crawl_id, origin, raw)
            token = secrets.token_hex(8)
            if await self.redis.set(keys.robots_lock(origin), token, nx=True, ex=LOCK_S):
                try:
                    raw = await self._fetch(origin, client)
                    ttl = UNREACHABLE_TTL_S if b'"unreachable"' in raw else ROBOTS_TTL_S
                    await self.redis.set(keys.robots(origin), raw, ex=ttl)
                finally:
                    await self.redis.delete(keys.robots_lock(origin))
                return self._remember(crawl_id, origin, raw)
            await asyncio.sleep(0.1)  # another worker is fetching it
        raise RobotsUnreachable(origin, "another worker is still fetching it")

    def _remember(self, crawl_id: str, origin: str, raw: bytes) -> Rules:
        entry = json.loads(raw)
        if entry["state"] == "unreachable":
            raise RobotsUnreachable(origin, entry["reason"])
        rules = Rules(Protego.parse(entry["body"]) if entry["state"] == "rules" else None)
        # a short local memory: the Redis copy stays the one truth for the whole fleet
        self._local[(crawl_id, origin)] = (time.monotonic() + 60, rules)
        return rules

    async def _fetch(self, origin: str, client: httpx.AsyncClient) -> bytes:
        capped = self.settings.model_copy(update={"max_page_bytes": ROBOTS_MAX_BYTES})
        async with self.turns.turn():
            result = await fetch(client, f"{origin}/robots.txt", capped)
        if result.status is None or result.status == 429 or result.status >= 500:
            reason = result.error or f"status {result.status}"
            return json.dumps({"state": "unreachable", "reason": reason}).encode()
        if 200 <= result.status < 300:
            body = result.body.decode("utf-8", errors="replace")
            return json.dumps({"state": "rules", "body": body}).encode()
        return json.dumps({"state": "allow-all", "status": result.status}).encode()
