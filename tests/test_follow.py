"""Which links a crawl follows: canonical page URLs, each once, within its scope."""

from __future__ import annotations

from crawlfleet.shared.urls import ScopeRule, canonicalize
from crawlfleet.workers.follow import _canonical_key, followable_links

PAGE = "http://example.org/dir/page.html"


def test_followable_links_canonicalizes_dedupes_and_filters() -> None:
    """Links are canonical, unique, pages only, and in scope."""
    hrefs = [
        "http://example.org/a#one",
        "HTTP://EXAMPLE.ORG:80/a#two",
        "http://example.org/img.png",
        "http://elsewhere.org/a",
        "http://example.org/b",
    ]
    rule = ScopeRule("host", [PAGE])
    assert followable_links(hrefs, rule) == ["http://example.org/a", "http://example.org/b"]


def test_verdicts_on_links_are_per_crawl_scope() -> None:
    """The verdict on a link is remembered across pages, but per crawl: the same href is in one
    crawl's scope and out of another's."""
    hrefs = ["http://example.org/a", "http://other.org/b"]
    here = ScopeRule("host", [PAGE])
    there = ScopeRule("host", ["http://other.org/"])
    anywhere = ScopeRule("any", [PAGE], deny=["/b$"])
    for _ in range(2):
        assert followable_links(hrefs, here) == ["http://example.org/a"]
        assert followable_links(hrefs, there) == ["http://other.org/b"]
        assert followable_links(hrefs, anywhere) == ["http://example.org/a"]


def test_canonical_key_keeps_the_fragment_when_dropping_it_could_matter() -> None:
    """The memo key drops the fragment only where canonicalize provably ignores it."""
    assert _canonical_key("http://h/a#x") == "http://h/a"
    assert _canonical_key("http://h/a #x") == "http://h/a #x"  # w3lib strips "a " alone
    assert _canonical_key("http://h/a#caf\u00e9") == "http://h/a#caf\u00e9"
    assert canonicalize("http://h/a #x") != canonicalize("http://h/a ")
