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
from shared.crawl import CrawlState, CrawlStatus


def human_bytes(n: int) -> str:
    """``1536`` -> ``1.5 KiB``."""
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def progress_line(status: CrawlStatus, rate: float) -> str:
    """One line: pages, queue, rate, errors, bytes."""
    c = status.counters
    return (
        f"{status.crawl_id}  {status.state.value}  pages {c.fetched}  queue {c.pending}  "
        f"rate {rate:.1f}/s  failed {c.failed}  {human_bytes(c.bytes)}"
    )


async def watch(
    redis: Redis,
    crawl_id: str,
    *,
    console: Console | None = None,
    interval: float = 0.5,
    check: Callable[[], None] | None = None,
) -> CrawlStatus:
    """Show progress until the crawl is no longer running; return its final status.

    ``check`` is called every interval and may raise to stop watching (``run`` uses it to
    notice that its workers died).
    """
    console = console or Console(stderr=True)
    started = time.monotonic()
    status = await load_status(redis, crawl_id)
    first_done = status.counters.fetched + status.counters.failed
    plain_every = 5.0
    last_plain = 0.0

    def rate_of(s: CrawlStatus) -> float:
        done = s.counters.fetched + s.counters.failed - first_done
        return done / max(time.monotonic() - started, 1e-3)

    if console.is_terminal:
        with Live(Text(progress_line(status, 0.0)), console=console, transient=True) as live:
            while status.state is CrawlState.RUNNING:
                await asyncio.sleep(interval)
                if check is not None:
                    check()
                status = await load_status(redis, crawl_id)
                live.update(Text(progress_line(status, rate_of(status))))
    else:
        while status.state is CrawlState.RUNNING:
            now = time.monotonic()
            if now - last_plain >= plain_every:
                print(progress_line(status, rate_of(status)), file=sys.stderr, flush=True)
                last_plain = now
            await asyncio.sleep(interval)
            if check is not None:
                check()
            status = await load_status(redis, crawl_id)
    return status
