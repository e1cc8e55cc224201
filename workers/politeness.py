"""Per-host politeness shared by the whole fleet: request slots and the delay between starts."""

from __future__ import annotations

import asyncio
import random
import secrets
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from redis.asyncio import Redis

from shared.keys import HostKeys
from shared.scripts import Scripts

# how long a job waits in place for its host before it hands itself back to the queue: short
# waits are cheaper in place, long ones would hold a worker slot that other hosts could use
IN_JOB_WAIT_S = 2.0


class HostBusy(Exception):
    """The host has no free slot soon: try the job again after ``retry_in`` seconds."""

    def __init__(self, host: str, retry_in: float) -> None:
        super().__init__(f"host {host} busy")
        self.retry_in = retry_in


class Politeness:
    """Fleet-wide per-host limits, kept in Redis (``shared/lua/host_*.lua``)."""

    def __init__(self, redis: Redis, lease_s: float) -> None:
        self.redis = redis
        self.scripts = Scripts.register(redis)
        # a dead worker's slot frees itself when its lease ends: longer than any request
        self.lease_ms = int(lease_s * 1000)

    @asynccontextmanager
    async def slot(self, host: str, concurrency: int, delay_s: float) -> AsyncIterator[None]:
        """Hold one of ``concurrency`` request slots of ``host``, at least ``delay_s`` after the
        previous request to it started; raises HostBusy if that is not coming soon."""
        keys = HostKeys(host)
        token = secrets.token_hex(8)
        deadline = time.monotonic() + IN_JOB_WAIT_S
        while True:
            wait_ms = int(
                await self.scripts.host_acquire(
                    keys=[keys.slots, keys.next_start],
                    args=[token, self.lease_ms, concurrency, int(delay_s * 1000)],
                )
            )
            if wait_ms == 0:
                break
            wait = wait_ms / 1000 * random.uniform(1.0, 1.2)
            if time.monotonic() + wait > deadline:
                raise HostBusy(host, max(wait, 0.5) + random.uniform(0, 1))
            await asyncio.sleep(wait)
        try:
            yield
        finally:
            await self.redis.zrem(keys.slots, token)

    async def hold(self, host: str, seconds: float) -> None:
        """Start no request to ``host`` for ``seconds`` (a Retry-After, a Crawl-delay)."""
        await self.scripts.host_hold(keys=[HostKeys(host).next_start], args=[int(seconds * 1000)])
