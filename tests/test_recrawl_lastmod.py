"""A crawl --since an earlier one that reads sitemaps: a page its sitemap lists with a
<lastmod> no later than the earlier crawl fetched it is recorded as unchanged without any
request (body, links and WARC revisit from the earlier crawl); a later lastmod, none, or a URL
the earlier crawl had no page for takes the request it always took."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest

from crawlfleet.scheduler.control import seed_crawl
from crawlfleet.scheduler.local import LocalWorkers
from crawlfleet.scheduler.readback import FinishedCrawl
from crawlfleet.shared.connections import connected
from crawlfleet.shared.crawl import CrawlSpec, CrawlState, CrawlStatus
from crawlfleet.shared.settings import Settings
from tests.support.crawling import crawl_in_process, read_manifest, wait_done
from tests.support.testweb import Page, Site, TestWeb
from tests.support.warcs import read_warc, warcio_check

NS = "http://www.sitemaps.org/schemas/sitemap/0.9"
LAST_MODIFIED = "Wed, 02 Dec 2026 10:00:00 GMT"
DEPTH = 2
# listed with a lastmod no later than the first crawl's fetch: never requested again
OLD = {"/old1", "/old2", "/old.txt"}
# listed with a later lastmod, or none: asked for with their validators, answered 304
ASKED = {"/fresh": ('"fresh"', None), "/today": (None, LAST_MODIFIED), "/plain": ('"plain"', None)}
# reached only through /old1's links: at depths 1 and 2, /old1/too-deep beyond the limit
BELOW_OLD = {"/old1/child": 1, "/old1/grandchild": 2}


def site(web: TestWeb, sitemap: dict[str, str | None], second: bool) -> dict[str, Page]:
    """One host: a seed linking to /about only (the rest is found through the sitemap, with
    ``sitemap``'s lastmods); /was-missing is a 404 in the first crawl, /brandnew only in the
    second."""
    u: Callable[[str], str] = lambda path: web.url(0, path)  # noqa: E731
    entries = "".join(
        f"<url><loc>{u(path)}</loc>" + (f"<lastmod>{m}</lastmod>" if m else "") + "</url>"
        for path, m in sitemap.items()
    )
    body = f'<?xml version="1.0"?><urlset xmlns="{NS}">{entries}</urlset>'.encode()
    pages = {
        u("/"): Page(etag='"root"', hrefs=["/about"]),
        u("/about"): Page(),
        u("/sitemap.xml"): Page(content_type="application/xml", body=body),
        u("/old1"): Page(etag='"old1"', hrefs=["/old1/child"]),
        u("/old1/child"): Page(etag='"child"', hrefs=["/old1/grandchild"]),
        u("/old1/grandchild"): Page(hrefs=["/old1/too-deep"]),
        u("/old1/too-deep"): Page(),
        u("/old2"): Page(),
        u("/old.txt"): Page(content_type="text/plain"),
        u("/fresh"): Page(etag='"fresh"'),
        u("/today"): Page(last_modified=LAST_MODIFIED),
        u("/plain"): Page(etag='"plain"'),
        u("/was-missing"): Page() if second else Page(status=404),
    }
    if second:
        pages[u("/brandnew")] = Page()
    return pages


FIRST_SITEMAP: dict[str, str | None] = {path: None for path in [*OLD, *ASKED, "/was-missing"]}


def second_sitemap(first: dict[str, dict[str, Any]]) -> dict[str, str | None]:
    """The sitemap of the second crawl, by the first crawl's records (path -> record): /old1
    and /old.txt changed long before, /old2 at the very second of its fetch; /fresh since the
    first crawl, /today on the day of its fetch (a date: any time that day); /was-missing
    (a 404 then) and /brandnew (never seen) long before; /plain has no lastmod."""

    def fetched(path: str) -> datetime:
        return datetime.fromisoformat(str(first[path]["fetched_at"]))

    latest = max(datetime.fromisoformat(str(r["fetched_at"])) for r in first.values())
    long_ago = "2020-01-01"
    return {
        "/old1": long_ago,
        "/old.txt": "2020-01-01T00:00:00Z",
        "/old2": fetched("/old2").strftime("%Y-%m-%dT%H:%M:%SZ"),
        "/fresh": (latest + timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "/today": fetched("/today").strftime("%Y-%m-%d"),
        "/plain": None,
        "/was-missing": long_ago,
        "/brandnew": long_ago,
    }


def by_path(web: TestWeb, crawl_id: str, settings: Settings) -> dict[str, dict[str, Any]]:
    origin = web.url(0, "")
    records = read_manifest(settings.data_dir, crawl_id)
    return {str(r["url"]).removeprefix(origin): r for r in records}


def requested_since(web: TestWeb, mark: int) -> dict[str, tuple[str | None, str | None]]:
    """Per path, the (If-None-Match, If-Modified-Since) its request sent after ``mark``."""
    origin = web.url(0, "")
    return {url.removeprefix(origin): (inm, ims) for url, inm, ims in web.conditionals[mark:]}


async def crawl_twice(
    web: TestWeb, settings: Settings, warc: bool, workers: int
) -> tuple[CrawlStatus, dict[str, tuple[str | None, str | None]]]:
    """A crawl with --sitemaps, then one --since it with the second sitemap, on ``workers``
    worker processes (0: one worker in this process); the second's status and requests."""
    first = CrawlSpec(crawl_id="m1", seeds=[web.url(0, "/")], depth=DEPTH, allow_private=True,
                      sitemaps=True, warc=warc)  # fmt: skip
    again = first.model_copy(update={"crawl_id": "m2", "since": "m1"})
    web.site = Site(site(web, FIRST_SITEMAP, second=False))
    if workers == 0:
        assert (await crawl_in_process(settings, first)).state is CrawlState.DONE
        web.site = Site(site(web, second_sitemap(by_path(web, "m1", settings)), second=True))
        mark = len(web.conditionals)
        return await crawl_in_process(settings, again), requested_since(web, mark)
    with LocalWorkers(settings, workers, settings.data_dir / "logs"):
        async with connected(settings.redis_url) as redis:
            await seed_crawl(redis, settings, first)
        assert (await wait_done(settings, "m1")).state is CrawlState.DONE
        web.site = Site(site(web, second_sitemap(by_path(web, "m1", settings)), second=True))
        mark = len(web.conditionals)
        async with connected(settings.redis_url) as redis:
            await seed_crawl(redis, settings, again)
        return await wait_done(settings, "m2"), requested_since(web, mark)


def assert_recrawled(
    web: TestWeb,
    settings: Settings,
    status: CrawlStatus,
    sent: dict[str, tuple[str | None, str | None]],
) -> None:
    """What the second crawl requested, recorded and counted."""
    assert status.state is CrawlState.DONE, status.reason
    assert not OLD & set(sent), sent
    assert "/old1/too-deep" not in sent
    for path, validators in ASKED.items():
        assert sent[path] == validators, path
    assert sent["/old1/child"] == ('"child"', None)
    assert sent["/was-missing"] == sent["/brandnew"] == (None, None)
    earlier, records = by_path(web, "m1", settings), by_path(web, "m2", settings)
    for path in OLD:
        record, was = records[path], earlier[path]
        assert (record["change"], record["status"], record["depth"]) == ("unchanged", 304, 0)
        assert record["sitemap_lastmod"] is not None, path
        assert datetime.fromisoformat(record["sitemap_lastmod"]) <= datetime.fromisoformat(
            was["fetched_at"]
        )
        assert (record["duration_ms"], record["headers"]) == (0, [])
        for field in ("content_type", "length", "sha256", "etag", "last_modified"):
            assert record[field] == was[field], (path, field)
    for path in [*ASKED, "/old1/child"]:
        assert (records[path]["change"], records[path]["status"]) == ("unchanged", 304), path
    grandchild = records["/old1/grandchild"]  # no validators: the same body again
    assert (grandchild["change"], grandchild["status"]) == ("unchanged", 200)
    assert all(records[p]["sitemap_lastmod"] is None for p in records if p not in OLD)
    assert {p: records[p]["depth"] for p in BELOW_OLD} == BELOW_OLD
    assert "/old1/too-deep" not in records
    assert records["/was-missing"]["change"] == records["/brandnew"]["change"] == "new"
    c = status.counters
    assert (c.new, c.changed, c.unchanged, c.gone, c.failed) == (2, 0, 10, 0, 0)
    assert c.fetched == len(records) == 12
    crawl, was_crawl = (FinishedCrawl(settings.data_dir, c) for c in ("m2", "m1"))
    for path in OLD:
        url = web.url(0, path)
        assert crawl.body(crawl.page(url)) == was_crawl.body(was_crawl.page(url))


@pytest.mark.slow
async def test_a_sitemap_lastmod_spares_the_request_on_two_workers(
    web: TestWeb, settings: Settings
) -> None:
    """With 2 worker processes: pages whose sitemap lastmod is no later than the first
    crawl's fetch are never requested, recorded as unchanged 304s (their body files hard
    links of the first crawl's) with their lastmod, and their stored links followed at their
    exact depths; a later lastmod (a time, or a date of the fetch's day) or none sends the
    validators as before; a URL the first crawl had no page for is fetched as new."""
    status, sent = await crawl_twice(web, settings, warc=False, workers=2)
    assert_recrawled(web, settings, status, sent)
    for path in OLD:
        was = settings.data_dir / "m1" / str(by_path(web, "m1", settings)[path]["path"])
        now = settings.data_dir / "m2" / str(by_path(web, "m2", settings)[path]["path"])
        assert now.stat().st_ino == was.stat().st_ino, path


async def test_a_page_not_requested_is_a_warc_revisit(web: TestWeb, settings: Settings) -> None:
    """With --warc, a page not requested is a revisit record (server-not-modified) referring
    to the first crawl's response by id, URI, date and digest, with no block and no request
    record; `cat` reads its body from the first crawl, the index lists it, `warcio check`
    passes."""
    status, sent = await crawl_twice(web, settings, warc=True, workers=0)
    assert_recrawled(web, settings, status, sent)

    def records_of(crawl_id: str) -> list:  # type: ignore[type-arg]
        files = (settings.data_dir / crawl_id / "warc").glob("*.warc.gz")
        return [r for path in sorted(files) for r in read_warc(path)]

    earlier = {r.url: r for r in records_of("m1") if r.kind == "response"}
    second = records_of("m2")
    old = {web.url(0, p) for p in OLD}
    assert not [r for r in second if r.kind == "request" and r.url in old]
    revisits = {r.url: r for r in second if r.kind == "revisit" and r.url in old}
    assert set(revisits) == old
    for url, revisit in revisits.items():
        h, was = revisit.warc_headers, earlier[url]
        assert h["WARC-Profile"] == "http://netpreserve.org/warc/1.1/revisit/server-not-modified"
        assert h["WARC-Refers-To"] == was.record_id
        assert h["WARC-Refers-To-Target-URI"] == url
        assert h["WARC-Refers-To-Date"] == was.warc_headers["WARC-Date"]
        assert h["WARC-Payload-Digest"] == was.warc_headers["WARC-Payload-Digest"]
        assert revisit.http_line is None and revisit.payload == b""
        assert "Content-Type" not in h
    for path in (settings.data_dir / "m2" / "warc").glob("*.warc.gz"):
        checked = warcio_check(path)
        assert checked.returncode == 0, checked.stdout + checked.stderr
    index = (settings.data_dir / "m2" / "index.cdxj").read_text()
    for url in old:
        assert any(url in line and '"warc/revisit"' in line for line in index.splitlines())
    crawl = FinishedCrawl(settings.data_dir, "m2")
    for url in old:
        record = crawl.page(url)
        assert record.warc is not None and record.body_in is not None
        assert record.body_in.crawl_id == "m1" and record.path is None
