"""Live progress of a crawl: a rich status line on a terminal, plain lines elsewhere."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable

from redis.asyncio import Redis
from rich.console import Console
from rich.live import Live
from rich.text import Text

from shared.catalog import load_status
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


async def watch(
    redis: Redis,
    crawl_id: str,
    *,
    console: Console | None = None,
    interval: float = 0.5,
    wait_s: float = 60.0,
    stall_after_s: float = 300.0,
    check: Callable[[], None] | None = None,
) -> CrawlStatus:
    """Show progress until the crawl has ended; return its final status.

    A Redis outage is reported once and waited out for up to ``wait_s`` seconds; a crawl that
    closed no page for ``stall_after_s`` is shown as stalled. ``check`` is called every
    interval and may raise to stop watching (``run`` uses it to notice that its workers died).
    """
    console = console or Console(stderr=True)
    poller = _Poller(redis, crawl_id, console, wait_s)
    started = time.monotonic()
    status = await poller.status()
    first_done = status.counters.fetched + status.counters.failed
    plain_every = 5.0
    last_plain = 0.0

    def rate_of(s: CrawlStatus) -> float:
        done = s.counters.fetched + s.counters.failed - first_done
        return done / max(time.monotonic() - started, 1e-3)

    if console.is_terminal:
        line = progress_line(status, 0.0, stall_after_s)
        with Live(Text(line), console=console, transient=True) as live:
            while status.state.live:
                await asyncio.sleep(interval)
                if check is not None:
                    check()
                status = await poller.status()
                live.update(Text(progress_line(status, rate_of(status), stall_after_s)))
    else:
        while status.state.live:
            now = time.monotonic()
            if now - last_plain >= plain_every:
                line = progress_line(status, rate_of(status), stall_after_s)
                print(line, file=sys.stderr, flush=True)
                last_plain = now
            await asyncio.sleep(interval)
            if check is not None:
                check()
            status = await poller.status()
    return status
