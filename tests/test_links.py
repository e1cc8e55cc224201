"""Link extraction: hrefs resolved against the page and its <base>, in document order."""

from __future__ import annotations

import random
from urllib.parse import urljoin

from crawlfleet.shared.mime import charset_of
from crawlfleet.shared.urls import ScopeRule
from crawlfleet.workers.follow import followable_links
from crawlfleet.workers.links import _SKIPPED_SCHEMES, _resolve, extract_hrefs

PAGE = "http://example.org/dir/page.html"


def test_extracts_relative_absolute_and_area_links() -> None:
    """<a> and <area> hrefs are resolved against the page URL, in document order."""
    html = b"""<html><body>
      <a href="other.html">x</a> <a href="/root">y</a> <a href="http://b.org/z">z</a>
      <map><area href="../up.html"></map> <a>no href</a> <a href="  spaced.html ">s</a>
    </body></html>"""
    assert extract_hrefs(html, PAGE) == [
        "http://example.org/dir/other.html",
        "http://example.org/root",
        "http://b.org/z",
        "http://example.org/up.html",
        "http://example.org/dir/spaced.html",
    ]


def test_base_href_changes_resolution() -> None:
    """A <base href> makes relative links relative to it."""
    html = b'<html><head><base href="http://cdn.example.org/x/"></head><a href="y">y</a></html>'
    assert extract_hrefs(html, PAGE) == ["http://cdn.example.org/x/y"]


def test_skips_non_http_schemes_and_bare_fragments() -> None:
    """mailto:, javascript:, data:, tel: and #fragment links are not links to pages."""
    html = b"""<a href="mailto:a@b">m</a><a href="JavaScript:go()">j</a>
    <a href="data:text/html,x">d</a><a href="tel:123">t</a><a href="#top">f</a>"""
    assert extract_hrefs(html, PAGE) == []


def test_broken_html_still_yields_links() -> None:
    """Unclosed tags and junk do not stop extraction."""
    html = b"<html><body><div><a href='a.html'>a<p><table><a href=b.html>b</div></td>\x00<a href=c"
    hrefs = extract_hrefs(html, PAGE)
    assert "http://example.org/dir/a.html" in hrefs
    assert "http://example.org/dir/b.html" in hrefs


def test_declared_encoding_is_used() -> None:
    """The Content-Type charset decodes non-ASCII hrefs correctly."""
    html = '<a href="/caf\u00e9">c</a>'.encode("latin-1")
    hrefs = extract_hrefs(html, PAGE, encoding="latin-1")
    assert followable_links(hrefs, ScopeRule("any", [PAGE])) == ["http://example.org/caf%C3%A9"]


def test_charset_of() -> None:
    """The charset parameter is read from a Content-Type header."""
    assert charset_of("text/html; charset=ISO-8859-1") == "ISO-8859-1"
    assert charset_of('text/html; charset="utf-8"') == "utf-8"
    assert charset_of("text/html") is None
    assert charset_of(None) is None


def _urljoin_or_none(base: str, href: str) -> str | None:
    try:
        return urljoin(base, href)
    except ValueError:
        return None


# the pieces hrefs and bases are made of, the characters urlsplit treats specially among them
_BASES = [
    "http://example.org/dir/page.html?q=1#f",
    "https://example.org:8443/a/b/",
    "http://user@host.example/x;p?y",
    "http://[::1]:8080/deep/er/",
    "http://[bad/x",
    "https://example.org",
]
_PIECES = ["/", "//", "http:", "https:", "HTTP:", "ftp:", "?", "#", ";", "..", ".", "a", "b.html",
           "host.example", "[::1]", "[bad", "\t", "\n", " ", "\x01", ":80", "@", "%2F"]  # fmt: skip


def test_links_resolve_as_urljoin_does() -> None:
    """Whatever the href and page URL, a link resolves as ``urljoin`` resolves it, though hrefs
    that name their own path are joined once per origin and remembered across pages."""
    rng = random.Random(7)
    hrefs = [
        "".join(rng.choice(_PIECES) for _ in range(rng.randint(1, 6))).strip() for _ in range(4000)
    ]
    hrefs += ["/x", "//h/x", "http://h", "http://", "http://?q", "http:///x", "https://#f", "/\t/x"]
    for base in _BASES:
        for href in hrefs:
            if not href or href.lower().startswith(_SKIPPED_SCHEMES):
                continue  # not links (see test_skips_non_http_schemes_and_bare_fragments)
            joined = _resolve([("a", href)], base)
            expected = _urljoin_or_none(base, href)
            assert joined == ([] if expected is None else [expected]), (base, href)
