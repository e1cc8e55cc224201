"""Running crawls from tests: in-process burst workers, or real worker processes."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

from crawlfleet.scheduler.control import seed_crawl
from crawlfleet.scheduler.local import LocalWorkers
from crawlfleet.shared.catalog import load_status, workers_serving
from crawlfleet.shared.connections import connected
from crawlfleet.shared.crawl import CrawlSpec, CrawlState, CrawlStatus
from crawlfleet.shared.settings import Settings
from crawlfleet.workers.build import build_worker


async def crawl_in_process(settings: Settings, spec: CrawlSpec) -> CrawlStatus:
    """Seed ``spec`` and run one in-process worker until the queue is empty."""
    async with connected(settings.redis_url) as redis:
        await seed_crawl(redis, settings, spec)
    worker = build_worker(settings, burst=True, handle_signals=False)
    try:
        await worker.async_run()
    finally:
        await worker.close()
    async with connected(settings.redis_url) as redis:
        return await load_status(redis, spec.crawl_id)


async def wait_serving(settings: Settings, workers: int, timeout: float = 120) -> None:
    """Wait until ``workers`` workers serve the settings' queue (started, their start-up
    allocations made)."""
    deadline = time.monotonic() + timeout
    async with connected(settings.redis_url) as redis:
        while await workers_serving(redis, settings.queue_name) < workers:
            assert time.monotonic() < deadline, f"fewer than {workers} workers started"
            await asyncio.sleep(0.05)


async def wait_done(settings: Settings, crawl_id: str, timeout: float = 120) -> CrawlStatus:
    """Poll until the crawl is no longer running."""
    deadline = time.monotonic() + timeout
    async with connected(settings.redis_url) as redis:
        while True:
            status = await load_status(redis, crawl_id)
            if status.state is not CrawlState.RUNNING:
                return status
            if time.monotonic() > deadline:
                raise AssertionError(f"crawl still running after {timeout}s: {status}")
            await asyncio.sleep(0.1)


async def crawl_with_processes(
    settings: Settings, spec: CrawlSpec, workers: int, timeout: float = 120
) -> CrawlStatus:
    """Seed ``spec`` and crawl it with ``workers`` real worker processes."""
    with LocalWorkers(settings, workers, settings.data_dir / "logs"):
        async with connected(settings.redis_url) as redis:
            await seed_crawl(redis, settings, spec)
        return await wait_done(settings, spec.crawl_id, timeout)


def read_manifest(data_dir: Path, crawl_id: str) -> list[dict[str, Any]]:
    """The records of a finished crawl's manifest."""
    lines = (data_dir / crawl_id / "manifest.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]
