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
When jobs wait for a turn, a request that has taken several times as long as the worker's
requests usually do (``YIELD_FACTOR`` x their moving average, a tenth of ``park_after_s`` at
least) parks at once, one for each job waiting: at a crawl's start, the first requests of
hosts that never answer took every turn, and the jobs of the hosts that answer in milliseconds
waited out the half second behind them. Each request counts in the average for no more than
``park_after_s``, so hosts that never answer raise it little; it starts as if a few requests
had taken a quarter of the least lateness, so that a crawl's first answers (slower than the
rest: connections to open, every job starting at once) do not make the first requests of the
hosts that never answer look punctual. On a crawl whose every request takes about as long,
none is late once a few have been answered, and turns go first come first served as before.
A fast response (all of it within the threshold) never parks: parking costs its path one timer
set and cancelled, and a free turn is taken without a timeout context, which more than pays
for it. What bounds a worker's requests is then the frontier (each host's slots, fleet-wide);
what bounds the bodies it holds is its jobs (``max_jobs`` x the page cap at worst, and a
parked request is one whose bytes come slowly).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from crawlfleet.shared.errors import NoTurn
from crawlfleet.shared.settings import FETCH_TURN_WAIT_S

# a request this many times as late as the worker's requests usually are gives its turn to a job
# waiting for one (and a tenth of park_after_s at least: hosts that answer in milliseconds do
# not, when the worker's CPU is busy)
YIELD_FACTOR = 4.0
# the weight of each request in the moving average of their times, once the first few have made
# it (until then each weighs as much as those before it), and the requests it starts as if it
# had counted
_AVERAGE_WEIGHT = 0.05
_PRIOR = 8


class _Ticket:
    """One turn taken: when, the timer that parks it, and whether its request has parked."""

    __slots__ = ("parked", "started", "timer")

    def __init__(self, started: float) -> None:
        self.parked = False
        self.started = started
        self.timer: asyncio.TimerHandle | None = None


class FetchTurns:
    """``concurrency`` turns to fetch, taken first come first served; a request that holds
    one for ``park_after_s`` parks (gives it back), or sooner, when jobs wait for a turn, if
    it is late, up to ``max_parked`` at once."""

    def __init__(self, concurrency: int, park_after_s: float, max_parked: int) -> None:
        self._turns = asyncio.Semaphore(concurrency)
        self._park_after_s = park_after_s
        self._least_late_s = park_after_s / 10
        self._max_parked = max_parked
        # moving average of the requests' times (each park_after_s at most) and the weight of
        # the next; it starts as if _PRIOR requests had been late from the least lateness on
        self._usual_s = self._least_late_s / YIELD_FACTOR
        self._weight = 1 / (_PRIOR + 1)
        # late requests that may still park for a waiting job, longest held first
        self._late: dict[_Ticket, None] = {}
        # the jobs waiting for a turn that no late request has parked for yet
        self._unserved: dict[object, None] = {}
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
            await self._wait_for_turn()
        loop = asyncio.get_running_loop()
        ticket = _Ticket(loop.time())
        ticket.timer = loop.call_at(ticket.started + self._least_late_s, self._look, ticket)
        try:
            yield
        finally:
            ticket.timer.cancel()
            if ticket.parked:
                self.parked -= 1
            else:
                self._late.pop(ticket, None)
                self._turns.release()
            took = min(loop.time() - ticket.started, self._park_after_s)
            self._usual_s += self._weight * (took - self._usual_s)
            if self._weight > _AVERAGE_WEIGHT:
                self._weight = max(_AVERAGE_WEIGHT, self._weight / (1 + self._weight))
        await asyncio.sleep(0)

    async def _wait_for_turn(self) -> None:
        waiter = object()
        self._unserved[waiter] = None
        self._park_late()
        try:
            async with asyncio.timeout(FETCH_TURN_WAIT_S):
                await self._turns.acquire()
        except TimeoutError:
            # back to the queue for a moment: its job, or another, finds a turn soon
            wait = random.uniform(0.5, 1.5)
            raise NoTurn(f"no fetch turn free in {FETCH_TURN_WAIT_S:g}s", wait) from None
        finally:
            self._unserved.pop(waiter, None)

    def _look(self, ticket: _Ticket) -> None:
        """Whether the request is late yet: if so, it parks for a job waiting for a turn, or
        when one comes; else look again when it would be."""
        # runs while the fetch waits on the network, as _park
        loop = asyncio.get_running_loop()
        now, park_at = loop.time(), ticket.started + self._park_after_s
        late_at = ticket.started + max(self._least_late_s, YIELD_FACTOR * self._usual_s)
        if late_at >= park_at:
            ticket.timer = loop.call_at(park_at, self._park, ticket)
        elif now < late_at:
            ticket.timer = loop.call_at(late_at, self._look, ticket)
        else:
            self._late[ticket] = None
            ticket.timer = loop.call_at(park_at, self._park, ticket)
            self._park_late()

    def _park_late(self) -> None:
        """Park the late request held longest for the first job waiting for a turn that none
        has parked for yet, if there are both (the turn goes to the first job waiting: jobs
        that wait are served in order)."""
        if not self._late or not self._unserved or self.parked >= self._max_parked:
            return
        del self._unserved[next(iter(self._unserved))]
        ticket = next(iter(self._late))
        assert ticket.timer is not None
        ticket.timer.cancel()
        self._park(ticket)

    def _park(self, ticket: _Ticket) -> None:
        # runs while the fetch waits on the network: the only thing it awaits
        self._late.pop(ticket, None)
        if self.parked >= self._max_parked:
            return
        ticket.parked = True
        self.parked += 1
        self.ever_parked += 1
        self._turns.release()
        if self.on_park is not None:
            self.on_park()
