"""Soak: a 20,000-page crawl while workers are killed and Redis restarts (``make soak``)."""

from __future__ import annotations

import asyncio
import json
import random
import signal
import time
from dataclasses import asdict, dataclass

import pytest

from crawlfleet.scheduler.control import seed_crawl
from crawlfleet.scheduler.embedded import EmbeddedRedis
from crawlfleet.scheduler.local import LocalWorkers
from crawlfleet.shared.catalog import load_status
from crawlfleet.shared.connections import connected
from crawlfleet.shared.crawl import CrawlSpec, CrawlState
from crawlfleet.shared.settings import Settings
from tests.support.checks import assert_stored_exactly_once
from tests.support.crawling import read_manifest
from tests.support.synthetic import shortest_depths
from tests.support.testweb import TestWeb, make_site

pytestmark = [pytest.mark.soak, pytest.mark.timeout(900)]

SOAK_SECONDS = 480  # the crawl must finish within this, chaos or not
WORKERS = 3


@dataclass
class Chaos:
    sigkills: int = 0
    sigterms: int = 0
    redis_restarts: int = 0


async def test_soak(web: TestWeb, fault_settings: Settings, aof_redis: EmbeddedRedis) -> None:
    """Random SIGKILLs, SIGTERMs and Redis restarts: every page stored exactly once."""
    rng = random.Random(20261125)
    web.site = make_site(
        web.port, seed=42, hosts=3, pages_per_host=7000, links_per_page=4, max_latency=0.01
    )
    seeds = [web.url(h, "/p/0.html") for h in range(3)]
    expected = set(shortest_depths(web.site, seeds, 30, only_seed_hosts=True))
    assert len(expected) >= 20_000
    settings = fault_settings.model_copy(update={"concurrency": 16})
    chaos = Chaos()
    started = time.monotonic()
    with LocalWorkers(settings, WORKERS, settings.data_dir / "logs") as fleet:
        async with connected(settings.redis_url) as redis:
            await seed_crawl(redis, settings, CrawlSpec(crawl_id="soak", seeds=seeds, depth=30))
        while True:
            await asyncio.sleep(rng.uniform(4, 8))
            if await _state(settings) is not CrawlState.RUNNING:
                break
            assert time.monotonic() - started < SOAK_SECONDS, "soak crawl did not finish"
            if time.monotonic() - started > SOAK_SECONDS / 2:
                continue  # let it finish: the second half only waits
            action = rng.choice(["sigkill", "sigkill", "sigterm", "redis"])
            if action == "redis":
                aof_redis.stop(remove_socket_dir=False)
                await asyncio.sleep(rng.uniform(0.5, 4))
                aof_redis.start()
                chaos.redis_restarts += 1
                continue
            index = rng.randrange(WORKERS)
            proc = fleet.procs[index]
            proc.send_signal(signal.SIGKILL if action == "sigkill" else signal.SIGTERM)
            await asyncio.to_thread(proc.wait, 30)
            fleet.replace(index)
            if action == "sigkill":
                chaos.sigkills += 1
            else:
                chaos.sigterms += 1
    elapsed = time.monotonic() - started
    records = read_manifest(settings.data_dir, "soak")
    urls = [r["url"] for r in records]
    figures = {
        **asdict(chaos),
        "pages": len(urls),
        "expected": len(expected),
        "duplicates": len(urls) - len(set(urls)),
        "lost": len(expected - set(urls)),
        "seconds": round(elapsed, 1),
    }
    print("soak:", json.dumps(figures))
    assert chaos.sigkills + chaos.sigterms + chaos.redis_restarts >= 5
    assert_stored_exactly_once(settings.data_dir, "soak", expected)


async def _state(settings: Settings) -> CrawlState:
    async with connected(settings.redis_url) as redis:
        return (await load_status(redis, "soak")).state
