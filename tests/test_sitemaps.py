"""--sitemaps: crawls that read their seeds' sitemaps, against a real Redis and loopback
servers (workers/sitemaps.py, the fetch_sitemap job, shared/lua/sitemap_done.lua)."""

from __future__ import annotations

import gzip
import io
import json
from datetime import UTC, datetime

import pytest
from structlog.contextvars import merge_contextvars
from structlog.testing import capture_logs
from warcio.archiveiterator import ArchiveIterator

from crawlfleet.shared.crawl import CrawlSpec, CrawlState, CrawlStatus
from crawlfleet.shared.errors import BadSitemap
from crawlfleet.shared.settings import Settings
from crawlfleet.shared.storage import CrawlLayout
from crawlfleet.workers.sitemaps import (
    SITEMAP_MAX_BYTES,
    SITEMAP_MAX_URLS,
    SitemapEntry,
    parse_lastmod,
    parse_sitemap,
)
from tests.support.crawling import crawl_in_process, crawl_with_processes, read_manifest
from tests.support.synthetic import shortest_depths
from tests.support.testweb import (
    OUT_OF_SCOPE_HOST,
    Page,
    Site,
    TestWeb,
    add_sitemaps,
    make_site,
)
from tests.support.warcs import read_warc, warcio_check

NS = "http://www.sitemaps.org/schemas/sitemap/0.9"


def urlset(urls: list[str], lastmod: str | None = None) -> bytes:
    """A sitemap listing ``urls`` (each with ``lastmod`` if given)."""
    mod = f"<lastmod>{lastmod}</lastmod>" if lastmod else ""
    entries = "".join(f"<url><loc>{u}</loc>{mod}<changefreq>daily</changefreq></url>" for u in urls)
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<urlset xmlns="{NS}">{entries}</urlset>'.encode()
    )


def sitemap_index(urls: list[str]) -> bytes:
    entries = "".join(f"<sitemap><loc>{u}</loc></sitemap>" for u in urls)
    return f'<?xml version="1.0"?><sitemapindex xmlns="{NS}">{entries}</sitemapindex>'.encode()


def xml(body: bytes) -> Page:
    return Page(content_type="application/xml", body=body)


def gzipped(body: bytes) -> Page:
    return Page(content_type="application/x-gzip", body=gzip.compress(body, mtime=0))


def robots(*lines: str) -> Page:
    return Page(content_type="text/plain", body=("\n".join(lines) + "\n").encode())


async def crawl(settings: Settings, crawl_id: str, seed: str, **kw: object) -> CrawlStatus:
    values = {"crawl_id": crawl_id, "seeds": [seed], "depth": 1, "sitemaps": True, **kw}
    status = await crawl_in_process(settings, CrawlSpec.model_validate(values))
    assert status.state is CrawlState.DONE
    return status


def depths(settings: Settings, crawl_id: str) -> dict[str, int]:
    return {r["url"]: r["depth"] for r in read_manifest(settings.data_dir, crawl_id)}


# -- reading one sitemap -------------------------------------------------------------------


def test_a_urlset_gives_its_urls_with_their_lastmod() -> None:
    """Each <url> gives its <loc> and <lastmod> (in UTC), whatever other elements it holds."""
    parsed = parse_sitemap(
        urlset(["http://a.test/1", "http://a.test/2"], "2024-05-01T10:00:30+02:00")
    )
    when = datetime(2024, 5, 1, 8, 0, 30, tzinfo=UTC)
    assert parsed.entries == [SitemapEntry("http://a.test/1", when),
                              SitemapEntry("http://a.test/2", when)]  # fmt: skip
    assert (parsed.index, parsed.cut) == (False, [])


@pytest.mark.parametrize(
    ("text", "expected"),
    [("2024", datetime(2025, 1, 1, tzinfo=UTC)), ("2024-05", datetime(2024, 6, 1, tzinfo=UTC)),
     ("2024-12", datetime(2025, 1, 1, tzinfo=UTC)),
     ("2024-05-03", datetime(2024, 5, 4, tzinfo=UTC)),
     ("2024-05-03T04:05:06.5Z", datetime(2024, 5, 3, 4, 5, 6, 500000, tzinfo=UTC)),
     (" 2024-05-03T04:05-01:00 ", datetime(2024, 5, 3, 5, 6, tzinfo=UTC)),
     ("2024-05-03T04:05:06+0130", datetime(2024, 5, 3, 2, 35, 6, tzinfo=UTC)),
     ("2024-05-03 04:05:06", datetime(2024, 5, 3, 4, 5, 6, tzinfo=UTC)),
     ("yesterday", None), ("", None), (None, None), ("2024-02-30", None), ("2024-W18-3", None),
     ("9999", None)],
)  # fmt: skip
def test_lastmod_reads_w3c_datetimes(text: str | None, expected: datetime | None) -> None:
    """W3C Datetime at every precision the protocol allows, as the latest time it may mean (a
    day: the next midnight UTC, a minute: its end), so a page changed later that day is never
    taken as older; anything else is no lastmod."""
    assert parse_lastmod(text) == expected


def test_text_and_gzip_and_index_sitemaps() -> None:
    """A text sitemap is one URL a line (blank lines skipped, a line too long for a URL skipped
    unread); gzip is inflated; an index lists sitemaps."""
    text = parse_sitemap(b"\xef\xbb\xbfhttp://a.test/1\r\n\n  http://a.test/2  \nhttp://a.test/3")
    assert [e.url for e in text.entries] == [f"http://a.test/{i}" for i in (1, 2, 3)]
    junk = parse_sitemap(b"http://a.test/1\n" + b"x" * 200_000 + b"\nhttp://a.test/2")
    assert [e.url for e in junk.entries] == ["http://a.test/1", "http://a.test/2"]
    zipped = parse_sitemap(gzip.compress(urlset(["http://a.test/z"])))
    assert [e.url for e in zipped.entries] == ["http://a.test/z"]
    index = parse_sitemap(gzip.compress(sitemap_index(["http://a.test/s1.xml"])))
    assert index.index and [e.url for e in index.entries] == ["http://a.test/s1.xml"]


def test_a_sitemap_is_read_up_to_the_protocols_limits() -> None:
    """Past 50,000 URLs or 50 MB uncompressed (a gzip bomb included) the rest is not read,
    and the sitemap says which limit cut it."""
    many = parse_sitemap(urlset([f"http://a.test/{i}" for i in range(SITEMAP_MAX_URLS + 5)]))
    assert len(many.entries) == SITEMAP_MAX_URLS and many.cut == ["over 50000 URLs"]
    lines = parse_sitemap(b"\n".join(b"http://a.test/%d" % i for i in range(SITEMAP_MAX_URLS + 1)))
    assert len(lines.entries) == SITEMAP_MAX_URLS and lines.cut == ["over 50000 URLs"]
    padding = (b"<pad>" + b"x" * 1000 + b"</pad>") * (SITEMAP_MAX_BYTES // 1000)
    bomb = gzip.compress(b"<urlset><url><loc>http://a.test/1</loc></url>" + padding
                         + b"<url><loc>http://a.test/2</loc></url></urlset>")  # fmt: skip
    big = parse_sitemap(bomb)
    assert [e.url for e in big.entries] == ["http://a.test/1"]
    assert big.cut == [f"over {SITEMAP_MAX_BYTES} bytes"]


@pytest.mark.parametrize(
    ("body", "reason"),
    [(b"<urlset><url><loc>http://a.test/</loc></url>", "malformed XML"),
     (b"<urlset><url><loc>http://a.test/&nope;</loc></url></urlset>", "malformed XML"),
     (b"<html><body>moved</body></html>", "not a sitemap"),
     (b'<!DOCTYPE urlset [<!ENTITY a "http://a.test/">]><urlset><url><loc>&a;</loc></url>'
      b"</urlset>", "a DTD"),
     (gzip.compress(urlset(["http://a.test/"]), mtime=0)[:40], "bad gzip data")],
    ids=["unclosed", "undefined entity", "html", "dtd", "cut gzip"],
)  # fmt: skip
def test_a_sitemap_that_cannot_be_read_says_why(body: bytes, reason: str) -> None:
    """Malformed XML, another document, a DTD (entities are never resolved) or broken gzip."""
    with pytest.raises(BadSitemap) as raised:
        parse_sitemap(body)
    assert raised.value.failure.kind == reason


# -- crawls --------------------------------------------------------------------------------


async def test_a_missing_sitemap_is_an_error_only_when_listed(
    web: TestWeb, settings: Settings
) -> None:
    """A sitemap robots.txt names that answers 404 is counted as a failure with its reason;
    the /sitemap.xml that was only guessed answering 404 is skipped without one."""
    root = web.url(0, "/")
    web.site = Site(
        {root: Page(), web.url(0, "/robots.txt"): robots("User-agent: *", "Sitemap: /gone.xml")}
    )
    status = await crawl(settings, "missing", root)
    assert status.counters.sitemaps_skipped == 2
    assert status.counters.reasons == {"sitemap: http 404": 1}
    assert {web.url(0, "/gone.xml"), web.url(0, "/sitemap.xml")} <= set(web.requested())


@pytest.mark.slow
async def test_robots_sitemap_index_of_gzip_sitemaps_gives_the_exact_page_set(
    web: TestWeb, settings: Settings
) -> None:
    """robots.txt's Sitemap: line names an index of two gzip sitemaps: every page they list is
    crawled at depth 0 (as a seed) and its links one hop further; nothing else is fetched, and
    the counters say what was read (the guessed /sitemap.xml is absent: skipped, no error)."""
    root = web.url(0, "/")
    pages = {
        root: Page(hrefs=["/linked"]),
        web.url(0, "/linked"): Page(),
        web.url(0, "/robots.txt"): robots("User-agent: *", "Sitemap: /maps/index.xml"),
        web.url(0, "/maps/index.xml"): xml(sitemap_index(["/maps/a.xml.gz", "/maps/b.xml.gz"])),
        web.url(0, "/maps/a.xml.gz"): gzipped(urlset([web.url(0, f"/a/{i}") for i in range(3)])),
        web.url(0, "/maps/b.xml.gz"): gzipped(urlset([web.url(0, "/b/0"), web.url(0, "/linked")])),
    }
    for i in range(3):
        pages[web.url(0, f"/a/{i}")] = Page(hrefs=[f"/a/{i}/child"])
        pages[web.url(0, f"/a/{i}/child")] = Page(hrefs=[f"/a/{i}/grandchild"])
        pages[web.url(0, f"/a/{i}/grandchild")] = Page()
    pages[web.url(0, "/b/0")] = Page()
    web.site = Site(pages)
    status = await crawl(settings, "smap", root)
    expected = {root: 0, web.url(0, "/linked"): 0, web.url(0, "/b/0"): 0}
    expected |= {web.url(0, f"/a/{i}"): 0 for i in range(3)}
    expected |= {web.url(0, f"/a/{i}/child"): 1 for i in range(3)}
    assert depths(settings, "smap") == expected
    assert not any("grandchild" in u for u in web.requested())
    c = status.counters
    assert (c.sitemaps, c.sitemaps_skipped, c.sitemap_urls) == (3, 1, 5)
    assert c.reasons == {}
    maps = [u for u in web.requested() if "/maps/" in u or "sitemap" in u]
    paths = ["/sitemap.xml", "/maps/index.xml", "/maps/a.xml.gz", "/maps/b.xml.gz"]
    assert sorted(maps) == sorted(web.url(0, path) for path in paths)
    # the sitemap's URLs are found through it: their records name it as their parent
    record = next(r for r in read_manifest(settings.data_dir, "smap") if r["url"].endswith("/b/0"))
    assert record["parent"] == web.url(0, "/maps/b.xml.gz")


@pytest.mark.slow
async def test_pages_only_in_the_sitemap_are_found_with_sitemaps_only(
    web: TestWeb, settings: Settings
) -> None:
    """A text sitemap at /sitemap.xml lists pages no link reaches: a crawl finds them with
    --sitemaps, and without it asks for no sitemap and finds only the seed."""
    root = web.url(0, "/")
    hidden = [web.url(0, f"/hidden/{i}") for i in range(4)]
    listing = "\n".join(["", *hidden, web.url(0, "/hidden/0#again"), ""]).encode()
    sitemap = Page(content_type="text/plain", body=listing)
    web.site = Site(
        {root: Page(), **{u: Page() for u in hidden}, web.url(0, "/sitemap.xml"): sitemap}
    )
    without = await crawl(settings, "plain", root, sitemaps=False)
    assert set(depths(settings, "plain")) == {root}
    assert web.url(0, "/sitemap.xml") not in web.requested()
    assert (without.counters.sitemaps, without.counters.sitemap_urls) == (0, 0)
    status = await crawl(settings, "found", root)
    assert depths(settings, "found") == {root: 0, **{u: 0 for u in hidden}}
    assert (status.counters.sitemaps, status.counters.sitemap_urls) == (1, 4)


@pytest.mark.slow
async def test_a_sitemap_of_too_many_urls_is_capped(web: TestWeb, settings: Settings) -> None:
    """A sitemap of 50,010 URLs gives the frontier its first 50,000 (seen through --max-pages,
    which counts those it refuses as capped), and says it was cut."""
    root = web.url(0, "/")
    many = [web.url(0, f"/many/{i}") for i in range(SITEMAP_MAX_URLS + 10)]
    web.site = Site({root: Page(), **{u: Page() for u in many},
                     web.url(0, "/sitemap.xml"): gzipped(urlset(many))})  # fmt: skip
    status = await crawl(settings, "many", root, max_pages=4)
    c = status.counters
    assert c.seen == 4 and c.seen + c.capped == 1 + SITEMAP_MAX_URLS
    assert c.reasons == {"sitemap: over 50000 URLs": 1}
    assert set(depths(settings, "many")) == {root, *many[:3]}


@pytest.mark.slow
async def test_a_sitemap_over_50_mb_is_capped(web: TestWeb, settings: Settings) -> None:
    """A small gzip file that inflates past 50 MB gives the URLs before the cut only, and
    says it was cut."""
    root = web.url(0, "/")
    before, after = [web.url(0, f"/before/{i}") for i in range(2)], web.url(0, "/after")
    padding = (b"<pad>" + b"x" * 1000 + b"</pad>") * (SITEMAP_MAX_BYTES // 1000)
    big = urlset([*before, after]).replace(
        b"<url><loc>" + after.encode(), padding + b"<url><loc>" + after.encode()
    )
    web.site = Site({root: Page(), **{u: Page() for u in [*before, after]},
                     web.url(0, "/sitemap.xml"): gzipped(big)})  # fmt: skip
    status = await crawl(settings, "bytes", root)
    assert set(depths(settings, "bytes")) == {root, *before}
    assert after not in web.requested()
    c = status.counters
    assert (c.sitemaps, c.sitemap_urls) == (1, 2)
    assert c.reasons == {f"sitemap: over {SITEMAP_MAX_BYTES} bytes": 1}


@pytest.mark.slow
async def test_the_crawls_cap_of_sitemap_urls_holds(web: TestWeb, settings: Settings) -> None:
    """--max-sitemap-urls 3: three of the ten listed pages are taken, the other seven counted
    as capped and never fetched."""
    root = web.url(0, "/")
    listed = [web.url(0, f"/p/{i}") for i in range(10)]
    web.site = Site({root: Page(), **{u: Page() for u in listed},
                     web.url(0, "/sitemap.xml"): xml(urlset(listed))})  # fmt: skip
    status = await crawl(settings, "cap", root, max_sitemap_urls=3)
    assert set(depths(settings, "cap")) == {root, *listed[:3]}
    assert not set(listed[3:]) & set(web.requested())
    c = status.counters
    assert (c.sitemap_urls, c.capped) == (3, 7)
    assert c.reasons == {"sitemap: crawl cap of sitemap URLs reached": 1}


@pytest.mark.slow
async def test_a_malformed_sitemap_is_reported_and_the_crawl_goes_on(
    web: TestWeb, settings: Settings
) -> None:
    """Of two sitemaps one is malformed XML: it is counted with its reason and logged, the
    other's pages are crawled, and the crawl ends done."""
    root = web.url(0, "/")
    web.site = Site({
        root: Page(), web.url(0, "/good"): Page(), web.url(0, "/lost"): Page(),
        web.url(0, "/robots.txt"): robots("Sitemap: /bad.xml", "Sitemap: /good.xml"),
        web.url(0, "/bad.xml"): xml(urlset([web.url(0, "/lost")])[:-5]),
        web.url(0, "/good.xml"): xml(urlset([web.url(0, "/good")])),
        web.url(0, "/sitemap.xml"): Page(content_type="text/html", body=b"<html>soft 404</html>"),
    })  # fmt: skip
    with capture_logs(processors=[merge_contextvars]) as logs:
        status = await crawl(settings, "bad", root)
    assert set(depths(settings, "bad")) == {root, web.url(0, "/good")}
    assert web.url(0, "/lost") not in web.requested()
    c = status.counters
    assert (c.sitemaps, c.sitemaps_skipped) == (1, 2)
    assert c.reasons == {"sitemap: malformed XML": 1, "sitemap: not a sitemap": 1}
    skipped = [e for e in logs if e["event"] == "sitemap skipped"]
    assert {(e["url"], e["reason"]) for e in skipped} == {
        (web.url(0, "/bad.xml"), "malformed XML"),
        (web.url(0, "/sitemap.xml"), "not a sitemap"),
    }


@pytest.mark.slow
async def test_sitemap_urls_out_of_scope_are_ignored(web: TestWeb, settings: Settings) -> None:
    """A sitemap's URLs on other hosts (host scope), matching --deny or not pages are not
    fetched; nor is a sitemap on another host that robots.txt names."""
    root = web.url(0, "/")
    other, nowhere = web.url(1, "/elsewhere"), f"http://{OUT_OF_SCOPE_HOST}:{web.port}/x"
    listed = [web.url(0, "/in"), other, nowhere, web.url(0, "/denied/1"), web.url(0, "/pic.png")]
    elsewhere = web.url(1, "/s.xml")
    web.site = Site({
        root: Page(), **{u: Page() for u in listed},
        web.url(0, "/robots.txt"): robots("Sitemap: /sitemap.xml", f"Sitemap: {elsewhere}"),
        web.url(0, "/sitemap.xml"): xml(urlset(listed)),
        elsewhere: xml(urlset([web.url(1, "/y")])),
    })  # fmt: skip
    status = await crawl(settings, "scope", root, deny=["/denied/"])
    assert set(depths(settings, "scope")) == {root, web.url(0, "/in")}
    assert not {*listed[1:], elsewhere} & set(web.requested())
    assert status.counters.sitemap_urls == 1


@pytest.mark.slow
async def test_robots_disallowed_sitemaps_and_entries_are_never_fetched(
    web: TestWeb, settings: Settings
) -> None:
    """robots.txt rules hold for what sitemaps list: a disallowed page is recorded as excluded
    without a request, and a disallowed sitemap is skipped unread."""
    root = web.url(0, "/")
    private, public = web.url(0, "/private/1"), web.url(0, "/public/1")
    web.site = Site({
        root: Page(), private: Page(), public: Page(), web.url(0, "/private/s.xml"): xml(b""),
        web.url(0, "/robots.txt"): robots("User-agent: *", "Disallow: /private/",
                                          "Sitemap: /private/s.xml"),
        web.url(0, "/sitemap.xml"): xml(urlset([private, public])),
    })  # fmt: skip
    status = await crawl(settings, "robots", root)
    records = {r["url"]: r for r in read_manifest(settings.data_dir, "robots")}
    assert records[private]["skipped"] == "robots.txt: disallowed"
    assert records[public]["status"] == 200
    assert private not in web.requested()
    assert web.url(0, "/private/s.xml") not in web.requested()
    assert status.counters.reasons == {"sitemap: robots.txt: disallowed": 1}
    assert status.counters.excluded == 1


@pytest.mark.slow
async def test_index_nesting_is_bounded(web: TestWeb, settings: Settings) -> None:
    """An index that lists an index is followed (seen in the wild, though the protocol has
    none), one level more is not."""
    root = web.url(0, "/")
    inner, deeper, deepest = (web.url(0, f"/idx{i}.xml") for i in range(3))
    web.site = Site({
        root: Page(), web.url(0, "/deep"): Page(), web.url(0, "/near"): Page(),
        web.url(0, "/sitemap.xml"): xml(sitemap_index([inner])),
        inner: xml(sitemap_index([web.url(0, "/near.xml"), deeper])),
        web.url(0, "/near.xml"): xml(urlset([web.url(0, "/near")])),
        deeper: xml(sitemap_index([deepest])),
        deepest: xml(urlset([web.url(0, "/deep")])),
    })  # fmt: skip
    status = await crawl(settings, "nest", root)
    assert set(depths(settings, "nest")) == {root, web.url(0, "/near")}
    assert deeper in web.requested() and deepest not in web.requested()
    assert status.counters.reasons == {"sitemap: index nested too deep": 1}


@pytest.mark.slow
async def test_without_robots_txt_only_the_sitemap_xml_is_read(
    web: TestWeb, settings: Settings
) -> None:
    """--ignore-robots fetches no robots.txt, so its Sitemap: lines are not read: the seed's
    /sitemap.xml is."""
    root = web.url(0, "/")
    web.site = Site({
        root: Page(), web.url(0, "/a"): Page(), web.url(0, "/b"): Page(),
        web.url(0, "/robots.txt"): robots("Sitemap: /listed.xml"),
        web.url(0, "/listed.xml"): xml(urlset([web.url(0, "/b")])),
        web.url(0, "/sitemap.xml"): xml(urlset([web.url(0, "/a")])),
    })  # fmt: skip
    await crawl(settings, "norobots", root, obey_robots=False)
    assert set(depths(settings, "norobots")) == {root, web.url(0, "/a")}
    assert not {web.url(0, "/robots.txt"), web.url(0, "/listed.xml")} & set(web.requested())


@pytest.mark.slow
async def test_depth_stays_exact_with_sitemaps_across_workers(
    web: TestWeb, settings: Settings
) -> None:
    """Two worker processes on three hosts whose sitemaps list their pages and pages no link
    reaches: the crawl fetches exactly the pages within the depth of a seed or of a sitemap
    URL, each at its shortest depth; each host's malformed sitemap is counted."""
    web.site = make_site(web.port, seed=7, pages_per_host=30)
    listed = add_sitemaps(web.site, web.port, archive=8)
    seeds = [web.url(h, "/p/0.html") for h in range(3)]
    spec = CrawlSpec(crawl_id="fleet", seeds=seeds, depth=1, sitemaps=True)
    status = await crawl_with_processes(settings, spec, workers=2)
    assert status.state is CrawlState.DONE
    expected = shortest_depths(web.site, seeds + listed, 1, only_seed_hosts=True)
    assert depths(settings, "fleet") == expected
    c = status.counters
    assert (c.sitemaps, c.sitemaps_skipped) == (9, 6)
    sitemap_reasons = {k: n for k, n in c.reasons.items() if k.startswith("sitemap")}
    assert sitemap_reasons == {"sitemap: malformed XML": 3}


@pytest.mark.slow
async def test_a_sitemap_is_retried_and_its_redirect_followed(
    web: TestWeb, settings: Settings
) -> None:
    """A 503 sitemap is asked again (as a page is) and then read; a sitemap that redirects
    is read at its target, one redirecting off the crawl's hosts is skipped, its target
    never asked for."""
    root = web.url(0, "/")
    moved, away = web.url(0, "/moved.xml"), web.url(1, "/away.xml")
    web.site = Site({
        root: Page(), web.url(0, "/a"): Page(), web.url(0, "/b"): Page(),
        web.url(0, "/robots.txt"): robots("Sitemap: /old.xml", "Sitemap: /gone.xml"),
        web.url(0, "/sitemap.xml"): Page(first_statuses=[503], content_type="application/xml",
                                         body=urlset([web.url(0, "/a")])),
        web.url(0, "/old.xml"): Page(status=301, redirect_to=moved),
        moved: xml(urlset([web.url(0, "/b")])),
        web.url(0, "/gone.xml"): Page(status=301, redirect_to=away),
        away: xml(urlset([web.url(1, "/c")])),
    })  # fmt: skip
    status = await crawl(settings, "moves", root, retries=1)
    assert set(depths(settings, "moves")) == {root, web.url(0, "/a"), web.url(0, "/b")}
    assert web.requested().count(web.url(0, "/sitemap.xml")) == 2
    assert away not in web.requested()
    c = status.counters
    assert (c.sitemaps, c.sitemaps_skipped) == (2, 1)
    assert c.reasons == {"sitemap: redirect out of scope": 1}


async def test_with_warc_each_sitemap_fetch_is_recorded_and_indexed(
    web: TestWeb, settings: Settings
) -> None:
    """--warc --sitemaps: the gzip sitemap index that robots.txt names and each of its sitemaps
    (a gzip file, one gzip-coded in transit, a plain one) has a response record of its URL,
    with the body as served (gzip still), paired with its request record, and so has the
    guessed /sitemap.xml's 404; the files pass `warcio check`, and index.cdxj lists each
    sitemap at its record. Sitemaps get no page record. Without --warc no WARC is written."""
    root, index = web.url(0, "/"), web.url(0, "/maps/index.xml.gz")
    sitemaps = {web.url(0, f"/maps/{name}"): web.url(0, f"/{name[0]}") for name in
                ("a.xml.gz", "b.xml", "c.xml")}  # fmt: skip
    a, b, c = (urlset([page]) for page in sitemaps.values())
    coded = Page(content_type="application/xml", body=gzip.compress(b, mtime=0),
                 headers={"Content-Encoding": "gzip"})  # fmt: skip
    pages = [gzipped(sitemap_index(list(sitemaps))), gzipped(a), coded, xml(c)]
    web.site = Site({
        root: Page(), **{page: Page() for page in sitemaps.values()},
        web.url(0, "/robots.txt"): robots("User-agent: *", "Sitemap: /maps/index.xml.gz"),
        **dict(zip([index, *sitemaps], pages, strict=True)),
    })  # fmt: skip
    served = {url: page.body for url, page in zip([index, *sitemaps], pages, strict=True)}
    served[web.url(0, "/sitemap.xml")] = b"not found\n"
    status = await crawl(settings, "smwarc", root, warc=True)
    assert (status.counters.sitemaps, status.counters.sitemap_urls) == (4, 3)
    layout = CrawlLayout(settings.data_dir, "smwarc")
    for path in layout.warc_files():
        checked = warcio_check(path)
        assert checked.returncode == 0, checked.stdout + checked.stderr
    records = [r for path in layout.warc_files() for r in read_warc(path)]
    indexed = {
        entry["url"]: entry
        for entry in (json.loads(line.split(" ", 2)[2]) for line in layout.index.read_text()
                      .splitlines())
    }  # fmt: skip
    for url, body in served.items():
        (response,) = [r for r in records if r.kind == "response" and r.url == url]
        assert response.payload == body, url
        assert response.http_status == ("404" if url.endswith("/sitemap.xml") else "200")
        (request,) = [
            r for r in records
            if r.kind == "request" and r.warc_headers["WARC-Concurrent-To"] == response.record_id
        ]  # fmt: skip
        assert (
            request.url == url
            and request.http_line == f"GET {url.split(str(web.port))[1]} HTTP/1.1"
        )
        entry = indexed[url]
        assert (entry["filename"], int(entry["offset"]), int(entry["length"])) == (
            response.file, response.offset, response.length,
        )  # fmt: skip
        assert entry["status"] == response.http_status
        with layout.warc_path(entry["filename"]).open("rb") as stream:
            stream.seek(response.offset)
            member = stream.read(response.length)
        record = next(iter(ArchiveIterator(io.BytesIO(member))))
        assert record.rec_headers.get_header("WARC-Target-URI") == url
    assert indexed[index]["mime"] == "application/x-gzip"
    coded_record = next(r for r in records if r.kind == "response" and r.url.endswith("/b.xml"))
    assert ("Content-Encoding", "gzip") in coded_record.http_headers
    manifest = {r["url"] for r in read_manifest(settings.data_dir, "smwarc")}
    assert manifest == {root, *sitemaps.values()}
    await crawl(settings, "smplain", root)
    plain = CrawlLayout(settings.data_dir, "smplain")
    assert not plain.warc_dir.exists() and not plain.index.exists()
    assert {r["url"] for r in read_manifest(settings.data_dir, "smplain")} == manifest
