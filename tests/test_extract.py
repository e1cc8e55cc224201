"""The fast (lxml) extractor yields the bs4 extractor's links, on whole sites and hostile pages;
the per-page memos of urljoin and canonicalize change no result; the setting picks the parser."""

from __future__ import annotations

import random
import tracemalloc
import warnings
from collections.abc import Iterator
from functools import cache
from urllib.parse import urljoin

import pytest
from bs4 import BeautifulSoup
from bs4.filter import SoupStrainer

from crawlfleet.shared.crawl import CrawlSpec, CrawlState
from crawlfleet.shared.settings import Extractor, Settings
from crawlfleet.shared.urls import ScopeRule, canonicalize, is_page_link
from crawlfleet.workers import links
from crawlfleet.workers.follow import MAX_URL_LENGTH, followable_links
from crawlfleet.workers.links import extract_hrefs, extractor_for
from tests.support.crawling import crawl_in_process, read_manifest
from tests.support.docsite import DOCS_HOST, DOCS_PACKAGE, DOCS_ROOT
from tests.support.hostile import DEEP_LEVELS, MANY_LINKS
from tests.support.synthetic import SCENARIO_A, SyntheticSite, shortest_depths
from tests.support.testweb import TestWeb, make_site

PAGE = "http://example.org/dir/page.html"
HAS_DOCS = (DOCS_ROOT / "index.html").is_file()
needs_docs = pytest.mark.skipif(
    not HAS_DOCS, reason=f"{DOCS_ROOT} missing: apt-get install {DOCS_PACKAGE}"
)


# --- the pages --------------------------------------------------------------------------------
@cache
def synthetic_pages() -> list[tuple[str, bytes]]:
    """Every page a depth-4 crawl of the benchmark's scenario (a) fetches (2,320), as served."""
    site = SyntheticSite(SCENARIO_A, port=8000)
    urls = sorted(site.ground_truth(4))
    assert len(urls) == 2320  # the bench's figures of scenario (a) are for these pages
    pages = []
    for url in urls:
        host, path = url.removeprefix("http://").split(":8000", 1)
        h, i = site.host_index(host), site.page_index(path)
        assert h is not None and i is not None
        pages.append((url, site.render(h, i)))
    return pages


@cache
def docs_pages() -> list[tuple[str, bytes]]:
    """Every HTML page of the Python docs (about 530), at the URL the benchmark serves it."""
    files = sorted(DOCS_ROOT.rglob("*.html"))
    return [(f"http://{DOCS_HOST}:8000/{f.relative_to(DOCS_ROOT)}", f.read_bytes()) for f in files]


def site_pages(site: str) -> list[tuple[str, bytes]]:
    return synthetic_pages() if site == "synthetic" else docs_pages()


SITES = ["synthetic", pytest.param("docs", marks=needs_docs)]


# --- what the code did before the fast extractor and the memos: the reference -----------------
LINK_TAGS = SoupStrainer(["a", "area", "base"])


def reference_hrefs(html: bytes, page_url: str, encoding: str | None = None) -> list[str]:
    """``extract_hrefs`` as it was: bs4, every href joined with urljoin."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        soup = BeautifulSoup(html, "lxml", parse_only=LINK_TAGS, from_encoding=encoding)
    base = page_url
    hrefs: list[str] = []
    for tag in soup.find_all(["a", "area", "base"]):
        href = tag.get("href")
        if not isinstance(href, str):
            continue
        href = href.strip()
        if tag.name == "base":
            if href and base is page_url:
                base = urljoin(page_url, href)
            continue
        if not href or href.lower().startswith(links._SKIPPED_SCHEMES):
            continue
        try:
            hrefs.append(urljoin(base, href))
        except ValueError:
            continue
    return hrefs


def reference_resolve(tags: list[tuple[str, str | None]], page_url: str) -> list[str]:
    """``_resolve`` with a plain urljoin per link, no memo."""
    base = page_url
    hrefs: list[str] = []
    for name, href in tags:
        if href is None:
            continue
        href = href.strip()
        if name == "base":
            if href and base is page_url:
                base = urljoin(page_url, href)
            continue
        if not href or href.lower().startswith(links._SKIPPED_SCHEMES):
            continue
        try:
            hrefs.append(urljoin(base, href))
        except ValueError:
            continue
    return hrefs


def reference_followable(hrefs: list[str], scope: ScopeRule, limit: int | None = None) -> list[str]:
    """``followable_links`` as it was: every href canonicalized and checked, no memo."""
    seen: set[str] = set()
    out: list[str] = []
    for href in hrefs:
        if len(href) > MAX_URL_LENGTH:
            continue
        url = canonicalize(href)
        if url is None or url in seen or len(url) > MAX_URL_LENGTH:
            continue
        if not is_page_link(url) or not scope.allows(url):
            continue
        seen.add(url)
        out.append(url)
        if limit is not None and len(out) >= limit:
            break
    return out


# --- the two extractors on whole sites --------------------------------------------------------
@pytest.mark.parametrize("site", SITES)
def test_fast_extractor_matches_bs4_on_every_page(site: str) -> None:
    """Every page of the synthetic site and of the docs: the same hrefs, in the same order, from
    the fast extractor as from the bs4 code before it (charset from the header, as served).
    Today's bs4 extractor differs from that code only by the urljoin memo, tested below."""
    for url, html in site_pages(site):
        assert extract_hrefs(html, url, "utf-8", "fast") == reference_hrefs(html, url, "utf-8"), url


@pytest.mark.parametrize("site", SITES)
def test_memoized_join_matches_urljoin_on_every_page(site: str) -> None:
    """The per-page urljoin memo (by href without fragment) gives urljoin's results."""
    for url, html in site_pages(site):
        tags = list(links._fast_link_tags(html, "utf-8", links._UNBOUNDED))
        assert links._resolve(tags, url) == reference_resolve(tags, url), url


@pytest.mark.parametrize("site", SITES)
def test_followable_links_match_the_unmemoized_rules_on_every_page(site: str) -> None:
    """The per-page canonicalize memo (by href without fragment) changes no followed link,
    with a limit or without."""
    pages = site_pages(site)
    rule = ScopeRule("domain", [pages[0][0]])
    for url, html in pages:
        hrefs = extract_hrefs(html, url, "utf-8", "fast")
        assert followable_links(hrefs, rule) == reference_followable(hrefs, rule), url
        assert followable_links(hrefs, rule, 7) == reference_followable(hrefs, rule, 7), url


# --- the memos on the hrefs that could break them ---------------------------------------------
TRICKY_HREFS = [
    "a.html#x", "a.html #x", "a.html\t#x", "a.html#x\ty", "a.html#x\ny", "a.html#", "a.html# ",
    "a#b#c", "a?x=1#y?z", "a?#x", "a;p=1#x", "../a#x", "./#x", "/#x", "//other.org#x",
    "//other.org/a#x", "http://h#x", "http://a#b@evil.org/", "https://other.org/a#b",
    "http://example.org:80/a#x", "HTTP://EXAMPLE.ORG/A#x", "http://[::1#x", "http://[::1]/a#x",
    "a:b#c", "x#caf\u00e9", "caf\u00e9#x", "\x01#x", "a\x01#x", "a\x7f#x", "%2e%2e/a#x",
    "a b#c d", "a.png#x", "a.html#x\x00", "#only", "?q=1&a=2#f", "?a=2&q=1#g", "a.html?#",
    "http://example.org/a\ud800#x", "x#\ud800", " a.html#x", "a.html #",
]  # fmt: skip
BASES = [PAGE, "http://example.org/dir/page.html?q=1#top", "https://example.org/", "http://h"]


@pytest.mark.parametrize("base", BASES)
def test_memoized_join_matches_urljoin_on_tricky_hrefs(base: str) -> None:
    """Spaces, controls, empty and repeated fragments, netlocs and schemes: urljoin's results."""
    tags: list[tuple[str, str | None]] = [("a", h) for h in TRICKY_HREFS + TRICKY_HREFS[::-1]]
    assert links._resolve(tags, base) == reference_resolve(tags, base)


RELATIVE_HREFS = [
    "x.html", "x.html?q=1", "x.html;p?q", "./x.html", "../x.html", "../../../../x.html", "d/",
    "d/../e/./f.html", "x y.html", "x%2F.html", "x\\y.html", "caf\u00e9.html", "x.html ",
    ".", "..", "x:y.html", "x.html?r=/s", "a;b/c", "\x7fx.html", "x/\x00.html",
]  # fmt: skip
FOLDER_BASES = [
    "http://example.org/dir/page.html", "http://example.org/dir/page.html?q=/a/b",
    "http://example.org/dir/", "http://example.org/dir", "http://example.org/d;p/page;q?x",
    "http://example.org/a/../b//c/page.html", "https://user@example.org:8443/dir/sub/p",
    "http://[::1]:8000/dir/p.html", "http://example.org/", "ftp://example.org/dir/p",
]  # fmt: skip


def test_join_memo_across_folders_matches_urljoin() -> None:
    """Relative hrefs joined once per folder, whatever page they are on: urljoin's results on
    pages of many folders, queries and params, one after another (the memo is the process's)."""
    tags: list[tuple[str, str | None]] = [("a", h) for h in RELATIVE_HREFS + TRICKY_HREFS]
    for _ in range(2):
        for base in FOLDER_BASES + BASES:
            assert links._resolve(tags, base) == reference_resolve(tags, base), base


@pytest.mark.parametrize("base", BASES)
def test_followable_links_match_on_tricky_hrefs(base: str) -> None:
    """The same hrefs, joined to absolute URLs (and as they are): the same followed links."""
    joined = []
    for href in TRICKY_HREFS:
        try:
            joined.append(urljoin(base, href))
        except ValueError:
            continue
    for hrefs in (joined, joined[::-1], TRICKY_HREFS, [u + "#frag" for u in joined]):
        for rule in (ScopeRule("any", [base]), ScopeRule("host", [base])):
            assert followable_links(hrefs, rule) == reference_followable(hrefs, rule)


# --- hostile and oddly encoded pages ----------------------------------------------------------
def _random_bytes(seed: int, n: int) -> bytes:
    return random.Random(seed).randbytes(n)


CAFE = '<a href="/caf\u00e9">c</a>'
ZHE = '<a href="/\u0436">x</a>'
DEEP = b"<html><body>" + b"<div>" * DEEP_LEVELS + b'<a href="/deep-link">x</a></body></html>'
MANY = "".join(f'<a href="/m/{i}">{i}</a>' for i in range(MANY_LINKS)).encode()
TRICKY = (
    f'<a href="/{"a" * 10_000}">long</a><a href="/x/%2e%2e/dots">dots</a>'
    '<a href="/nul\x00byte">nul</a><a href="http://b\u00fccher.example/">idna</a>'
    '<a href="HTTP://127.0.0.5:1/calendar/0#frag">case</a>'
).encode()
HOSTILE: dict[str, tuple[bytes, str | None]] = {
    # declared charset, right and wrong
    "latin-1 page declared utf-8": (CAFE.encode("latin-1"), "utf-8"),
    "utf-8 page declared latin-1": (CAFE.encode("utf-8"), "latin-1"),
    "utf-8 page declared iso-8859-1": (CAFE.encode("utf-8"), "iso-8859-1"),
    "unknown charset name": (CAFE.encode("utf-8"), "no-such-charset"),
    "utf-16 without BOM, declared": (CAFE.encode("utf-16-le"), "utf-16"),
    # no charset: BOM, <meta>, XML declaration, detection
    "no charset, utf-8": (CAFE.encode("utf-8"), None),
    "no charset, latin-1": (f"<p>d\u00e9j\u00e0 vu</p>{CAFE}".encode("latin-1"), None),
    "meta windows-1251": (f'<meta charset="windows-1251">{ZHE}'.encode("cp1251"), None),
    "meta says utf-8, bytes are latin-1": (f'<meta charset="utf-8">{CAFE}'.encode("latin-1"), None),
    "meta http-equiv": (
        f'<meta http-equiv="Content-Type" content="text/html; charset=koi8-r">{ZHE}'.encode(
            "koi8-r"
        ),
        None,
    ),
    "xml declaration": (
        b'<?xml version="1.0" encoding="iso-8859-1"?><html><a href="/\xe9">x</a></html>',
        None,
    ),
    "utf-8 BOM": (b"\xef\xbb\xbf" + CAFE.encode("utf-8"), None),
    "utf-8 BOM, declared latin-1": (b"\xef\xbb\xbf" + CAFE.encode("utf-8"), "latin-1"),
    "utf-16le BOM": (("\ufeff" + CAFE).encode("utf-16-le"), None),
    "utf-16be BOM, declared utf-8": (("\ufeff" + CAFE).encode("utf-16-be"), "utf-8"),
    "invalid utf-8 bytes": (b'<a href="/a\xff\xfeb">x</a><a href="/c">c</a>', "utf-8"),
    # binary served as text/html, empty and near-empty pages
    "binary": (_random_bytes(1, 100_000), None),
    "binary, declared utf-8": (_random_bytes(3, 100_000), "utf-8"),
    "binary then a link": (_random_bytes(2, 5_000) + b'<a href="/z">z</a>', None),
    "empty": (b"", None),
    "whitespace": (b"  \n", "utf-8"),
    "a comment": (b"<!-- <a href='/no'> -->", None),
    # broken markup and the link rules
    "broken": (b"<div><a href='a'>a<p><table><a href=b>b</div></td>\x00<a href=c", None),
    "nested links": (b'<a href="1"><a href="2"><area href="3"></a></a><svg><a href="4"/>', None),
    "two bases": (b'<base href="http://c.org/x/"><base href="http://d/"><a href="y">y</a>', None),
    "base after a link": (b'<a href="y">y</a><base href="http://c.org/x/"><a href="y#f">', None),
    "blank base first": (b'<base href=" "><base href="http://c.org/x/"><a href="y">y</a>', None),
    "upper case, spaces, schemes": (
        b'<A HREF=" UP#f ">x</A><AREA Href=" MAILTO:x "><a href=" ">',
        None,
    ),
    "duplicate attribute": (b'<a href="1" href="2">x</a>', None),
    "entities": (b'<a href="?a=1&amp;b=2&copy=3&#x26;d">x</a><a href="&#0;x">y</a>', None),
    "script, template, textarea": (
        b'<template><a href="t">x</a></template><textarea><a href="ta"></textarea>'
        b'<script>"<a href=s>"</script>',
        None,
    ),
    "bad IPv6 link": (b'<a href="http://[::1/x">x</a><a href="ok">ok</a>', None),
    # the pages of tests/support/hostile.py
    "100,000 nested divs": (DEEP, "utf-8"),
    "links nested 3,000 deep": (b"<a href='/x'><div>" * 3000 + b'<a href="/bottom">x</a>', None),
    "100,000 links": (MANY, "utf-8"),
    "tricky": (TRICKY, "utf-8"),
}


@pytest.mark.parametrize("case", HOSTILE)
def test_fast_extractor_matches_bs4_on_hostile_pages(case: str) -> None:
    """Wrong, missing and unknown charsets, BOMs, binary bodies, broken markup, 100,000 levels
    of nesting and 100,000 links: the same hrefs from both extractors and the old code."""
    html, charset = HOSTILE[case]
    reference = reference_hrefs(html, PAGE, charset)
    assert extract_hrefs(html, PAGE, charset, "fast") == reference
    assert extract_hrefs(html, PAGE, charset, "bs4") == reference


@pytest.mark.parametrize("extractor", ["bs4", "fast"])
def test_kept_parsers_carry_nothing_from_one_page_to_the_next(extractor: Extractor) -> None:
    """Both extractors keep one lxml parser per encoding for the process: every hostile page
    (but the huge ones) parsed right after every other gives the links it gives alone."""
    small = {case: page for case, page in HOSTILE.items() if len(page[0]) < 50_000}
    alone = {case: reference_hrefs(html, PAGE, charset) for case, (html, charset) in small.items()}
    for before_html, before_charset in small.values():
        for case, (html, charset) in small.items():
            extract_hrefs(before_html, PAGE, before_charset, extractor)
            assert extract_hrefs(html, PAGE, charset, extractor) == alone[case], case


def test_kept_parsers_hold_no_page_after_parsing() -> None:
    """The kept parsers let go of the page's soup (bs4) or links (fast) when the parse ends: a
    page of 100,000 links would otherwise stay in memory until the next page in its encoding."""
    html, charset = HOSTILE["tricky"]
    assert extract_hrefs(html, PAGE, charset, "bs4") == extract_hrefs(html, PAGE, charset, "fast")
    assert links._KEPT.bs4 and links._KEPT.fast
    assert all(target.builder is None for _, target in links._KEPT.bs4.values())
    assert all(not target.tags for _, target in links._KEPT.fast.values())


def test_hostile_cases_are_not_vacuous() -> None:
    """The encoding cases do decode differently (so the equality above means something), and
    the deep and large pages do yield their links."""
    got = {
        case: extract_hrefs(html, PAGE, charset, "fast")
        for case, (html, charset) in HOSTILE.items()
    }
    assert got["no charset, utf-8"] == ["http://example.org/caf\u00e9"]
    assert got["no charset, latin-1"] == ["http://example.org/caf\u00e9"]
    assert got["latin-1 page declared utf-8"] == ["http://example.org/caf\ufffd"]
    assert got["meta windows-1251"] == ["http://example.org/\u0436"]
    assert got["utf-16le BOM"] == ["http://example.org/caf\u00e9"]
    assert got["100,000 nested divs"] == ["http://example.org/deep-link"]
    assert len(got["links nested 3,000 deep"]) == 3001
    assert len(got["100,000 links"]) == MANY_LINKS
    assert got["binary"] == [] and got["empty"] == []


@pytest.mark.parametrize("case", ["100,000 nested divs", "100,000 links"])
def test_fast_extractor_memory_is_bounded(case: str) -> None:
    """No tree is built: Python memory peaks at the links themselves (under 400 bytes per link
    of the 100,000-link page; bs4 peaks near 120 MB there), nothing per nesting level."""
    html, charset = HOSTILE[case]
    tracemalloc.start()
    try:
        extract_hrefs(html, PAGE, charset, "fast")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 400 * MANY_LINKS, f"peak {peak} bytes"


# --- the setting picks the parser -------------------------------------------------------------
@pytest.fixture
def parsers(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Records which parser ran, by name, each still doing its work."""
    calls: list[str] = []
    fast, bs4 = links._fast_link_tags, links._bs4_link_tags

    def spy_fast(html: bytes, encoding: str | None, budget: int) -> links.LinkTags:
        calls.append("fast")
        return fast(html, encoding, budget)

    def spy_bs4(html: bytes, encoding: str | None, budget: int) -> links.LinkTags:
        calls.append("bs4")
        return bs4(html, encoding, budget)

    monkeypatch.setattr(links, "_fast_link_tags", spy_fast)
    monkeypatch.setattr(links, "_bs4_link_tags", spy_bs4)
    yield calls


def test_extractor_argument_picks_the_parser(parsers: list[str]) -> None:
    """``extractor="fast"`` runs lxml alone, the default runs bs4; so does ``extractor_for``."""
    html = b'<a href="x">x</a>'
    extract_hrefs(html, PAGE)
    extract_hrefs(html, PAGE, None, "fast")
    extractor_for("fast")(html, PAGE, None)
    extractor_for("bs4")(html, PAGE, "utf-8")
    assert parsers == ["bs4", "fast", "fast", "bs4"]


def test_extractor_setting_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """CRAWLFLEET_EXTRACTOR sets it, bs4 by default, anything else is refused; it is handed to
    worker processes."""
    assert Settings().extractor == "bs4"
    monkeypatch.setenv("CRAWLFLEET_EXTRACTOR", "fast")
    assert Settings().extractor == "fast"
    assert Settings().to_env()["CRAWLFLEET_EXTRACTOR"] == "fast"
    monkeypatch.setenv("CRAWLFLEET_EXTRACTOR", "slow")
    with pytest.raises(ValueError, match="extractor"):
        Settings()


async def test_worker_uses_the_fast_extractor_when_set(
    web: TestWeb, settings: Settings, parsers: list[str]
) -> None:
    """A crawl with ``extractor="fast"`` parses every page with lxml alone (bs4 never runs)
    and fetches exactly the pages bs4 would have led it to."""
    web.site = make_site(web.port, pages_per_host=12, links_per_page=5)
    seed = web.url(0, "/p/0.html")  # 8 pages on its host within 3 links
    spec = CrawlSpec(crawl_id="fast", seeds=[seed], depth=3, scope="host", obey_robots=False,
                     allow_private=True)  # fmt: skip
    fast = settings.model_copy(update={"extractor": "fast"})
    status = await crawl_in_process(fast, spec)
    assert status.state is CrawlState.DONE
    urls = {r["url"] for r in read_manifest(settings.data_dir, "fast")}
    assert urls == set(shortest_depths(web.site, [seed], 3, only_seed_hosts=True))
    assert len(urls) == 8
    assert parsers and set(parsers) == {"fast"}


def test_bs4_parser_is_handed_no_end_tags() -> None:
    """lxml calls a parser target's ``end`` for every element of a page: the bs4 extractor's
    target has none (each link tag is handed to the soup whole where it starts), and its soup
    holds the link tags as empty tags, in document order."""
    assert not hasattr(links._ToCurrentBuilder, "end")
    html = b'<p><a href="1">one <b>bold</b></a> text <map><area href="2"></map><a href="3"></a>'
    assert links.extract_hrefs(html, "http://example.org/", None, "bs4") == [
        "http://example.org/1", "http://example.org/2", "http://example.org/3",
    ]  # fmt: skip


@pytest.mark.parametrize("extractor", ["bs4", "fast"])
def test_link_tags_without_href_count_against_the_budget(extractor: Extractor) -> None:
    """Anchors without an href link nowhere (bs4's soup is not given them) but are link tags
    all the same: two of them spend a budget of two, on either extractor."""
    html = b'<a name="top"></a><a id="x">x</a><a href="/z">z</a>'
    page = "http://example.org/p/"
    assert links.extract_hrefs(html, page, None, extractor, 3) == ["http://example.org/z"]
    assert links.extract_hrefs(html, page, None, extractor, 2) == []
