"""The bytes of response bodies one worker holds at once (``max_body_bytes_in_flight``).

Requests in flight are cheap; the bodies they bring in are not: 128 requests of 10 MiB pages
would hold 1.3 GB. Each page job holds the bytes of the body it read (and of its raw copy,
for WARC) from its first read until the job ends (parsed, stored, closed); a read that would
take the worker past its budget waits until other jobs give theirs back. The oldest job never
waits, so reads cannot all wait on each other: a worker's bodies stay under the budget plus
one page (``--max-bytes-per-page``), whatever the concurrency.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from contextvars import ContextVar


class _Hold:
    """The bytes one job holds."""

    __slots__ = ("budget", "size")

    def __init__(self, budget: BodyBytes) -> None:
        self.budget = budget
        self.size = 0


# the job's hold, for the reads of its fetch (no hold: the bytes are not counted)
_HOLD: ContextVar[_Hold | None] = ContextVar("body_bytes_hold", default=None)


class BodyBytes:
    """A worker's budget of body bytes, shared by its jobs in arrival order."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self._holds: dict[_Hold, None] = {}  # oldest first
        self._changed = asyncio.Condition()

    @asynccontextmanager
    async def held(self) -> AsyncIterator[None]:
        """For the ``with`` block (one job), the reads of body bytes count against the budget;
        they are given back when it ends."""
        hold = _Hold(self)
        self._holds[hold] = None
        token = _HOLD.set(hold)
        try:
            yield
        finally:
            _HOLD.reset(token)
            del self._holds[hold]
            self.used -= hold.size
            async with self._changed:
                self._changed.notify_all()

    async def _take(self, hold: _Hold, n: int) -> None:
        if self.used + n <= self.limit:  # room: nothing to wait for (no await until counted)
            self.used += n
            hold.size += n
            return
        async with self._changed:
            await self._changed.wait_for(
                lambda: self.used + n <= self.limit or next(iter(self._holds)) is hold
            )
            self.used += n
            hold.size += n


async def take_body_bytes(n: int) -> None:
    """Count ``n`` more bytes of body against the current job's budget, waiting while the
    worker holds too many (no job: nothing to count)."""
    hold = _HOLD.get()
    if hold is not None and n > 0:
        await hold.budget._take(hold, n)
