"""SIGTERM: a worker finishes in-flight pages within the grace period, or hands them back."""

from __future__ import annotations

import asyncio
import json
import resource
import signal
import time

import pytest

from crawlfleet.scheduler.control import seed_crawl
from crawlfleet.scheduler.local import LocalWorkers
from crawlfleet.shared.catalog import load_status
from crawlfleet.shared.connections import connected
from crawlfleet.shared.crawl import CrawlSpec, CrawlState
from crawlfleet.shared.settings import Settings
from crawlfleet.workers.worker import GC_YOUNG_THRESHOLD, OPEN_FILES_CEILING, _ended_within
from tests.support.crawling import read_manifest, wait_done
from tests.support.records import stored_records
from tests.support.testweb import Page, Site, TestWeb

pytestmark = pytest.mark.slow


def wait_for_request(web: TestWeb, url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while url not in web.requested():
        assert time.monotonic() < deadline, f"{url} never requested"
        time.sleep(0.02)


async def test_sigterm_lets_in_flight_page_finish(web: TestWeb, settings: Settings) -> None:
    """With a grace period longer than the fetch, the page is stored and the worker exits 0."""
    slow = web.url(0, "/slow")
    web.site = Site({slow: Page(latency=1.5)})
    fleet = LocalWorkers(settings.model_copy(update={"shutdown_grace_s": 10}), 1,
                         settings.data_dir / "logs").start()  # fmt: skip
    try:
        async with connected(settings.redis_url) as redis:
            await seed_crawl(redis, settings, CrawlSpec(crawl_id="t", seeds=[slow], depth=0))
            wait_for_request(web, slow)
            proc = fleet.procs[0]
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=15) == 0
            status = await load_status(redis, "t")
        assert status.counters.fetched == 1 and status.counters.pending == 0
    finally:
        fleet.stop()
    assert len(stored_records(settings.data_dir, "t")) == 1


async def test_sigterm_hands_back_what_cannot_finish(web: TestWeb, settings: Settings) -> None:
    """A page still fetching when the grace period ends goes back to the queue, unwritten."""
    slow = web.url(0, "/slow")
    web.site = Site({slow: Page(latency=3.0)})
    impatient = settings.model_copy(update={"shutdown_grace_s": 0})
    fleet = LocalWorkers(impatient, 1, settings.data_dir / "logs").start()
    try:
        async with connected(settings.redis_url) as redis:
            await seed_crawl(redis, settings, CrawlSpec(crawl_id="t", seeds=[slow], depth=0))
            wait_for_request(web, slow)
            proc = fleet.procs[0]
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=10) == 0
            status = await load_status(redis, "t")
            assert status.state is CrawlState.RUNNING and status.counters.pending == 1
            assert await redis.zcard(settings.queue_name) == 1
        assert not (settings.data_dir / "t").exists() or not any(
            p.is_file() for p in (settings.data_dir / "t").rglob("*")
        )
    finally:
        fleet.stop()
    web.site.pages[slow].latency = 0
    with LocalWorkers(settings, 1, settings.data_dir / "logs2"):
        status = await wait_done(settings, "t", timeout=60)
    assert status.state is CrawlState.DONE
    assert [r["url"] for r in read_manifest(settings.data_dir, "t")] == [slow]


async def test_a_closing_step_that_cancels_itself_does_not_end_the_worker() -> None:
    """A step of closing that ends in a CancelledError of its own (as redis-py's pool close
    can re-raise one) counts as not ended: only a cancellation of the worker itself stops it;
    one that hangs is cut at its limit, and other errors still surface."""

    async def cancels_itself() -> None:
        raise asyncio.CancelledError

    async def hangs() -> None:
        await asyncio.sleep(3600)

    async def breaks() -> None:
        raise ValueError("a bug")

    async def ends() -> None:
        await asyncio.sleep(0)

    assert await _ended_within(cancels_itself(), 1.0) is False
    assert await _ended_within(hangs(), 0.05) is False
    assert await _ended_within(ends(), 1.0) is True
    with pytest.raises(ValueError, match="a bug"):
        await _ended_within(breaks(), 1.0)


def _worker_started_line(settings: Settings) -> dict[str, object]:
    """The ``worker started`` log line of one worker process."""
    logs = settings.data_dir / "logs"
    with LocalWorkers(settings, 1, logs) as fleet:
        deadline = time.monotonic() + 30
        while True:
            assert time.monotonic() < deadline, "no 'worker started' line"
            assert fleet.alive() == 1, "the worker exited"
            time.sleep(0.05)
            path = fleet.log_file(1)
            lines = path.read_text().splitlines() if path.exists() else []
            started = [e for e in map(json.loads, lines) if e["event"] == "worker started"]
            if started:
                line: dict[str, object] = started[0]
                return line


def test_a_worker_process_raises_its_open_files_limit(settings: Settings) -> None:
    """A worker started under a low soft limit on open files raises it to the hard limit
    (``workers.worker.raise_open_files_limit``): its sockets would otherwise run out."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = OPEN_FILES_CEILING if hard == resource.RLIM_INFINITY else hard
    if want <= 256:
        pytest.skip(f"the hard limit on open files is {hard}: nothing to raise to")
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))  # the worker inherits it
    try:
        started = _worker_started_line(settings)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert started["open_files"] == want


def test_a_worker_process_tunes_its_garbage_collector(settings: Settings) -> None:
    """A worker process takes its imported libraries out of the garbage collector's full
    passes and collects its young objects less often (``workers.worker.tune_garbage_collector``),
    and says so in its ``worker started`` line."""
    started = _worker_started_line(settings)
    # the libraries a worker imports are well over 10,000 objects; unfrozen, the count is 0
    assert int(started["gc_frozen"]) > 10_000  # type: ignore[call-overload]
    assert started["gc_threshold"] == GC_YOUNG_THRESHOLD != 700  # Python's default
