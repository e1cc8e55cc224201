"""Which of a page's links a crawl follows: their canonical page URLs, each once, within the
crawl's scope and the limits on a URL's length and a page's links."""

from __future__ import annotations

from functools import lru_cache

from crawlfleet.shared.urls import ScopeRule, canonicalize, is_page_link

# longer URLs are almost always traps or junk, and most servers refuse them anyway
MAX_URL_LENGTH = 2048


def followable_links(hrefs: list[str], scope: ScopeRule, limit: int | None = None) -> list[str]:
    """Canonical, in-scope page URLs among ``hrefs``, each once, in first-seen order; at most
    ``limit`` of them, none longer than ``MAX_URL_LENGTH``."""
    return in_scope(page_links(hrefs), scope, limit)


def page_links(hrefs: list[str]) -> list[str]:
    """The canonical page URLs among ``hrefs``, each once, in first-seen order, none longer
    than ``MAX_URL_LENGTH``: a page's links before any crawl's scope (what its record keeps)."""
    seen: set[str] = set()
    links: list[str] = []
    for href in hrefs:
        if len(href) > MAX_URL_LENGTH:
            continue
        url = _page_url(_canonical_key(href))
        if url is None or url in seen:
            continue
        seen.add(url)
        links.append(url)
    return links


def in_scope(links: list[str], scope: ScopeRule, limit: int | None = None) -> list[str]:
    """The ``links`` (canonical page URLs, each once) the crawl follows: those in its scope, at
    most ``limit`` of them, in order."""
    followed: list[str] = []
    for url in links:
        if _allows(url, scope):
            followed.append(url)
            if limit is not None and len(followed) >= limit:
                break
    return followed


# The canonical page URL of an href (None if it is none), by _canonical_key, and the scope's
# verdict on it: hrefs that differ only in their fragment, and the same link on many pages,
# are checked once
@lru_cache(maxsize=16384)
def _page_url(key: str) -> str | None:
    url = canonicalize(key)
    if url is None or len(url) > MAX_URL_LENGTH or not is_page_link(url):
        return None
    return url


@lru_cache(maxsize=16384)
def _allows(url: str, scope: ScopeRule) -> bool:
    return scope.allows(url)


def _canonical_key(href: str) -> str:
    """A string whose canonical URL is that of ``href``: ``href`` without its fragment when
    that provably changes nothing, else ``href``.

    ``canonicalize`` drops the fragment; before that, w3lib strips control characters and
    spaces from both ends of the URL (so the part before the fragment must not end with one,
    or it would be stripped only once the fragment is gone) and encodes the fragment (which
    cannot fail for an ASCII one).
    """
    pre, sep, frag = href.partition("#")
    if sep and pre and pre[-1] > " " and frag.isascii():
        return pre
    return href
