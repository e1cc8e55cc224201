"""Cancel, pause and resume on a live fleet; crawls side by side; a backlog older than a day."""

from __future__ import annotations

import asyncio
import time

import pytest

from crawlfleet.scheduler.control import cancel_crawl, pause_crawl, resume_crawl, seed_crawl
from crawlfleet.scheduler.local import LocalWorkers
from crawlfleet.shared.catalog import load_status
from crawlfleet.shared.connections import connected
from crawlfleet.shared.crawl import CrawlSpec, CrawlState
from crawlfleet.shared.settings import Settings
from crawlfleet.workers.build import build_worker
from tests.support.checks import assert_stored_exactly_once
from tests.support.crawling import read_manifest, wait_done
from tests.support.synthetic import shortest_depths
from tests.support.testweb import TestWeb, make_site

pytestmark = pytest.mark.slow
# the slow host's answer time: a page still running this long after the cancel was not aborted
SLOW_S = 30.0


def requests_to(web: TestWeb, host: str) -> int:
    return sum(1 for u in web.requested() if f"//{host}:" in u)


async def test_cancel_stops_one_crawl_and_spares_the_other(
    web: TestWeb, fault_settings: Settings
) -> None:
    """Cancel: running pages abort (long before they could answer), queued ones drop, a
    worker writes the manifest of what was fetched, the other crawl is whole."""
    web.site = make_site(web.port, seed=5, pages_per_host=40, links_per_page=3, max_latency=0)
    slow_host, fast_host = web.hosts[0], web.hosts[1]
    for url, page in web.site.pages.items():
        page.latency = SLOW_S if f"//{slow_host}:" in url else 0.02
    # every page of the slow host a seed: whenever one closes, others of its 40 are running
    slow_seeds = [url for url in web.site.pages if f"//{slow_host}:" in url]
    slow = CrawlSpec(crawl_id="slow", seeds=slow_seeds, depth=4)
    fast = CrawlSpec(crawl_id="fast", seeds=[web.url(1, "/p/0.html")], depth=3)
    with LocalWorkers(fault_settings, 2, fault_settings.data_dir / "logs"):
        async with connected(fault_settings.redis_url) as redis:
            await seed_crawl(redis, fault_settings, slow)
            await seed_crawl(redis, fault_settings, fast)
            while not [k for k in await redis.keys("arq:in-progress:slow:*") if b"robots" not in k]:
                await asyncio.sleep(0.05)
            result = await cancel_crawl(redis, fault_settings, "slow")
            assert result.aborted > 0 or result.dropped > 0
            cancelled_at = time.monotonic()
            # aborted jobs end at once; none of the crawl's jobs is left running or queued
            while await redis.keys("arq:in-progress:slow:*"):
                assert time.monotonic() - cancelled_at < SLOW_S / 2, "running pages not aborted"
                await asyncio.sleep(0.05)
            # but the finalize job, which writes the manifest of what was fetched
            assert await redis.keys("arq:job:slow:*") in ([], [b"arq:job:slow:finalize"])
            seen = requests_to(web, slow_host)
            await asyncio.sleep(1.0)
            assert requests_to(web, slow_host) == seen, "the cancelled crawl fetched more"
            status = await load_status(redis, "slow")
            assert status.state is CrawlState.CANCELLED and status.counters.pending == 0
        manifest = fault_settings.data_dir / "slow" / "manifest.jsonl"
        deadline = time.monotonic() + 60
        while not manifest.exists():
            assert time.monotonic() < deadline, "no manifest of the cancelled crawl"
            await asyncio.sleep(0.05)
        done = await wait_done(fault_settings, "fast", timeout=60)
    stored = {r["url"] for r in read_manifest(fault_settings.data_dir, "slow")}
    assert len(stored) >= status.counters.fetched and stored <= set(slow_seeds)
    assert done.state is CrawlState.DONE
    expected = set(shortest_depths(web.site, fast.seeds, 3, only_seed_hosts=True))
    assert_stored_exactly_once(fault_settings.data_dir, "fast", expected)
    assert requests_to(web, fast_host) >= len(expected)


async def test_pause_holds_and_resume_completes(web: TestWeb, fault_settings: Settings) -> None:
    """Pause: nothing of the crawl is fetched while paused, its queue is kept; resume ends it."""
    web.site = make_site(web.port, seed=6, pages_per_host=40, links_per_page=3, max_latency=0.05)
    seeds = [web.url(h, "/p/0.html") for h in range(3)]
    spec = CrawlSpec(crawl_id="held", seeds=seeds, depth=4)
    with LocalWorkers(fault_settings, 2, fault_settings.data_dir / "logs"):
        async with connected(fault_settings.redis_url) as redis:
            await seed_crawl(redis, fault_settings, spec)
            while (await load_status(redis, "held")).counters.fetched < 10:
                await asyncio.sleep(0.05)
            await pause_crawl(redis, fault_settings, "held")
            await asyncio.sleep(fault_settings.total_timeout + 0.5)  # in-flight pages finish
            before = len(web.requested())
            status = await load_status(redis, "held")
            assert status.state is CrawlState.PAUSED and status.counters.pending > 0
            await asyncio.sleep(2.0)
            assert len(web.requested()) == before, "a paused crawl fetched pages"
            assert (await load_status(redis, "held")).counters == status.counters
            await resume_crawl(redis, fault_settings, "held")
        status = await wait_done(fault_settings, "held", timeout=60)
    assert status.state is CrawlState.DONE
    expected = set(shortest_depths(web.site, seeds, 4, only_seed_hosts=True))
    assert_stored_exactly_once(fault_settings.data_dir, "held", expected)


async def test_two_crawls_share_nothing(web: TestWeb, fault_settings: Settings) -> None:
    """Two crawls of the same site at once keep their own dedupe, depth and page limit."""
    web.site = make_site(web.port, seed=8, pages_per_host=30, links_per_page=3, max_latency=0.02)
    seeds = [web.url(h, "/p/0.html") for h in range(3)]
    deep = CrawlSpec(crawl_id="deep", seeds=seeds, depth=4)
    capped = CrawlSpec(crawl_id="capped", seeds=seeds, depth=4, max_pages=25)
    with LocalWorkers(fault_settings, 2, fault_settings.data_dir / "logs"):
        async with connected(fault_settings.redis_url) as redis:
            await seed_crawl(redis, fault_settings, deep)
            await seed_crawl(redis, fault_settings, capped)
        assert (await wait_done(fault_settings, "deep")).state is CrawlState.DONE
        assert (await wait_done(fault_settings, "capped")).state is CrawlState.DONE
    expected = set(shortest_depths(web.site, seeds, 4, only_seed_hosts=True))
    assert_stored_exactly_once(fault_settings.data_dir, "deep", expected)
    capped_urls = {r["url"] for r in read_manifest(fault_settings.data_dir, "capped")}
    assert len(capped_urls) == 25 and capped_urls <= expected


async def test_backlog_outlives_arq_job_expiry(web: TestWeb, fault_settings: Settings) -> None:
    """Queued jobs live as long as their crawl, even past arq's job expiry (shortened to 1 s)."""
    web.site = make_site(web.port, seed=9, pages_per_host=10)
    seeds = [web.url(0, "/p/0.html")]
    spec = CrawlSpec(crawl_id="old", seeds=seeds, depth=2)
    async with connected(fault_settings.redis_url) as redis:
        await seed_crawl(redis, fault_settings, spec)
        job_keys = await redis.keys("arq:job:old:*")
        assert job_keys and all([await redis.pttl(k) == -1 for k in job_keys])
    await asyncio.sleep(2.5)  # the backlog is now older than the expiry below
    worker = build_worker(fault_settings, burst=True, handle_signals=False, expires_extra_ms=1000)
    try:
        await worker.async_run()
    finally:
        await worker.close()
    async with connected(fault_settings.redis_url) as redis:
        assert (await load_status(redis, "old")).state is CrawlState.DONE
    expected = set(shortest_depths(web.site, seeds, 2, only_seed_hosts=True))
    assert_stored_exactly_once(fault_settings.data_dir, "old", expected)
