"""Live progress of a crawl: a rich panel on a terminal, a plain line now and then elsewhere."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable

from redis.asyncio import Redis
from rich.console import Console
from rich.live import Live

from crawlfleet.scheduler.panel import View, panel, plain_line
from crawlfleet.scheduler.rates import RateMeter
from crawlfleet.shared.catalog import has_ended, load_status, workers_serving
from crawlfleet.shared.connections import REDIS_ERRORS
from crawlfleet.shared.crawl import CrawlStatus
from crawlfleet.shared.errors import RedisUnavailable
from crawlfleet.shared.scripts import in_flight


class _Poller:
    """Reads a crawl's status and the jobs its workers hold, riding out Redis outages of up to
    ``wait_s`` seconds."""

    def __init__(
        self, redis: Redis, crawl_id: str, queue_name: str, console: Console, wait_s: float
    ) -> None:
        self.redis = redis
        self.crawl_id = crawl_id
        self.queue_name = queue_name
        self.console = console
        self.wait_s = wait_s

    async def read(self) -> tuple[CrawlStatus, int]:
        lost_at: float | None = None
        while True:
            try:
                status = await load_status(self.redis, self.crawl_id)
                held = await in_flight(self.redis, self.queue_name, self.crawl_id)
            except REDIS_ERRORS as exc:
                now = time.monotonic()
                if lost_at is None:
                    lost_at = now
                    self.console.print(f"lost Redis ({exc}); reconnecting", highlight=False)
                elif now - lost_at > self.wait_s:
                    raise RedisUnavailable(
                        f"lost Redis for over {self.wait_s:.0f}s and could not reconnect: {exc}"
                    ) from exc
                await asyncio.sleep(1.0)
                continue
            if lost_at is not None:
                self.console.print("Redis reachable again", highlight=False)
            return status, held

    async def pause(self, seconds: float) -> None:
        """Wait ``seconds``, or only until the crawl has ended: a small crawl's ``run`` is
        done as soon as its last page is, not at the next refresh."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            await asyncio.sleep(min(END_CHECK_S, left))
            with contextlib.suppress(*REDIS_ERRORS):  # the next status() reports an outage
                if await has_ended(self.redis, self.crawl_id):
                    return


async def watch(
    redis: Redis,
    crawl_id: str,
    *,
    queue_name: str,
    console: Console | None = None,
    interval: float = 0.5,
    wait_s: float = 60.0,
    stall_after_s: float = 300.0,
    plain_every_s: float = 5.0,
    check: Callable[[], None] | None = None,
    hint_no_worker: bool = False,
) -> CrawlStatus:
    """Show progress until the crawl has ended; return its final status.

    A terminal gets a live panel (``scheduler.panel``), left on screen as the crawl ended;
    anything else a plain line every ``plain_every_s``. A Redis outage is reported once and
    waited out for up to ``wait_s`` seconds; a crawl that closed no page for
    ``stall_after_s`` is shown as stalled. ``check`` is called every interval and may raise
    to stop watching (``run`` uses it to notice that its workers died). With
    ``hint_no_worker``, a crawl that no worker of ``queue_name`` has served for
    ``NO_WORKER_HINT_S`` is told once how to start one.
    """
    console = console or Console(stderr=True)
    poller = _Poller(redis, crawl_id, queue_name, console, wait_s)
    meter = RateMeter()
    started = time.monotonic()
    hint = _NoWorkerHint(redis, queue_name, console, started) if hint_no_worker else None

    async def look() -> View:
        status, held = await poller.read()
        now = time.monotonic()
        c = status.counters
        rates = meter.add(now, c.done, c.bytes)
        return View(status, now - started, held, rates)

    async def next_look() -> View:
        await poller.pause(interval)
        if check is not None:
            check()
        if hint is not None:
            await hint.look()
        return await look()

    view = await look()
    if console.is_terminal:
        with Live(panel(view, stall_after_s), console=console, auto_refresh=False) as live:
            while view.status.state.live:
                view = await next_look()
                live.update(panel(view, stall_after_s), refresh=True)
    else:
        last_plain = 0.0
        while view.status.state.live:
            if time.monotonic() - last_plain >= plain_every_s:
                line = plain_line(view, stall_after_s)
                console.print(line, markup=False, highlight=False, soft_wrap=True)
                last_plain = time.monotonic()
            view = await next_look()
    return view.status


# how often the watcher asks whether the crawl has ended, between refreshes
END_CHECK_S = 0.05
# how long a crawl may go without a worker on its queue before the user is told how to start one
NO_WORKER_HINT_S = 5.0


class _NoWorkerHint:
    """Says once, if no worker serves the queue ``NO_WORKER_HINT_S`` after watching began,
    that the crawl waits for one and how to start one."""

    def __init__(self, redis: Redis, queue_name: str, console: Console, since: float) -> None:
        self.redis = redis
        self.queue_name = queue_name
        self.console = console
        self.since = since
        self.done = False

    async def look(self) -> None:
        if self.done or time.monotonic() - self.since < NO_WORKER_HINT_S:
            return
        try:
            serving = await workers_serving(self.redis, self.queue_name)
        except REDIS_ERRORS:
            return  # the poller reports an outage
        self.done = True
        if not serving:
            self.console.print(
                f"no worker serves queue {self.queue_name} yet: the crawl waits for one. "
                "Start one with `crawlfleet worker` (same REDIS_URL), or "
                "`docker compose up -d --scale worker=N`",
                highlight=False,
                soft_wrap=True,
            )
