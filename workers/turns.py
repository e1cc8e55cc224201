"""Fetch turns: how many requests one worker has in flight at once (``--concurrency``).

A worker holds twice as many page jobs as it has turns (``Settings.jobs_held``), so that when a
response comes in, a job that has already been claimed and started is there to send the next
request at once. With one job per turn, the next request waited for the page's own parsing and
storing, its close, the claim of the next job and that job's start; under load the jobs fell
into step, every fetch in a worker at once and then every parse, and the CPU idled through each
round of network waits (one worker made 0.64-0.69 of its 0 ms throughput at 50 ms a page).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from shared.settings import FETCH_TURN_WAIT_S


class NoTurn(Exception):
    """No fetch turn came free in ``FETCH_TURN_WAIT_S``."""


class FetchTurns:
    """``concurrency`` turns to fetch, taken first come first served."""

    def __init__(self, concurrency: int) -> None:
        self._turns = asyncio.Semaphore(concurrency)

    @asynccontextmanager
    async def turn(self) -> AsyncIterator[None]:
        """Hold a turn for one fetch; raises NoTurn if none comes free in ``FETCH_TURN_WAIT_S``.

        On leaving, the jobs waiting for a turn send their requests before this job goes on
        to parse what it fetched.
        """
        try:
            async with asyncio.timeout(FETCH_TURN_WAIT_S):
                await self._turns.acquire()
        except TimeoutError:
            raise NoTurn(f"no fetch turn free in {FETCH_TURN_WAIT_S:g}s") from None
        try:
            yield
        finally:
            self._turns.release()
        await asyncio.sleep(0)
