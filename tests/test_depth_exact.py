"""Real worker processes: the page set is exactly the BFS set for any depth and worker count."""

from __future__ import annotations

import asyncio

import msgpack
import pytest
from redis.asyncio import Redis

from crawlfleet.scheduler.control import seed_crawl
from crawlfleet.scheduler.local import LocalWorkers
from crawlfleet.shared.connections import connected
from crawlfleet.shared.crawl import CrawlSpec, CrawlState
from crawlfleet.shared.settings import Settings
from tests.support.crawling import read_manifest, wait_done
from tests.support.synthetic import shortest_depths
from tests.support.testweb import TestWeb, make_site

pytestmark = pytest.mark.slow

PICKLE_PROTO = b"\x80"  # every pickle since protocol 2 starts with the PROTO opcode


@pytest.mark.parametrize("workers", [1, 2, 4])
async def test_page_set_is_exact_for_every_depth(
    web: TestWeb, settings: Settings, workers: int
) -> None:
    """Depths 0-3: fetched pages are those within N hops by shortest path, each stored once."""
    web.site = make_site(web.port, seed=workers, pages_per_host=40, links_per_page=3)
    seeds = [web.url(0, "/p/0.html"), web.url(1, "/p/3.html"), web.url(2, "/p/5.html")]
    with LocalWorkers(settings, workers, settings.data_dir / "logs"):
        for depth in range(4):
            crawl_id = f"w{workers}-d{depth}"
            spec = CrawlSpec(crawl_id=crawl_id, seeds=seeds, depth=depth, scope="host")
            async with connected(settings.redis_url) as redis:
                await seed_crawl(redis, settings, spec)
            status = await wait_done(settings, crawl_id)
            assert status.state is CrawlState.DONE
            expected = shortest_depths(web.site, seeds, depth)
            records = read_manifest(settings.data_dir, crawl_id)
            got = {r["url"]: r["depth"] for r in records}
            assert len(got) == len(records), "a URL is in the manifest twice"
            assert got == expected, f"depth {depth}: page set or depths differ"
            assert status.counters.fetched + status.counters.failed == len(records)
    if workers > 1:
        logs = (settings.data_dir / "logs").glob("worker-*.log")
        busy = [p for p in logs if '"page fetched"' in p.read_text()]
        assert len(busy) == workers, "some worker fetched nothing"


async def test_large_crawl_leaves_no_arq_results_and_no_pickle(
    web: TestWeb, settings: Settings, redis: Redis
) -> None:
    """A 2,000+ page crawl: payloads are msgpack while queued; nothing of arq's is left after."""
    web.site = make_site(web.port, seed=7, pages_per_host=700, links_per_page=5, max_latency=0)
    seeds = [web.url(h, "/p/0.html") for h in range(3)]
    spec = CrawlSpec(crawl_id="big", seeds=seeds, depth=12, scope="host")
    expected = shortest_depths(web.site, seeds, 12)
    assert len(expected) >= 2000
    sampled = 0
    with LocalWorkers(settings, 2, settings.data_dir / "logs"):
        await seed_crawl(redis, settings, spec)
        done = asyncio.create_task(wait_done(settings, "big", timeout=240))
        while not done.done():
            for key in await redis.keys("arq:job:*"):
                raw = await redis.get(key)
                if raw is None:
                    continue
                assert not raw.startswith(PICKLE_PROTO), "a pickled job payload"
                assert isinstance(msgpack.unpackb(raw), dict)
                sampled += 1
            await asyncio.sleep(0.2)
        status = await done
    assert sampled > 0
    assert status.state is CrawlState.DONE
    assert {r["url"] for r in read_manifest(settings.data_dir, "big")} == set(expected)
    assert await redis.keys("arq:result:*") == []
    assert await redis.keys("arq:job:*") == []
    assert await redis.keys("arq:retry:*") == []
    assert await redis.zcard(settings.queue_name) == 0
