"""The pages a crawl --since another no longer reaches: counted ``unreached`` and listed in
``unreached.jsonl`` when the crawl is finalized, against a real site changed between crawls."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from redis.asyncio import Redis

from crawlfleet.scheduler.control import cancel_crawl, seed_crawl
from crawlfleet.shared.catalog import load_status
from crawlfleet.shared.crawl import CrawlSpec, CrawlState
from crawlfleet.shared.keys import CrawlKeys
from crawlfleet.shared.page_index import write_page_index
from crawlfleet.shared.settings import Settings
from crawlfleet.shared.storage import CrawlLayout, PageRecord
from crawlfleet.shared.urls import fingerprint
from crawlfleet.workers.build import build_worker
from crawlfleet.workers.record_logs import RecordLogs
from crawlfleet.workers.since import EarlierCrawl
from crawlfleet.workers.unreached import write_unreached
from tests.support.crawling import crawl_in_process, read_manifest
from tests.support.testweb import Page, Site, TestWeb


def site_before(web: TestWeb) -> dict[str, Page]:
    """The first crawl's site: a page with a validator, a page with a child of its own, a page
    to be deleted, a page that is already 404, a redirect."""
    u: Callable[[str], str] = lambda path: web.url(0, path)  # noqa: E731
    hrefs = ["/kept", "/unlinked", "/deleted", "/broken", "/hop"]
    return {
        u("/"): Page(hrefs=hrefs),
        u("/kept"): Page(etag='"kept-1"'),
        u("/unlinked"): Page(hrefs=["/unlinked/child"]),
        u("/unlinked/child"): Page(),
        u("/deleted"): Page(),
        u("/broken"): Page(status=404),
        u("/hop"): Page(status=301, redirect_to=u("/kept")),
    }


def site_after(web: TestWeb, before: dict[str, Page]) -> dict[str, Page]:
    """The same site later: the home page links /kept and /deleted alone; /deleted is deleted
    (404), /unlinked (and its child) and the redirect are still served, linked from nowhere."""
    after = dict(before)
    after[web.url(0, "/")] = Page(hrefs=["/kept", "/deleted"])
    after[web.url(0, "/deleted")] = Page(status=404)
    return after


def spec(web: TestWeb, crawl_id: str, **kw: Any) -> CrawlSpec:
    return CrawlSpec(crawl_id=crawl_id, seeds=[web.url(0, "/")], depth=3, allow_private=True, **kw)


def unreached_of(data: Path, crawl_id: str, web: TestWeb) -> dict[str, dict[str, Any]]:
    """The lines of a crawl's ``unreached.jsonl`` by path (each line once)."""
    lines = (data / crawl_id / "unreached.jsonl").read_text().splitlines()
    listed = [json.loads(line) for line in lines]
    by_path = {str(r.pop("url")).removeprefix(web.url(0, "")): r for r in listed}
    assert len(by_path) == len(listed)
    return by_path


async def test_a_page_no_longer_linked_is_unreached_and_a_deleted_one_gone(
    web: TestWeb, settings: Settings, redis: Redis
) -> None:
    """A page unlinked between crawls but still served 200 (and the page only it linked to, and
    a redirect no longer linked) is unreached: counted, and listed with its earlier status and
    depth; a deleted page still linked is gone (404), not unreached; an earlier 404 no longer
    linked is neither. A crawl without --since writes no list and counts none."""
    before = site_before(web)
    web.site = Site(before)
    first = await crawl_in_process(settings, spec(web, "v1"))
    assert first.state is CrawlState.DONE
    assert not (settings.data_dir / "v1" / "unreached.jsonl").exists()
    assert first.counters.unreached == 0
    assert await redis.hget(CrawlKeys("v1").stats, "unreached") is None  # type: ignore[misc]

    web.site = Site(site_after(web, before))
    mark = len(web.statuses)
    again = await crawl_in_process(settings, spec(web, "v2", since="v1"))
    assert again.state is CrawlState.DONE
    c = again.counters
    assert (c.new, c.changed, c.unchanged, c.gone, c.unreached) == (0, 1, 1, 1, 3)
    assert unreached_of(settings.data_dir, "v2", web) == {
        "/unlinked": {"status": 200, "depth": 1},
        "/unlinked/child": {"status": 200, "depth": 2},
        "/hop": {"status": 301, "depth": 1},
    }
    changes = {r["url"]: r["change"] for r in read_manifest(settings.data_dir, "v2")}
    assert changes[web.url(0, "/deleted")] == "gone"
    assert {u for u, _ in web.statuses[mark:]}.isdisjoint(
        {web.url(0, p) for p in ("/unlinked", "/unlinked/child", "/hop", "/broken")}
    )
    with urllib.request.urlopen(web.url(0, "/unlinked"), timeout=30) as still:
        assert still.status == 200


async def test_an_unchanged_page_unlinked_later_is_unreached(
    web: TestWeb, settings: Settings
) -> None:
    """A crawl --since a recrawl lists a page the recrawl had as unchanged (a 304) and that
    it no longer reaches, with that status; the recrawl's gone page, unlinked too, is not
    listed (it had no response below 400 there)."""
    before = site_before(web)
    web.site = Site(before)
    await crawl_in_process(settings, spec(web, "v1"))
    after = site_after(web, before)
    web.site = Site(after)
    await crawl_in_process(settings, spec(web, "v2", since="v1"))
    kept = read_manifest(settings.data_dir, "v2")
    assert {r["url"]: r["status"] for r in kept}[web.url(0, "/kept")] == 304
    web.site = Site(after | {web.url(0, "/"): Page(hrefs=[])})
    third = await crawl_in_process(settings, spec(web, "v3", since="v2"))
    c = third.counters
    assert (c.changed, c.gone, c.unreached) == (1, 0, 1)
    assert unreached_of(settings.data_dir, "v3", web) == {"/kept": {"status": 304, "depth": 1}}


async def test_a_capped_crawl_lists_the_pages_it_did_not_get_to(
    web: TestWeb, settings: Settings
) -> None:
    """A crawl --since another cut short by --max-pages, of the same site, lists as unreached
    the earlier pages (below 400) it has no record of: every one, and no other."""
    before = site_before(web)
    web.site = Site(before)
    await crawl_in_process(settings, spec(web, "v1"))
    capped = await crawl_in_process(settings, spec(web, "v2", since="v1", max_pages=2))
    assert capped.state is CrawlState.DONE and capped.counters.capped > 0
    fetched = {r["url"] for r in read_manifest(settings.data_dir, "v2")}
    had = {
        r["url"]: {"status": r["status"], "depth": r["depth"]}
        for r in read_manifest(settings.data_dir, "v1")
        if r["status"] < 400 and r["url"] not in fetched
    }
    listed = unreached_of(settings.data_dir, "v2", web)
    assert listed == {url.removeprefix(web.url(0, "")): r for url, r in had.items()}
    assert capped.counters.unreached == len(had) >= 3


async def test_a_cancelled_crawl_counts_what_it_did_not_get_to(
    web: TestWeb, settings: Settings, redis: Redis
) -> None:
    """A crawl --since another cancelled before it fetched anything is still finalized: its
    manifest is empty, every page the earlier crawl had is unreached, and the count is set on
    the cancelled crawl."""
    web.site = Site(site_before(web))
    await crawl_in_process(settings, spec(web, "v1"))
    await seed_crawl(redis, settings, spec(web, "v2", since="v1"))
    await cancel_crawl(redis, settings, "v2")
    worker = build_worker(settings, burst=True, handle_signals=False)
    try:
        await worker.async_run()  # the finalize job alone: the cancel dropped every other
    finally:
        await worker.close()
    status = await load_status(redis, "v2")
    assert status.state is CrawlState.CANCELLED
    assert read_manifest(settings.data_dir, "v2") == []
    had = [r for r in read_manifest(settings.data_dir, "v1") if r["status"] < 400]
    assert len(unreached_of(settings.data_dir, "v2", web)) == len(had) == 6
    assert status.counters.unreached == 6


def record(url: str) -> PageRecord:
    """A 200 record of ``url`` at depth 1."""
    return PageRecord(
        url=url, final_url=url, depth=1, parent=None, status=200, content_type="text/html",
        length=0, sha256=None, fetched_at=datetime.now(UTC), duration_ms=1, path=None,
        fingerprint=fingerprint(url), worker="w", links=[],
    )  # fmt: skip


def finished(data: Path, crawl_id: str, urls: list[str]) -> CrawlLayout:
    """A finalized crawl on disk, with a 200 record of each URL: its record log, its index."""
    layout = CrawlLayout(data, crawl_id)
    with RecordLogs(Settings(data_dir=data, worker_id="w")) as logs:
        kept = [(r, logs.append(layout, r)) for r in map(record, urls)]
    write_page_index(layout, kept)
    return layout


def test_the_merge_finds_every_missing_page_of_many(tmp_path: Path) -> None:
    """Of 3,000 pages, the 1,000 the later crawl has no record of (every third) are listed, once
    each, and the file is the whole list written atomically: no temp file left, an earlier
    list replaced."""
    urls = [f"http://h.test/p{n}" for n in range(3000)]
    earlier = finished(tmp_path, "old", urls)
    later = finished(tmp_path, "new", [u for n, u in enumerate(urls) if n % 3])
    later.write(later.unreached, b"stale\n")
    crawl = EarlierCrawl(tmp_path, "old")
    try:
        assert write_unreached(later, crawl) == 1000
    finally:
        crawl.close()
    lines = later.read(later.unreached).decode().splitlines()
    assert sorted(json.loads(line)["url"] for line in lines) == sorted(urls[::3])
    assert sorted(p.name for p in later.root.iterdir()) == [
        "pages.idx",
        "records",
        "unreached.jsonl",
    ]
    assert earlier.has_file(earlier.page_index)
