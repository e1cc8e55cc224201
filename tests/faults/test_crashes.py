"""Killed workers, a restarted Redis, a restarted fleet: every crawl completes, nothing lost."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from crawlfleet.scheduler.control import seed_crawl
from crawlfleet.scheduler.embedded import EmbeddedRedis
from crawlfleet.scheduler.local import LocalWorkers
from crawlfleet.shared.catalog import load_status
from crawlfleet.shared.connections import connected
from crawlfleet.shared.crawl import CrawlSpec, CrawlState, CrawlStatus
from crawlfleet.shared.errors import UnknownCrawl
from crawlfleet.shared.settings import Settings
from crawlfleet.shared.storage import CrawlLayout
from crawlfleet.shared.warc_index import whole_records
from tests.support.checks import assert_stored_exactly_once
from tests.support.crawling import read_manifest, wait_done
from tests.support.synthetic import shortest_depths
from tests.support.testweb import TestWeb, make_site
from tests.support.warcs import read_warc, warcio_check

pytestmark = pytest.mark.slow


def slow_site(web: TestWeb, pages: int = 40) -> tuple[list[str], set[str]]:
    """A site whose pages take 50-250 ms, so that kills land mid-crawl; seeds and page set."""
    web.site = make_site(web.port, seed=3, pages_per_host=pages, links_per_page=3, max_latency=0.2)
    for page in web.site.pages.values():
        page.latency += 0.05
    seeds = [web.url(h, "/p/0.html") for h in range(3)]
    return seeds, set(shortest_depths(web.site, seeds, 4, only_seed_hosts=True))


async def fetched(settings: Settings, crawl_id: str) -> int:
    """Pages done so far (0 while the crawl does not exist yet)."""
    async with connected(settings.redis_url) as redis:
        try:
            c = (await load_status(redis, crawl_id)).counters
        except UnknownCrawl:
            return 0
        return c.fetched + c.failed


async def wait_fetched(settings: Settings, crawl_id: str, n: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while await fetched(settings, crawl_id) < n:
        assert time.monotonic() < deadline, f"fewer than {n} pages after {timeout}s"
        await asyncio.sleep(0.05)


async def seed_and_wait(settings: Settings, spec: CrawlSpec, pages: int) -> None:
    """Seed the crawl and wait until it has done ``pages`` pages."""
    async with connected(settings.redis_url) as redis:
        await seed_crawl(redis, settings, spec)
    await wait_fetched(settings, spec.crawl_id, pages)


def assert_whole(settings: Settings, status: CrawlStatus, expected: set[str]) -> None:
    """The crawl is done with every expected page stored once and counted once."""
    assert status.state is CrawlState.DONE
    assert_stored_exactly_once(settings.data_dir, status.crawl_id, expected)
    assert status.counters.fetched + status.counters.failed == len(expected)


async def test_sigkilled_worker_jobs_run_again(web: TestWeb, fault_settings: Settings) -> None:
    """SIGKILL one of two workers mid-crawl: its jobs run again elsewhere; the set is exact."""
    seeds, expected = slow_site(web)
    spec = CrawlSpec(crawl_id="kill", seeds=seeds, depth=4)
    with LocalWorkers(fault_settings, 2, fault_settings.data_dir / "logs") as fleet:
        await seed_and_wait(fault_settings, spec, 15)
        fleet.procs[0].send_signal(signal.SIGKILL)
        killed_at = time.monotonic()
        status = await wait_done(fault_settings, "kill", timeout=120)
    # the killed worker's jobs waited for arq's in-progress mark to expire, no longer
    assert time.monotonic() - killed_at < fault_settings.job_timeout_s + 10 + 30
    assert_whole(fault_settings, status, expected)


async def test_a_worker_killed_mid_record_leaves_whole_warc_files(
    web: TestWeb, fault_settings: Settings
) -> None:
    """SIGKILL one of two workers of a --warc crawl and cut its file in mid-record, as a kill
    inside its write would leave it: the crawl ends with every page, each page's record points
    at a response record of its URL that the index lists, and every file passes `warcio
    check` and is whole to its last byte."""
    seeds, expected = slow_site(web)
    spec = CrawlSpec(crawl_id="warckill", seeds=seeds, depth=4, warc=True)
    layout = CrawlLayout(fault_settings.data_dir, "warckill")
    with LocalWorkers(fault_settings, 2, fault_settings.data_dir / "logs") as fleet:
        await seed_and_wait(fault_settings, spec, 15)
        fleet.procs[0].send_signal(signal.SIGKILL)
        await asyncio.to_thread(fleet.procs[0].wait, 30)
        (killed,) = [p for p in layout.warc_files() if p.name.startswith("local-1-")]
        last = read_warc(killed)[-1]
        with killed.open("rb") as f:
            f.seek(last.offset)
            member = f.read(last.length)
        with killed.open("ab") as f:
            f.write(member[: len(member) // 2])
        status = await wait_done(fault_settings, "warckill", timeout=120)
    assert_whole(fault_settings, status, expected)
    for path in layout.warc_files():
        checked = warcio_check(path)
        assert checked.returncode == 0, checked.stdout
        assert whole_records(layout, path)[1] == path.stat().st_size, path.name
    records = {(p.name, r.offset): r for p in layout.warc_files() for r in read_warc(p)}
    indexed = {
        (entry["filename"], int(entry["offset"]))
        for entry in (
            json.loads(line.split(" ", 2)[2]) for line in layout.index.read_text().splitlines()
        )
    }
    for page in read_manifest(fault_settings.data_dir, "warckill"):
        if page["status"] is None:
            continue
        place = (page["warc"]["filename"], page["warc"]["offset"])
        assert records[place].kind == "response" and records[place].url == page["url"]
        assert place in indexed


async def test_a_worker_stopped_past_its_job_timeout_still_ends_the_crawl(
    web: TestWeb, fault_settings: Settings
) -> None:
    """The only worker SIGSTOPped mid-crawl for longer than arq's job timeout and in-progress
    mark, then SIGCONTed: the jobs it held time out all at once, and each is run again, none
    dropped unclosed, so the crawl ends with the exact page set."""
    seeds, expected = slow_site(web)
    spec = CrawlSpec(crawl_id="stop", seeds=seeds, depth=4)
    with LocalWorkers(fault_settings, 1, fault_settings.data_dir / "logs") as fleet:
        await seed_and_wait(fault_settings, spec, 10)
        fleet.procs[0].send_signal(signal.SIGSTOP)
        try:
            # past the job timeout and the in-progress mark (job timeout + 10 s)
            await asyncio.sleep(fault_settings.job_timeout_s + 15)
        finally:
            fleet.procs[0].send_signal(signal.SIGCONT)
        status = await wait_done(fault_settings, "stop", timeout=120)
    assert_whole(fault_settings, status, expected)


async def test_redis_restart_mid_crawl(
    web: TestWeb, fault_settings: Settings, aof_redis: EmbeddedRedis
) -> None:
    """Redis down for 15 s mid-crawl: workers and `seed --wait` say so once and reconnect."""
    seeds, expected = slow_site(web)
    env = {**os.environ, **fault_settings.to_env(), "REDIS_URL": fault_settings.redis_url}
    with LocalWorkers(fault_settings, 2, fault_settings.data_dir / "logs"):
        waiter = subprocess.Popen(
            [sys.executable, "-m", "crawlfleet.scheduler", "seed", *seeds, "--depth", "4",
             "--crawl-id", "restart", "--wait"],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            await wait_fetched(fault_settings, "restart", 20)
            aof_redis.stop(remove_socket_dir=False)
            await asyncio.sleep(15)  # longer than the clients' own command retries ride out
            aof_redis.start()
            out, err = waiter.communicate(timeout=120)
        finally:
            if waiter.poll() is None:
                waiter.kill()
                waiter.communicate()
        status = await wait_done(fault_settings, "restart", timeout=60)
    assert waiter.returncode == 0, err
    assert "crawl restart done" in out
    assert err.count("lost Redis") == 1 and err.count("Redis reachable again") == 1, err
    assert status.state is CrawlState.DONE
    assert_stored_exactly_once(fault_settings.data_dir, "restart", expected)
    for log in (fault_settings.data_dir / "logs").iterdir():
        events = [json.loads(line)["event"] for line in log.read_text().splitlines()]
        assert events.count("redis connection lost") == 1, log
        assert events.count("waiting for redis") == 1, log
        assert events.count("redis reachable again") == 1, log


async def test_whole_fleet_restarted(
    web: TestWeb, fault_settings: Settings, aof_redis: EmbeddedRedis
) -> None:
    """Every worker killed and Redis restarted: the crawl resumes where it was and completes."""
    seeds, expected = slow_site(web)
    spec = CrawlSpec(crawl_id="fleet", seeds=seeds, depth=4)
    with LocalWorkers(fault_settings, 2, fault_settings.data_dir / "logs") as fleet:
        await seed_and_wait(fault_settings, spec, 20)
        for proc in fleet.procs:
            proc.send_signal(signal.SIGKILL)
    before = await fetched(fault_settings, "fleet")
    aof_redis.stop(remove_socket_dir=False)
    aof_redis.start()
    async with connected(fault_settings.redis_url) as redis:
        status = await load_status(redis, "fleet")
    assert status.state is CrawlState.RUNNING
    assert status.counters.fetched + status.counters.failed == before
    with LocalWorkers(fault_settings, 2, fault_settings.data_dir / "logs2"):
        status = await wait_done(fault_settings, "fleet", timeout=120)
    assert status.state is CrawlState.DONE
    assert_stored_exactly_once(fault_settings.data_dir, "fleet", expected)


@pytest.mark.parametrize("outage", ["stopped", "frozen"])
async def test_sigterm_is_honoured_while_redis_is_out(
    web: TestWeb, fault_settings: Settings, aof_redis: EmbeddedRedis, outage: str
) -> None:
    """SIGTERM stops a worker within its grace period even when Redis is gone or hangs."""
    seeds, _ = slow_site(web)
    with LocalWorkers(fault_settings, 1, fault_settings.data_dir / "logs") as fleet:
        async with connected(fault_settings.redis_url) as redis:
            await seed_crawl(redis, fault_settings, CrawlSpec(crawl_id="t", seeds=seeds))
        await wait_fetched(fault_settings, "t", 3)
        assert aof_redis.pid is not None
        if outage == "stopped":
            aof_redis.stop(remove_socket_dir=False)
        else:
            os.kill(aof_redis.pid, signal.SIGSTOP)
        try:
            await asyncio.sleep(1.5)
            proc = fleet.procs[0]
            proc.send_signal(signal.SIGTERM)
            began = time.monotonic()
            code = await asyncio.to_thread(proc.wait, 60)
            took = time.monotonic() - began
        finally:
            if outage == "frozen":
                os.kill(aof_redis.pid, signal.SIGCONT)
    assert code == 0
    assert took < fault_settings.shutdown_grace_s + 12, f"took {took:.1f}s to stop"


async def test_cli_gives_up_on_a_lost_redis_after_the_limit(
    web: TestWeb, fault_settings: Settings, aof_redis: EmbeddedRedis
) -> None:
    """`seed --wait` waits CRAWLFLEET_REDIS_WAIT_S for a lost Redis, then one clear error."""
    seeds, _ = slow_site(web)
    env = {
        **os.environ,
        **fault_settings.to_env(),
        "REDIS_URL": fault_settings.redis_url,
        "CRAWLFLEET_REDIS_WAIT_S": "3",
    }
    waiter = subprocess.Popen(
        [sys.executable, "-m", "crawlfleet.scheduler", "seed", *seeds, "--crawl-id", "gone",
         "--wait"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        async with connected(fault_settings.redis_url) as redis:
            while not await redis.exists("cf:gone:meta"):
                await asyncio.sleep(0.05)
        aof_redis.stop(remove_socket_dir=False)
        began = time.monotonic()
        _, err = await asyncio.to_thread(waiter.communicate, timeout=60)
        took = time.monotonic() - began
    finally:
        if waiter.poll() is None:
            waiter.kill()
            waiter.communicate()
    assert waiter.returncode == 1, err
    lines = err.strip().splitlines()
    assert lines[-1].startswith("error: lost Redis for over 3s"), err
    assert "Traceback" not in err
    assert 3 <= took < 30, f"gave up after {took:.1f}s"
