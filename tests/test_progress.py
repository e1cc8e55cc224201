"""Watching a crawl's progress until it ends."""

from __future__ import annotations

import asyncio
import io

from redis.asyncio import Redis
from rich.console import Console

from scheduler.control import cancel_crawl, seed_crawl
from scheduler.progress import watch
from shared.crawl import CrawlSpec, CrawlState
from shared.settings import Settings


async def test_the_watch_ends_as_soon_as_the_crawl_does(redis: Redis, settings: Settings) -> None:
    """The watcher notices the end between its refreshes: with an hour between two, a crawl
    cancelled meanwhile still ends the watch at once (no worker runs here)."""
    spec = CrawlSpec(crawl_id="ends", seeds=["http://127.0.0.2:9/"], depth=1)
    await seed_crawl(redis, settings, spec)
    console = Console(file=io.StringIO(), force_terminal=False)
    watching = asyncio.create_task(watch(redis, "ends", console=console, interval=3600))
    await asyncio.sleep(0.2)  # the watch has begun its wait
    assert not watching.done()
    await cancel_crawl(redis, settings, "ends")
    final = await asyncio.wait_for(watching, timeout=60)
    assert final.state is CrawlState.CANCELLED
