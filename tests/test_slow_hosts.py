"""Slow hosts cost only their own slots: deadlines against every way of being slow, requests
that park while they wait, and adaptive politeness, against real servers on loopback."""

from __future__ import annotations

import asyncio
import textwrap
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from datetime import datetime

import pytest

from crawlfleet.scheduler.control import seed_crawl
from crawlfleet.shared.catalog import load_status
from crawlfleet.shared.connections import connected
from crawlfleet.shared.crawl import CrawlSpec, CrawlState, CrawlStatus
from crawlfleet.shared.keys import HostKeys
from crawlfleet.shared.settings import Settings
from crawlfleet.workers.build import build_worker
from tests.support.crawling import read_manifest
from tests.support.hostile import HOST as SLOW_HOST
from tests.support.hostile import HostileWeb
from tests.support.netns import run_isolated
from tests.support.testweb import TestWeb, star_site

pytestmark = pytest.mark.slow

ADAPTIVE_FIELDS = {"pace", "cap", "strikes", "struck"}


@pytest.fixture
def hostile() -> Iterator[HostileWeb]:
    with HostileWeb() as web:
        yield web


async def until(condition: Callable[[], bool], timeout: float = 120.0) -> None:
    """Wait for ``condition`` (checked every 20 ms), failing after ``timeout`` seconds."""
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.02)


@asynccontextmanager
async def burst_worker(settings: Settings) -> AsyncIterator[asyncio.Task[None]]:
    """An in-process worker that runs until the queue is empty; waited for on leaving."""
    worker = build_worker(settings, burst=True, handle_signals=False)
    task = asyncio.create_task(worker.async_run())
    try:
        yield task
        async with asyncio.timeout(180):
            await task
    finally:
        task.cancel()
        await worker.close()


async def seed(settings: Settings, spec: CrawlSpec) -> None:
    async with connected(settings.redis_url) as redis:
        await seed_crawl(redis, settings, spec)


async def status_of(settings: Settings, crawl_id: str) -> CrawlStatus:
    async with connected(settings.redis_url) as redis:
        return await load_status(redis, crawl_id)


async def host_state(settings: Settings, host: str) -> dict[str, str]:
    async with connected(settings.redis_url) as redis:
        raw = await redis.hgetall(HostKeys(host).state)  # type: ignore[misc]
    return {k.decode(): v.decode() for k, v in raw.items()}


def stored_at(record: dict[str, str]) -> datetime:
    return datetime.fromisoformat(record["fetched_at"])


@pytest.mark.parametrize("path", ["/silent", "/head-only", "/slowloris"])
async def test_a_slow_host_ends_at_its_deadline_while_a_fast_host_goes_on(
    path: str, web: TestWeb, hostile: HostileWeb, settings: Settings
) -> None:
    """No answer, a head and then nothing, a body trickled a byte at a time: each request
    ends at the deadline as a timeout; meanwhile, though the slow requests outnumber the
    worker's two fetch turns, they park and a fast host's pages are all fetched."""
    settings = settings.model_copy(
        update={"concurrency": 2, "park_after_s": 0.2, "total_timeout": 4.0, "read_timeout": 30.0}
    )
    await _slow_beside_fast(settings, web, hostile, path)
    assert (await status_of(settings, "slow")).counters.reasons == {"timeout": 4}


async def _slow_beside_fast(
    settings: Settings, web: TestWeb, hostile: HostileWeb, path: str
) -> None:
    """Crawl 4 URLs of ``path`` on the hostile server, then, once all 4 requests are out, an
    11-page star site on one worker with two fetch turns: each slow request ends at its
    deadline, and every fast page is stored while the slow requests still wait."""
    slow = [hostile.url(f"{path}/{i}") for i in range(4)]
    root = star_site(web, pages=10, latency=0)
    spec = CrawlSpec(crawl_id="slow", seeds=slow, depth=0, retries=0, obey_robots=False)
    await seed(settings, spec)
    async with burst_worker(settings):
        await until(lambda: len(hostile.arrivals()) == len(slow))
        await seed(settings, CrawlSpec(crawl_id="fast", seeds=[root], depth=1, obey_robots=False))
    slow_records = read_manifest(settings.data_dir, "slow")
    fast_records = read_manifest(settings.data_dir, "fast")
    deadline = f"timeout: {settings.total_timeout:g}s deadline"
    assert [r["error"] for r in slow_records] == [deadline] * len(slow)
    assert len(fast_records) == 11 and {r["status"] for r in fast_records} == {200}
    # the fast host's pages were stored while the slow requests still waited
    assert max(map(stored_at, fast_records)) < min(map(stored_at, slow_records))


HANGING_DNS = textwrap.dedent(
    """
    import asyncio, json, socket, threading
    from crawlfleet.shared.settings import Settings
    from crawlfleet.workers.fetch import fetch, make_client
    from crawlfleet.workers.guard import Policy

    # the namespace's resolv.conf names this server, which reads queries and answers none
    stub = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    stub.bind(("127.0.0.1", 53))
    queries = []
    def listen():
        while True:
            queries.append(stub.recv(4096))
    threading.Thread(target=listen, daemon=True).start()

    async def answer(reader, writer):
        await reader.readuntil(b"\\r\\n\\r\\n")
        writer.write(b"HTTP/1.1 200 OK\\r\\nContent-Length: 2\\r\\nConnection: close\\r\\n\\r\\nok")
        await writer.drain()
        writer.close()

    async def main():
        settings = Settings(connect_timeout=5.0, total_timeout=30.0)
        server = await asyncio.start_server(answer, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        async with server, make_client(settings, Policy.OPEN) as client:
            # more hung lookups than asyncio's default executor has threads
            hung = [asyncio.create_task(fetch(client, f"http://h{i}.slow.test/", settings))
                    for i in range(12)]
            fast = [await fetch(client, f"http://127.0.0.1:{port}/{i}", settings)
                    for i in range(5)]
            threads_free = await asyncio.to_thread(lambda: True)
            pending = sum(not t.done() for t in hung)
            slow = await asyncio.gather(*hung)
        print(json.dumps({
            "fast": [r.status for r in fast], "threads_free": threads_free,
            "pending_meanwhile": pending, "slow": sorted({str(r.error) for r in slow}),
            "timed_out": all(r.timed_out for r in slow), "queries": len(queries),
        }))

    asyncio.run(main())
    """
)


def test_a_hanging_dns_lookup_ends_at_its_deadline_while_fetches_go_on() -> None:
    """Names whose DNS server never answers (a stub in a loopback-only namespace): each fetch
    ends after the connect timeout as a dns timeout, and meanwhile the fast fetches and the
    worker's other threads go on."""
    resolv = "nameserver 127.0.0.1\noptions timeout:8 attempts:1\n"
    out = run_isolated(HANGING_DNS, resolv_conf=resolv)
    assert out["fast"] == [200] * 5 and out["threads_free"] is True
    assert out["pending_meanwhile"] == 12  # the lookups still hung
    assert out["queries"] >= 12 and out["timed_out"] is True
    assert all(e.startswith("dns timeout: no answer for h") for e in out["slow"]), out["slow"]


async def test_a_host_that_turns_slow_gets_fewer_connections_and_then_them_back(
    web: TestWeb, settings: Settings
) -> None:
    """A host answering in 50 ms has several requests in flight; turned to 1.5 s a request it
    is paced (the wait between starts: twice that) and the server sees one or two at a time;
    turned fast again, it soon has several again. The crawl ends whole."""
    root = star_site(web, pages=200, latency=0.05)
    host = web.hosts[0]
    pages = list(web.site.pages.values())

    def set_latency(seconds: float) -> None:
        for page in pages:
            page.latency = seconds

    async def paced() -> bool:
        return int((await host_state(settings, host)).get("pace", "0")) > 0

    await seed(settings, CrawlSpec(crawl_id="turn", seeds=[root], depth=1, obey_robots=False))
    async with burst_worker(settings):
        await until(lambda: web.peak_in_flight(host, 0.0) >= 4)
        set_latency(1.5)
        async with asyncio.timeout(120):
            while not await paced():
                await asyncio.sleep(0.05)
        await until(lambda: web.in_flight[host] <= 1)  # what was sent before the pace ended
        slow_from, sent = time.monotonic(), len(web.requested())
        await until(lambda: len(web.requested()) >= sent + 3)
        assert web.peak_in_flight(host, slow_from) <= 2
        set_latency(0.05)
        fast_from = time.monotonic()
        await until(lambda: web.peak_in_flight(host, fast_from) >= 4)
    status = await status_of(settings, "turn")
    assert status.state is CrawlState.DONE and status.counters.fetched == 201


async def test_a_host_that_times_out_three_times_is_given_up(
    web: TestWeb, hostile: HostileWeb, settings: Settings
) -> None:
    """A host that never answers: each round of timeouts halves its slots and holds it, and
    after three in a row the crawl gives it up: its URLs end as failed, "host unresponsive",
    none drew more than retries + 1 requests, and the crawl ends with the fast host whole."""
    settings = settings.model_copy(update={"total_timeout": 1.0, "park_after_s": 0.2})
    silent = [hostile.url(f"/silent/{i}") for i in range(12)]
    root = star_site(web, pages=10, latency=0)
    spec = CrawlSpec(crawl_id="gone", seeds=[*silent, root], depth=1, retries=2,
                     obey_robots=False)  # fmt: skip
    await seed(settings, spec)
    async with burst_worker(settings):
        pass
    status = await status_of(settings, "gone")
    assert status.state is CrawlState.DONE
    records = {r["url"]: r for r in read_manifest(settings.data_dir, "gone")}
    assert {records[u]["error"] for u in silent} == {"host unresponsive"}
    assert status.counters.reasons == {"host unresponsive": len(silent)}
    assert status.counters.fetched == 11
    requests = Counter(path for path, _ in hostile.arrivals())
    assert max(requests.values()) <= spec.retries + 1
    # rounds of 8 (its slots), then 4, then 2: the retries and the rest were never sent
    assert sum(requests.values()) <= 8 + 4 + 2
    # what was learnt of the host ended with the crawl: a later one starts afresh
    assert not ADAPTIVE_FIELDS & set(await host_state(settings, SLOW_HOST))


async def test_a_host_whose_robots_txt_never_answers_is_given_up_after_three_strikes(
    web: TestWeb, settings: Settings
) -> None:
    """robots.txt timeouts are strikes against the host as a page's are: a host whose
    robots.txt never answers is given up at the third, though the crawl's retries would allow
    a fourth try; its pages end "host unresponsive" without a request, and the crawl ends with
    the fast host whole."""
    settings = settings.model_copy(update={"total_timeout": 1.0, "park_after_s": 0.2})
    with HostileWeb(silent_robots=True) as hostile:
        pages = [hostile.url(f"/page/{i}") for i in range(5)]
        root = star_site(web, pages=10, latency=0)
        spec = CrawlSpec(crawl_id="norobots", seeds=[*pages, root], depth=1, retries=3)
        await seed(settings, spec)
        async with burst_worker(settings):
            pass
        arrivals = hostile.arrivals()
    status = await status_of(settings, "norobots")
    assert status.state is CrawlState.DONE
    # three robots.txt requests, each a strike; none for a page
    assert [path for path, _ in arrivals] == ["/robots.txt"] * 3
    records = {r["url"]: r for r in read_manifest(settings.data_dir, "norobots")}
    assert {records[u]["error"] for u in pages} == {"host unresponsive"}
    assert status.counters.reasons == {"host unresponsive": len(pages)}
    assert status.counters.fetched == 11
    assert not ADAPTIVE_FIELDS & set(await host_state(settings, SLOW_HOST))


async def test_without_adaptive_a_slow_host_keeps_its_slots_and_is_never_given_up(
    web: TestWeb, hostile: HostileWeb, settings: Settings
) -> None:
    """--no-adaptive: a host answering in 1.2 s keeps its 8 requests in flight, one that never
    answers keeps its slots and its URLs end as timeouts after their retries; nothing of
    either host is learnt."""
    settings = settings.model_copy(update={"total_timeout": 2.0, "park_after_s": 0.2})
    silent = [hostile.url(f"/silent/{i}") for i in range(6)]
    root = star_site(web, pages=24, latency=1.2)
    spec = CrawlSpec(crawl_id="plain", seeds=[*silent, root], depth=1, retries=1,
                     obey_robots=False, adaptive=False)  # fmt: skip
    await seed(settings, spec)
    async with burst_worker(settings):
        await until(lambda: len(web.requested()) >= 17)  # the root and the first 8, then 8
        started = time.monotonic()
        await until(lambda: web.peak_in_flight(web.hosts[0], started) == 8)
    status = await status_of(settings, "plain")
    assert status.state is CrawlState.DONE and status.counters.fetched == 25
    assert status.counters.reasons == {"timeout": len(silent)}
    assert Counter(path for path, _ in hostile.arrivals()) == {
        f"/silent/{i}": 2 for i in range(len(silent))
    }
    assert not ADAPTIVE_FIELDS & set(await host_state(settings, web.hosts[0]))
    assert not ADAPTIVE_FIELDS & set(await host_state(settings, SLOW_HOST))


async def test_late_requests_give_their_turns_to_waiting_jobs_before_they_park(
    web: TestWeb, hostile: HostileWeb, settings: Settings
) -> None:
    """Requests that never answer, with ``park_after_s`` past their deadline: they would hold
    the worker's two turns until they time out. Late (a tenth of ``park_after_s``, the worker
    having seen nothing answered), each gives its turn to a job waiting for one, so a fast
    host's pages are all stored while the slow requests still wait."""
    settings = settings.model_copy(
        update={"concurrency": 2, "park_after_s": 20.0, "total_timeout": 10.0, "read_timeout": 30.0}
    )
    await _slow_beside_fast(settings, web, hostile, "/silent")
