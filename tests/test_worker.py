"""A worker crawling a test web in-process: pages, records, depth, Redis left clean."""

from __future__ import annotations

import asyncio
import hashlib
import itertools
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis

from crawlfleet.scheduler.control import seed_crawl
from crawlfleet.shared.connections import connected
from crawlfleet.shared.crawl import CrawlSpec, CrawlState
from crawlfleet.shared.jobs import FINALIZE_CRAWL, job_payload, now_ms
from crawlfleet.shared.keys import (
    ABORT_JOBS,
    IN_PROGRESS_KEY_PREFIX,
    JOB_KEY_PREFIX,
    RETRY_KEY_PREFIX,
)
from crawlfleet.shared.settings import Settings
from crawlfleet.workers import robots
from crawlfleet.workers.build import build_worker
from crawlfleet.workers.fetch import FetchResult
from crawlfleet.workers.fetch import fetch as real_fetch
from tests.support.crawling import crawl_in_process, read_manifest
from tests.support.records import stored_records
from tests.support.synthetic import shortest_depths
from tests.support.testweb import Page, Site, TestWeb, make_site


async def test_crawl_stores_every_page_once_with_its_record(
    web: TestWeb, settings: Settings, redis: Redis
) -> None:
    """The manifest holds exactly the BFS page set, each URL once, with bodies on disk."""
    web.site = make_site(web.port, seed=2, pages_per_host=12, max_latency=0.005)
    seeds = [web.url(0, "/p/0.html"), web.url(1, "/p/0.html"), web.url(2, "/p/0.html")]
    spec = CrawlSpec(crawl_id="w1", seeds=seeds, depth=2)
    status = await crawl_in_process(settings, spec)

    assert status.state is CrawlState.DONE
    records = read_manifest(settings.data_dir, "w1")
    urls = [r["url"] for r in records]
    expected = shortest_depths(web.site, seeds, 2)
    assert len(urls) == len(set(urls))
    assert set(urls) == set(expected)
    assert status.counters.fetched + status.counters.failed == len(records)
    root = settings.data_dir / "w1"
    for r in records:
        assert r["depth"] == expected[r["url"]]
        assert r["status"] is not None, r
        assert (r["parent"] is None) == (r["depth"] == 0)
        assert r["final_url"] and r["fetched_at"]
        if r["redirect"] is not None:  # a URL of its own, at the same depth, not followed here
            assert r["status"] == 301 and r["path"] is None
            assert expected[r["redirect"]] <= r["depth"]
            continue
        body = (root / r["path"]).read_bytes()
        assert hashlib.sha256(body).hexdigest() == r["sha256"] and len(body) == r["length"]
        assert r["content_type"]
    statuses = {r["status"] for r in records}
    assert {200, 301, 404} <= statuses
    # no files besides the record logs, a body per URL that is no redirect, the manifest and
    # the page index
    files = [p for p in root.rglob("*") if p.is_file()]
    logs = [p for p in files if p.parent == root / "records"]
    assert logs and all(p.name.endswith(".jsonl.gz") for p in logs)
    assert len(files) == len(logs) + sum(r["path"] is not None for r in records) + 2
    assert {"manifest.jsonl", "pages.idx"} <= {p.name for p in files}
    assert len(stored_records(settings.data_dir, root.name)) >= len(records)
    # nothing of arq's per-job state is left behind
    assert await redis.keys("arq:result:*") == []
    assert await redis.keys("arq:job:*") == []
    assert await redis.keys("arq:in-progress:*") == []
    assert await redis.zcard(settings.queue_name) == 0


async def test_page_found_again_by_shorter_path_is_followed_again(
    web: TestWeb, settings: Settings
) -> None:
    """Depth is the shortest distance, even when a long path reaches a page first."""
    u = lambda name: web.url(0, f"/{name}")  # noqa: E731
    web.site = Site(
        {
            u("s"): Page(edges=[u("a"), u("b")], hrefs=["/a", "/b"]),
            u("a"): Page(edges=[u("d")], hrefs=["/d"], latency=1.0),  # slow: found late
            u("b"): Page(edges=[u("c")], hrefs=["/c"]),
            u("c"): Page(edges=[u("d")], hrefs=["/d"]),
            u("d"): Page(edges=[u("e")], hrefs=["/e"]),
            u("e"): Page(),
        }
    )
    spec = CrawlSpec(crawl_id="deep", seeds=[u("s")], depth=3)
    status = await crawl_in_process(settings, spec)
    records = {r["url"]: r for r in read_manifest(settings.data_dir, "deep")}
    # d is first reached at depth 3 through b and c; through a it is at depth 2, so e is in
    assert set(records) == {u(x) for x in "sabcde"}
    assert records[u("d")]["depth"] == 2 and records[u("d")]["parent"] == u("a")
    assert records[u("e")]["depth"] == 3
    assert status.counters.fetched == 6
    # both of d's records are logged; its first copy's body (depth 3) was removed when the
    # crawl was finalized
    logged = stored_records(settings.data_dir, "deep")
    assert sorted(r.depth for r in logged if r.url == u("d")) == [2, 3]
    assert len(logged) == 7
    assert len([p for p in (settings.data_dir / "deep" / "pages").rglob("*") if p.is_file()]) == 6


async def test_finished_crawl_leaves_no_temp_file(web: TestWeb, settings: Settings) -> None:
    """The temp file of a page write cut short by a killed worker is gone once the crawl is."""
    web.site = make_site(web.port, pages_per_host=4)
    orphan = settings.data_dir / "tmpgone" / "pages" / "ab" / ".ab12.d1.json.4242.0badf00d.tmp"
    orphan.parent.mkdir(parents=True)
    orphan.write_bytes(b'{"url": "half a rec')
    spec = CrawlSpec(crawl_id="tmpgone", seeds=[web.url(0, "/p/0.html")], depth=1)
    status = await crawl_in_process(settings, spec)
    assert status.state is CrawlState.DONE
    assert read_manifest(settings.data_dir, "tmpgone")
    assert not orphan.exists()
    assert not list((settings.data_dir / "tmpgone").rglob("*.tmp"))


async def test_bad_pages_are_recorded_not_fatal(web: TestWeb, settings: Settings) -> None:
    """Junk, wrong charsets, a refused link, TLS to a plain server, a 500: all recorded."""
    root = web.url(0, "/")
    junk = web.url(0, "/junk")
    tls = web.url(1, "/").replace("http://", "https://")
    web.site = Site(
        {
            root: Page(hrefs=["/junk", "/err", "/charset", "http://127.0.0.1:1/refused", tls]),
            junk: Page(body=bytes(range(256)) * 50 + b"<a href='/x'>\xff\xfe<<<"),
            web.url(0, "/err"): Page(status=500),
            web.url(0, "/charset"): Page(
                content_type="text/html; charset=no-such-charset",
                body=b"\xef\xbb\xbf<a href='/after-bom'>\xe9\xff</a>",
            ),
            web.url(0, "/after-bom"): Page(),
            web.url(0, "/x"): Page(),
        }
    )
    spec = CrawlSpec(
        crawl_id="bad", seeds=[root], depth=2, scope="any", obey_robots=False, retries=0
    )
    status = await crawl_in_process(settings, spec)
    assert status.state is CrawlState.DONE
    records = {r["url"]: r for r in read_manifest(settings.data_dir, "bad")}
    assert records[junk]["status"] == 200
    assert records[web.url(0, "/err")]["status"] == 500
    refused = records["http://127.0.0.1:1/refused"]
    assert refused["status"] is None and refused["error"].startswith("connect")
    assert records[tls]["status"] is None and records[tls]["error"].startswith("tls")
    assert records[web.url(0, "/after-bom")]["status"] == 200  # found despite the bad charset
    assert status.counters.failed == 2
    assert status.counters.reasons == {"connect": 1, "tls": 1, "http 500": 1}


async def test_max_pages_stops_the_crawl(web: TestWeb, settings: Settings, tmp_path: Path) -> None:
    """--max-pages caps the number of URLs fetched."""
    web.site = make_site(web.port, pages_per_host=30, max_latency=0)
    seeds = [web.url(h, "/p/0.html") for h in range(3)]
    spec = CrawlSpec(crawl_id="cap", seeds=seeds, depth=5, max_pages=7)
    status = await crawl_in_process(settings, spec)
    assert len(read_manifest(settings.data_dir, "cap")) == 7
    assert status.counters.fetched + status.counters.failed == 7


async def test_content_types_choose_which_bodies_are_stored(
    web: TestWeb, settings: Settings
) -> None:
    """With content types given, other bodies are not written; every URL keeps its record."""
    web.site = make_site(web.port, seed=3, pages_per_host=15)
    seeds = [web.url(h, "/p/0.html") for h in range(3)]
    spec = CrawlSpec(crawl_id="ct", seeds=seeds, depth=3, content_types=["text/html"])
    await crawl_in_process(settings, spec)
    records = read_manifest(settings.data_dir, "ct")
    assert {r["url"] for r in records} == set(shortest_depths(web.site, seeds, 3))
    plain = [r for r in records if (r["content_type"] or "").startswith("text/plain")]
    html = [r for r in records if (r["content_type"] or "").startswith("text/html")]
    assert plain and html
    assert all(r["path"] is None and r["length"] > 0 for r in plain)
    assert all((settings.data_dir / "ct" / r["path"]).is_file() for r in html)
    assert not list((settings.data_dir / "ct" / "pages").rglob("*.txt"))
    assert spec.stores("image/png") is False
    assert CrawlSpec(crawl_id="x", seeds=[], content_types=["image/"]).stores("image/png")


async def test_workers_claim_jobs_in_one_round_trip(
    web: TestWeb, settings: Settings, redis: Redis
) -> None:
    """Jobs are claimed by claim.lua, never by arq's WATCH/MULTI transaction, and cleaned up
    by page_done.lua, not by another arq transaction."""
    web.site = make_site(web.port, pages_per_host=12)
    seeds = [web.url(host, "/p/0.html") for host in range(3)]
    await redis.config_resetstat()
    status = await crawl_in_process(settings, CrawlSpec(crawl_id="rt", seeds=seeds, depth=2))
    assert status.state is CrawlState.DONE and status.counters.fetched > 1
    stats = await redis.info("commandstats")
    assert "cmdstat_watch" not in stats  # arq's claim starts with WATCH
    # arq runs one MULTI to start a job and one to clean it up; page_done.lua does the latter
    pages = status.counters.fetched + status.counters.failed
    assert stats["cmdstat_multi"]["calls"] < 1.5 * pages, (stats["cmdstat_multi"], pages)


async def test_no_host_slot_outlives_its_page(
    web: TestWeb, settings: Settings, redis: Redis
) -> None:
    """Every request slot a page took is given back when it closes (none left to expire)."""
    web.site = make_site(web.port, pages_per_host=12, max_latency=0.005)
    seeds = [web.url(host, "/p/0.html") for host in range(3)]
    status = await crawl_in_process(settings, CrawlSpec(crawl_id="sl", seeds=seeds, depth=2))
    assert status.state is CrawlState.DONE and status.counters.fetched > 3
    assert await redis.keys("cf:{*}:slots") == []


async def test_worker_looks_at_the_queue_when_a_job_ends(web: TestWeb, settings: Settings) -> None:
    """A job that ends wakes the poll loop: a chain of pages, each queued by the one before,
    is crawled without waiting for the poll beat (made 30 s here, longer than the whole
    test may take: arq's fixed beat would need 30 s per page)."""
    u = lambda name: web.url(0, f"/{name}")  # noqa: E731
    chain = "abcde"
    web.site = Site(
        {
            u(name): Page(edges=[u(nxt)], hrefs=[f"/{nxt}"])
            for name, nxt in itertools.pairwise(chain)
        }
        | {u("e"): Page()}
    )
    async with connected(settings.redis_url) as redis:
        await seed_crawl(redis, settings, CrawlSpec(crawl_id="ch", seeds=[u("a")], depth=4))
    worker = build_worker(settings, burst=True, handle_signals=False, poll_delay=30)
    try:
        async with asyncio.timeout(20):
            await worker.async_run()
    finally:
        await worker.close()
    assert {r["url"] for r in read_manifest(settings.data_dir, "ch")} == {u(c) for c in chain}


async def test_jobs_a_worker_cannot_run_are_dropped_without_harm(
    web: TestWeb, settings: Settings, redis: Redis
) -> None:
    """Queued beside a crawl: a job whose payload is gone, one that is not msgpack, one of an
    unknown function, and one cancelled before it started. Each is dropped with its keys, none
    runs, and the crawl completes."""
    web.site = make_site(web.port, pages_per_host=6)
    seed = web.url(0, "/p/0.html")
    queue = settings.queue_name
    payload = job_payload(FINALIZE_CRAWL, ("ghost",), now_ms())
    bad = {
        "gone": None,
        "garbled": b"\xc1 not msgpack",
        "unknown": job_payload("no_such_function", (), now_ms()),
        "aborted": payload,
    }
    for job_id, data in bad.items():
        await redis.zadd(queue, {job_id: now_ms()})
        if data is not None:
            await redis.set(JOB_KEY_PREFIX + job_id, data)
    await redis.zadd(ABORT_JOBS, {"aborted": now_ms()})
    await seed_crawl(redis, settings, CrawlSpec(crawl_id="ok", seeds=[seed], depth=2))
    worker = build_worker(settings, burst=True, handle_signals=False)
    try:
        async with asyncio.timeout(60):
            await worker.async_run()
    finally:
        await worker.close()
    pages = read_manifest(settings.data_dir, "ok")
    assert {r["url"] for r in pages} == set(
        shortest_depths(web.site, [seed], 2, only_seed_hosts=True)
    )
    assert worker.jobs_failed == len(bad)
    assert worker.jobs_complete == len(pages) + 2  # and its robots.txt job and finalize job
    assert not (settings.data_dir / "ghost").exists()
    assert await redis.zcard(queue) == 0
    for job_id in bad:
        for prefix in (JOB_KEY_PREFIX, IN_PROGRESS_KEY_PREFIX, RETRY_KEY_PREFIX):
            assert not await redis.exists(prefix + job_id), prefix + job_id


@pytest.mark.parametrize("linked", ["nolink", "nolink/pages"])
async def test_a_crawl_folder_that_is_a_link_fails_the_crawl(
    web: TestWeb, settings: Settings, tmp_path: Path, linked: str
) -> None:
    """A crawl folder (or its pages folder) that is a symbolic link fails the crawl with the
    reason before any request: nothing is written where it points."""
    web.site = Site({web.url(0, "/"): Page(hrefs=["/a"]), web.url(0, "/a"): Page()})
    outside = tmp_path / "outside"
    outside.mkdir()
    link = settings.data_dir / linked
    link.parent.mkdir(parents=True)
    link.symlink_to(outside)
    status = await crawl_in_process(settings, CrawlSpec(crawl_id="nolink", seeds=[web.url(0, "/")]))
    assert status.state is CrawlState.FAILED
    assert status.reason == (
        f"storage: {settings.data_dir / 'nolink'} cannot take files: {link} is a symbolic link, "
        "which crawlfleet does not follow"
    )
    assert list(outside.iterdir()) == [] and web.requested() == []


async def test_a_manifest_that_cannot_be_written_fails_the_crawl(
    web: TestWeb, settings: Settings
) -> None:
    """A manifest that cannot be written (a folder in its place) fails the crawl with the
    reason once its pages are stored, where its finalize job was retried for ever."""
    web.site = Site({web.url(0, "/"): Page()})
    (settings.data_dir / "nomani" / "manifest.jsonl").mkdir(parents=True)
    spec = CrawlSpec(crawl_id="nomani", seeds=[web.url(0, "/")], depth=0, obey_robots=False)
    status = await crawl_in_process(settings, spec)
    assert status.state is CrawlState.FAILED and status.counters.fetched == 1
    folder = settings.data_dir / "nomani"
    assert status.reason == f"storage: {folder} cannot take files: Is a directory"


async def test_a_job_that_fails_every_time_gives_up_and_the_crawl_ends(
    web: TestWeb, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A page whose job raises every time (a bug, a hung step) runs again with each try
    counted, and once its tries are spent it is recorded as failed: the crawl ends, the other
    pages whole."""
    u = lambda path: web.url(0, path)  # noqa: E731
    web.site = Site({u("/"): Page(hrefs=["/bad", "/good"]), u("/bad"): Page(), u("/good"): Page()})

    async def fetch(client: Any, url: str, *args: Any, **kwargs: Any) -> FetchResult:
        if url.endswith("/bad"):
            raise RuntimeError("a bug")
        return await real_fetch(client, url, *args, **kwargs)

    monkeypatch.setattr("crawlfleet.workers.jobs.page.fetch", fetch)
    once = settings.model_copy(update={"job_tries": 1})
    spec = CrawlSpec(crawl_id="bug", seeds=[u("/")], depth=1, obey_robots=False)
    status = await crawl_in_process(once, spec)
    assert status.state is CrawlState.DONE
    assert status.counters.fetched == 2 and status.counters.failed == 1
    records = {r["url"]: r for r in read_manifest(settings.data_dir, "bug")}
    assert records[u("/bad")]["error"].startswith("gave up: 1 tries lost")
    assert u("/bad") not in web.requested()


async def test_a_robots_job_that_fails_every_time_gives_up(
    web: TestWeb, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A robots.txt job that raises every time gives up after its tries; its origin's pages
    then fail with that reason, and the crawl ends."""
    u = lambda path: web.url(0, path)  # noqa: E731
    web.site = Site({u("/"): Page(hrefs=["/a"]), u("/a"): Page()})

    async def broken(*args: object) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(robots.RobotsCache, "fetch", broken)
    once = settings.model_copy(update={"job_tries": 1})
    status = await crawl_in_process(once, CrawlSpec(crawl_id="rb", seeds=[u("/")], depth=1))
    assert status.state is CrawlState.DONE and status.counters.failed == 1
    assert status.counters.reasons == {"robots.txt unreachable": 1}
    (record,) = read_manifest(settings.data_dir, "rb")
    assert record["error"] == ("robots.txt unreachable: gave up: 1 tries lost (its worker "
                               "stopped, hung or failed)")  # fmt: skip
    assert web.requested() == []
