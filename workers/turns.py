"""Fetch turns: how many requests one worker has answering at once (``--concurrency``), and
how requests that wait on a slow network give theirs up.

A worker holds twice as many page jobs as it has turns (``Settings.jobs_held``), so that when a
response comes in, a job that has already been claimed and started is there to send the next
request at once. With one job per turn, the next request waited for the page's own parsing and
storing, its close, the claim of the next job and that job's start; under load the jobs fell
into step, every fetch in a worker at once and then every parse, and the CPU idled through each
round of network waits (one worker made 0.64-0.69 of its 0 ms throughput at 50 ms a page).

What a worker has little of is CPU (parsing a page) and memory for the bodies it holds, not
sockets: a request that waits on the network costs neither, and an event loop can wait on
thousands. Yet a turn held for a whole timeout by a host that never answers is one taken from
the hosts that do: 50 such hosts with 8 slots each held every turn of two workers, and the
fast hosts beside them took 83 times as long. So a request still unanswered (head and body
not read to the end) ``park_after_s`` after it took its turn is *parked*: it gives back its
turn and its job's place in the worker, and waits on, up to its deadline, at no cost to the
others. The worker claims another job in its place (``parked`` counts them;
``FleetWorker``), up to ``max_parked`` parked at once (then a slow request keeps its turn).
A fast response (all of it within ``park_after_s``, half a second by default) never parks:
parking costs its path one timer set and cancelled, and a free turn is taken without a
timeout context, which more than pays for it. What bounds a worker's requests is then the
frontier (each host's slots, fleet-wide); what bounds the bodies it holds is its jobs
(``max_jobs`` x the page cap at worst, and a parked request is one whose bytes come slowly).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from crawlfleet.shared.errors import NoTurn
from crawlfleet.shared.settings import FETCH_TURN_WAIT_S


class _Ticket:
    """One turn taken: whether its request has parked."""

    __slots__ = ("parked",)

    def __init__(self) -> None:
        self.parked = False


class FetchTurns:
    """``concurrency`` turns to fetch, taken first come first served; a request that holds
    one for ``park_after_s`` parks (gives it back), up to ``max_parked`` at once."""

    def __init__(self, concurrency: int, park_after_s: float, max_parked: int) -> None:
        self._turns = asyncio.Semaphore(concurrency)
        self._park_after_s = park_after_s
        self._max_parked = max_parked
        self.parked = 0  # requests parked now
        self.ever_parked = 0
        # told when a request parks: its job's place in the worker is free for another
        self.on_park: Callable[[], None] | None = None

    @asynccontextmanager
    async def turn(self) -> AsyncIterator[None]:
        """Hold a turn for one fetch; raises NoTurn if none comes free in ``FETCH_TURN_WAIT_S``.

        The body of the ``async with`` must only wait on the network (a fetch): the turn may
        be given back while it waits. On leaving, the jobs waiting for a turn send their
        requests before this job goes on to parse what it fetched.
        """
        if not self._turns.locked():
            await self._turns.acquire()  # free, and nobody waits before us: at once
        else:
            try:
                async with asyncio.timeout(FETCH_TURN_WAIT_S):
                    await self._turns.acquire()
            except TimeoutError:
                # back to the queue for a moment: its job, or another, finds a turn soon
                wait = random.uniform(0.5, 1.5)
                raise NoTurn(f"no fetch turn free in {FETCH_TURN_WAIT_S:g}s", wait) from None
        ticket = _Ticket()
        timer = asyncio.get_running_loop().call_later(self._park_after_s, self._park, ticket)
        try:
            yield
        finally:
            timer.cancel()
            if ticket.parked:
                self.parked -= 1
            else:
                self._turns.release()
        await asyncio.sleep(0)

    def _park(self, ticket: _Ticket) -> None:
        # runs while the fetch waits on the network: the only thing it awaits
        if self.parked >= self._max_parked:
            return
        ticket.parked = True
        self.parked += 1
        self.ever_parked += 1
        self._turns.release()
        if self.on_park is not None:
            self.on_park()
