"""A worker process SIGKILLed mid-crawl: what it appended to its record log stays, a record cut
in its append is left out, and the pages it had not closed are fetched again."""

from __future__ import annotations

import asyncio
import signal
import time
from collections import Counter

import pytest

from crawlfleet.scheduler.control import seed_crawl
from crawlfleet.scheduler.local import LocalWorkers
from crawlfleet.shared.connections import connected
from crawlfleet.shared.crawl import CrawlSpec, CrawlState
from crawlfleet.shared.record_log import member
from crawlfleet.shared.settings import Settings
from crawlfleet.shared.storage import CrawlLayout
from tests.support.crawling import read_manifest, wait_done
from tests.support.records import stored_records
from tests.support.testweb import TestWeb, star_site
from tests.support.warcs import warcio_check

pytestmark = pytest.mark.slow

PAGES = 30


def _pages(web: TestWeb) -> set[str]:
    """The pages requested so far (robots.txt, which has no page record, left out)."""
    return {url for url in web.requested() if not url.endswith("/robots.txt")}


async def test_a_killed_worker_loses_no_stored_page_and_its_open_pages_are_fetched_again(
    web: TestWeb, settings: Settings
) -> None:
    """SIGKILL the one worker of a --warc crawl while it has pages in flight, and cut a record
    into its log's end as a kill inside the append would: a new worker (same id) appends to a
    log of its own, the crawl finishes with every page once, each record the killed worker
    appended whole is what the manifest keeps of its page unless that page was fetched again,
    the pages in flight were requested again, and every WARC file passes `warcio check`."""
    seed = star_site(web, pages=PAGES, latency=0.3)
    # a short fetch timeout: a killed worker's jobs are given to another sooner
    quick = settings.model_copy(update={"total_timeout": 2})
    layout = CrawlLayout(settings.data_dir, "k")
    spec = CrawlSpec(crawl_id="k", seeds=[seed], depth=1, warc=True, allow_private=True)
    fleet = LocalWorkers(quick, 1, settings.data_dir / "logs").start()
    try:
        async with connected(quick.redis_url) as redis:
            await seed_crawl(redis, quick, spec)
        deadline = time.monotonic() + 90
        # killed with records in its log and a page requested that it has not recorded
        while True:
            assert time.monotonic() < deadline and fleet.alive(), "no page stored in time"
            recorded = {r.url for r in stored_records(settings.data_dir, "k")}
            if len(recorded) >= 3 and _pages(web) - recorded:
                break
            await asyncio.sleep(0.02)
        fleet.procs[0].send_signal(signal.SIGKILL)
        assert fleet.procs[0].wait(timeout=30) == -signal.SIGKILL
    finally:
        fleet.stop()
    killed = {r.url: r for r in stored_records(settings.data_dir, "k")}
    in_flight = _pages(web) - set(killed)
    assert len(killed) < PAGES + 1
    [log] = layout.record_logs()
    cut = member(b'{"url": "' + seed.encode() + b'cut"}\n')
    with (layout.records_dir / log).open("ab") as file:
        file.write(cut[: len(cut) // 2])

    with LocalWorkers(quick, 1, settings.data_dir / "logs2"):
        status = await wait_done(quick, "k", timeout=150)
    assert status.state is CrawlState.DONE
    assert len(layout.record_logs()) == 2  # the new worker's own, never after the cut
    manifest = {r["url"]: r for r in read_manifest(settings.data_dir, "k")}
    assert len(manifest) == len(read_manifest(settings.data_dir, "k")) == PAGES + 1
    assert set(killed) <= set(manifest)
    requests = Counter(web.requested())
    for url, record in killed.items():
        if requests[url] == 1:  # closed before the kill: the killed worker's record is kept
            kept = manifest[url]
            assert kept["fetched_at"] == record.model_dump(mode="json")["fetched_at"], url
            assert kept["worker"] == "local-1" and kept["warc"] is not None
    for url in in_flight:
        assert requests[url] >= 2, f"{url} was in flight when killed and never fetched again"
    assert all(r["status"] == 200 for r in manifest.values())
    for path in layout.warc_files():
        checked = warcio_check(path)
        assert checked.returncode == 0, checked.stdout + checked.stderr
