"""Live progress of a crawl: a rich status line on a terminal, plain lines elsewhere."""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from collections.abc import Callable

from redis.asyncio import Redis
from rich.console import Console
from rich.live import Live
from rich.text import Text

from shared.catalog import has_ended, load_status, workers_serving
from shared.connections import REDIS_ERRORS
from shared.crawl import CrawlStatus
from shared.errors import RedisUnavailable


def human_bytes(n: int) -> str:
    """``1536`` -> ``1.5 KiB``."""
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def human_seconds(seconds: float) -> str:
    """``372`` -> ``6m12s``."""
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def state_text(status: CrawlStatus, stall_after_s: float) -> str:
    """The crawl's state, and for a running crawl that has not moved in ``stall_after_s``,
    how long it has been stalled."""
    stalled = status.stalled_s(stall_after_s)
    if stalled is None:
        return status.state.value
    return f"{status.state.value}, stalled {human_seconds(stalled)}"


def progress_line(status: CrawlStatus, rate: float, stall_after_s: float) -> str:
    """One line: state, pages, queue, rate, errors, bytes."""
    c = status.counters
    return (
        f"{status.crawl_id}  {state_text(status, stall_after_s)}  pages {c.fetched}  "
        f"queue {c.pending}  rate {rate:.1f}/s  failed {c.failed}  {human_bytes(c.bytes)}"
    )


class _Poller:
    """Reads a crawl's status, riding out Redis outages of up to ``wait_s`` seconds."""

    def __init__(self, redis: Redis, crawl_id: str, console: Console, wait_s: float) -> None:
        self.redis = redis
        self.crawl_id = crawl_id
        self.console = console
        self.wait_s = wait_s

    async def status(self) -> CrawlStatus:
        lost_at: float | None = None
        while True:
            try:
                status = await load_status(self.redis, self.crawl_id)
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
            return status

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
    console: Console | None = None,
    interval: float = 0.5,
    wait_s: float = 60.0,
    stall_after_s: float = 300.0,
    check: Callable[[], None] | None = None,
    queue_name: str | None = None,
) -> CrawlStatus:
    """Show progress until the crawl has ended; return its final status.

    A Redis outage is reported once and waited out for up to ``wait_s`` seconds; a crawl that
    closed no page for ``stall_after_s`` is shown as stalled. ``check`` is called every
    interval and may raise to stop watching (``run`` uses it to notice that its workers died).
    With ``queue_name``, a crawl that no worker of that queue has served for
    ``NO_WORKER_HINT_S`` is told once how to start one.
    """
    console = console or Console(stderr=True)
    poller = _Poller(redis, crawl_id, console, wait_s)
    started = time.monotonic()
    status = await poller.status()
    first_done = status.counters.fetched + status.counters.failed
    hint = _NoWorkerHint(redis, queue_name, console, started) if queue_name else None

    def line_of(s: CrawlStatus) -> str:
        done = s.counters.fetched + s.counters.failed - first_done
        return progress_line(s, done / max(time.monotonic() - started, 1e-3), stall_after_s)

    async def next_status() -> CrawlStatus:
        await poller.pause(interval)
        if check is not None:
            check()
        if hint is not None:
            await hint.look()
        return await poller.status()

    if console.is_terminal:
        with Live(Text(line_of(status)), console=console, transient=True) as live:
            while status.state.live:
                status = await next_status()
                live.update(Text(line_of(status)))
    else:
        last_plain = 0.0
        while status.state.live:
            if time.monotonic() - last_plain >= _PLAIN_EVERY_S:
                print(line_of(status), file=sys.stderr, flush=True)
                last_plain = time.monotonic()
            status = await next_status()
    return status


# how often the watcher asks whether the crawl has ended, between refreshes
END_CHECK_S = 0.05
# how often a non-terminal gets a progress line
_PLAIN_EVERY_S = 5.0
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
