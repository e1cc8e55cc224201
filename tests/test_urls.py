"""URL canonicalization, fingerprints, page-link and scope rules."""

from __future__ import annotations

import pytest

from crawlfleet.shared.errors import InvalidURL
from crawlfleet.shared.urls import (
    ScopeRule,
    canonical_seed,
    canonicalize,
    fingerprint,
    is_page_link,
    registered_domain,
)


@pytest.mark.parametrize(
    ("raw", "canonical"),
    [
        ("http://example.org/a#frag", "http://example.org/a"),
        ("HTTP://ExAmple.ORG/Path", "http://example.org/Path"),
        ("http://example.org:80/a", "http://example.org/a"),
        ("https://example.org:443/a", "https://example.org/a"),
        ("http://example.org:8080/a", "http://example.org:8080/a"),
        ("http://example.org", "http://example.org/"),
        ("http://example.org/%7euser/p%61th", "http://example.org/~user/path"),
        ("http://example.org/a b", "http://example.org/a%20b"),
        ("http://example.org/a/../b/./c", "http://example.org/b/c"),
        ("http://example.org/?b=2&a=1", "http://example.org/?a=1&b=2"),
        ("http://bücher.de/ü", "http://xn--bcher-kva.de/%C3%BC"),
        ("http://[::1]:8080/x", "http://[::1]:8080/x"),
    ],
)
def test_canonicalize(raw: str, canonical: str) -> None:
    """Fragments, case, default ports, percent-encoding, dot segments, IDNA are normalized."""
    assert canonicalize(raw) == canonical


@pytest.mark.parametrize(
    "raw", ["mailto:a@b.org", "javascript:void(0)", "data:text/html,x", "ftp://h/x", "/relative"]
)
def test_canonicalize_rejects_non_http(raw: str) -> None:
    """Only absolute http(s) URLs have a canonical form."""
    assert canonicalize(raw) is None


def test_canonical_seed_error_names_the_url() -> None:
    """A bad seed raises InvalidURL with the URL in the message."""
    with pytest.raises(InvalidURL, match="not-a-url"):
        canonical_seed("not-a-url")


def test_fingerprint_is_stable_and_short() -> None:
    """Fingerprints are 16 hex digits and equal for equal URLs only."""
    a = fingerprint("http://example.org/a")
    assert a == fingerprint("http://example.org/a")
    assert a != fingerprint("http://example.org/b")
    assert len(a) == 16
    int(a, 16)


@pytest.mark.parametrize(
    ("url", "page"),
    [
        ("http://h/a.html", True),
        ("http://h/a", True),
        ("http://h/dir.v2/page", True),
        ("http://h/a.PNG", False),
        ("http://h/a.css?v=1", False),
        ("http://h/a.zip", False),
        ("http://h/font.woff2", False),
        ("http://h/movie.mp4", False),
        ("http://h/app.js", False),
        ("http://h/doc.pdf", True),
    ],
)
def test_is_page_link(url: str, page: bool) -> None:
    """Images, media, archives, fonts, css and js are not pages."""
    assert is_page_link(url) is page


def test_scope_host() -> None:
    """Host scope allows exactly the seeds' hosts, on any port or scheme."""
    rule = ScopeRule("host", ["http://a.example.org/"])
    assert rule.allows("https://a.example.org/x")
    assert rule.allows("http://a.example.org:8080/x")
    assert not rule.allows("http://b.example.org/x")


def test_scope_domain_uses_public_suffix_list() -> None:
    """Domain scope allows subdomains of the registered domain, not its public suffix."""
    rule = ScopeRule("domain", ["http://www.example.co.uk/"])
    assert rule.allows("http://shop.example.co.uk/")
    assert not rule.allows("http://other.co.uk/")
    assert registered_domain("a.b.example.com") == "example.com"
    assert registered_domain("127.0.0.2") == "127.0.0.2"


def test_scope_any() -> None:
    """Any scope allows everything."""
    assert ScopeRule("any", ["http://a.org/"]).allows("http://b.net/")
