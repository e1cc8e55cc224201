"""Per-host politeness shared by the whole fleet: request slots and the delay between starts.

A job holds one of its host's slots from the start of its request until the page is closed
(``page_done.lua`` gives it back); a worker that dies mid-page loses its slot when the lease
ends. Most jobs take their slot in the same round trip that starts them (``start.lua``).

A job whose host has all its slots busy waits in place for one: it asks again as soon as a job
of the same worker gives a slot of that host back, and every ``busy_poll_s`` for the slots that
other workers give back. Asking on a fixed short beat instead cost a round trip per waiting job
every 50 ms, more than the pages themselves on a crawl of one host.
"""

from __future__ import annotations

import asyncio
import random
import secrets
import time
from collections import defaultdict, deque
from dataclasses import dataclass

from redis.asyncio import Redis

from shared.keys import HostKeys
from shared.scripts import Scripts

# how long a job waits in place for its host before it hands itself back to the queue: short
# waits are cheaper in place, long ones would hold a worker slot that other hosts could use
IN_JOB_WAIT_S = 2.0
# slot.lua's answer when all of a host's slots are busy
BUSY = -2


class HostBusy(Exception):
    """The host has no free slot soon: try the job again after ``retry_in`` seconds."""

    def __init__(self, host: str, retry_in: float) -> None:
        super().__init__(f"host {host} busy")
        self.retry_in = retry_in


@dataclass(frozen=True, slots=True)
class SlotAsk:
    """One job's claim on a request slot of ``host``: the keys and arguments of ``slot.lua``."""

    host: str
    token: str
    concurrency: int
    delay_ms: int
    lease_ms: int

    @property
    def keys(self) -> list[str]:
        host = HostKeys(self.host)
        return [host.slots, host.next_start]

    @property
    def args(self) -> list[str | int]:
        return [self.token, self.lease_ms, self.concurrency, self.delay_ms]


class Politeness:
    """Fleet-wide per-host limits, kept in Redis (``shared/lua/slot.lua``, ``host_*.lua``)."""

    def __init__(self, redis: Redis, lease_s: float, busy_poll_s: float = 0.25) -> None:
        self.redis = redis
        self.scripts = Scripts.register(redis)
        # a dead worker's slot frees itself when its lease ends: longer than any page job
        self.lease_ms = int(lease_s * 1000)
        self.busy_poll_s = busy_poll_s
        # the jobs of this process waiting for a slot of a host, first come first woken
        self._waiting: defaultdict[str, deque[asyncio.Future[None]]] = defaultdict(deque)
        self.held_back = 0  # jobs of this process in take() without their slot yet

    def ask(self, host: str, concurrency: int, delay_s: float) -> SlotAsk:
        """A new claim on one of ``concurrency`` slots of ``host``, ``delay_s`` apart."""
        return SlotAsk(host, secrets.token_hex(8), concurrency, int(delay_s * 1000), self.lease_ms)

    async def take(self, ask: SlotAsk, wait_ms: int | None = None) -> None:
        """Hold the slot of ``ask``, waiting in place for a while; raises HostBusy if it is not
        coming soon. ``wait_ms`` is an answer already had (from ``start.lua``)."""
        if wait_ms == 0:
            return
        deadline = time.monotonic() + IN_JOB_WAIT_S
        self.held_back += 1
        try:
            while True:
                if wait_ms is None:
                    wait_ms = int(await self.scripts.host_acquire(keys=ask.keys, args=ask.args))
                if wait_ms == 0:
                    return
                busy = wait_ms == BUSY
                wait = (self.busy_poll_s if busy else wait_ms / 1000) * random.uniform(1.0, 1.2)
                if time.monotonic() + wait > deadline:
                    raise HostBusy(ask.host, max(wait, 0.5) + random.uniform(0, 1))
                if busy:
                    await self._wait_for_given_back(ask.host, at_most_s=wait)
                else:
                    await asyncio.sleep(wait)
                wait_ms = None
        finally:
            self.held_back -= 1

    async def _wait_for_given_back(self, host: str, at_most_s: float) -> None:
        """Until a job of this process gives back a slot of ``host``, or ``at_most_s``."""
        woken: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        waiting = self._waiting[host]
        waiting.append(woken)
        try:
            async with asyncio.timeout(at_most_s):
                await woken
        except TimeoutError:
            pass
        finally:
            if not woken.done():
                waiting.remove(woken)
            if not waiting and self._waiting.get(host) is waiting:
                del self._waiting[host]

    def given_back(self, host: str) -> None:
        """A job of this process gave back a slot of ``host``: the first job waiting for one
        asks again now."""
        waiting = self._waiting.get(host)
        while waiting:
            woken = waiting.popleft()
            if not woken.done():
                woken.set_result(None)
                return

    async def release(self, ask: SlotAsk) -> None:
        """Give back the slot of ``ask`` if it holds one."""
        await self.redis.zrem(HostKeys(ask.host).slots, ask.token)
        self.given_back(ask.host)

    async def hold(self, host: str, seconds: float) -> None:
        """Start no request to ``host`` for ``seconds`` (a Retry-After, a Crawl-delay)."""
        await self.scripts.host_hold(keys=[HostKeys(host).next_start], args=[int(seconds * 1000)])
