"""Link extraction from HTML with beautifulsoup4 (lxml parser), and the crawl's link rules."""

from __future__ import annotations

import warnings
from urllib.parse import urljoin

from bs4 import BeautifulSoup
from bs4.element import Tag
from bs4.filter import SoupStrainer

from shared.urls import ScopeRule, canonicalize, is_page_link

# parse only the tags that carry links (and <base>, which changes what they are relative to)
_LINK_TAGS = SoupStrainer(["a", "area", "base"])
_SKIPPED_SCHEMES = ("mailto:", "javascript:", "data:", "tel:", "ftp:", "#")


def extract_hrefs(html: bytes, page_url: str, encoding: str | None = None) -> list[str]:
    """The absolute targets of the ``<a>`` and ``<area>`` links of a page, in document order.

    Relative links are resolved against ``<base href>`` when the page has one, else against
    ``page_url`` (the URL after redirects).
    """
    with warnings.catch_warnings():
        # bs4 warns about XML-looking or odd documents; a crawler takes pages as they come
        warnings.simplefilter("ignore")
        soup = BeautifulSoup(html, "lxml", parse_only=_LINK_TAGS, from_encoding=encoding)
    base = page_url
    hrefs: list[str] = []
    for tag in soup.find_all(["a", "area", "base"]):
        if not isinstance(tag, Tag):
            continue
        href = tag.get("href")
        if not isinstance(href, str):
            continue
        href = href.strip()
        if tag.name == "base":
            if href and base is page_url:
                base = urljoin(page_url, href)
            continue
        if not href or href.lower().startswith(_SKIPPED_SCHEMES):
            continue
        try:
            hrefs.append(urljoin(base, href))
        except ValueError:
            continue  # e.g. an invalid IPv6 literal: skip the link, keep the page
    return hrefs


# longer URLs are almost always traps or junk, and most servers refuse them anyway
MAX_URL_LENGTH = 2048


def followable_links(hrefs: list[str], scope: ScopeRule, limit: int | None = None) -> list[str]:
    """Canonical, in-scope page URLs among ``hrefs``, each once, in first-seen order; at most
    ``limit`` of them, none longer than ``MAX_URL_LENGTH``."""
    seen: set[str] = set()
    links: list[str] = []
    for href in hrefs:
        if len(href) > MAX_URL_LENGTH:
            continue
        url = canonicalize(href)
        if url is None or url in seen or len(url) > MAX_URL_LENGTH:
            continue
        if not is_page_link(url) or not scope.allows(url):
            continue
        seen.add(url)
        links.append(url)
        if limit is not None and len(links) >= limit:
            break
    return links


def charset_of(content_type: str | None) -> str | None:
    """The charset parameter of a Content-Type header, if any."""
    if not content_type:
        return None
    for param in content_type.split(";")[1:]:
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset" and value.strip():
            return value.strip().strip("'\"")
    return None
