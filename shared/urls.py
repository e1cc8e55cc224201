"""URL canonicalization, fingerprints and the rules for which links a crawl follows."""

from __future__ import annotations

import hashlib
import ipaddress
import re
from functools import lru_cache
from typing import TYPE_CHECKING, Literal
from urllib.parse import urlsplit, urlunsplit

from w3lib.url import canonicalize_url

from crawlfleet.shared.errors import InvalidURL

if TYPE_CHECKING:
    import tldextract

Scope = Literal["host", "domain", "any"]

_DEFAULT_PORTS = {"http": 80, "https": 443}

# Links to these are not pages: the crawler does not fetch them (scrapy's list, trimmed).
NON_PAGE_EXTENSIONS = frozenset(
    """
    7z 7zip apk bz2 cdr dmg ico iso jar rar tar tgz gz xz zst zip bin exe msi deb rpm
    mng pct bmp gif jpg jpeg png pst psp tif tiff ai drw dxf eps ps svg cdr webp avif heic
    mp3 wma ogg oga opus wav ra aac mid au aiff flac m4a
    3gp asf asx avi mov mp4 mpg mpeg qt rm swf wmv m4v webm flv mkv
    css js mjs map woff woff2 ttf otf eot
    """.split()
)


@lru_cache(maxsize=1)
def _public_suffixes() -> tldextract.TLDExtract:
    """One extractor for the process, built from the public suffix list shipped in the wheel
    (an empty URL list means it never downloads a fresher copy); imported when a crawl first
    asks, since only the domain scope does and the import costs a tenth of a second."""
    import tldextract

    return tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)


# Pages of a site link to the same URLs over and over (navigation, neighbours), and w3lib's
# canonicalize_url is the costliest step per link: remembered for the last 16,384 URLs (a few MB)
@lru_cache(maxsize=16384)
def canonicalize(url: str) -> str | None:
    """Return the canonical form of an absolute URL, or None if it is not an http(s) URL.

    Drops the fragment, lower-cases scheme and host (IDNA-encoding unicode hosts), removes the
    default port, normalizes percent-encoding and dot segments, and sorts the query.
    """
    try:
        canon = canonicalize_url(url, keep_fragments=False)
        parts = urlsplit(canon)
        if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
            return None
        port = parts.port
    except ValueError:
        return None
    netloc = parts.hostname
    if ":" in netloc:  # an IPv6 literal keeps its brackets
        netloc = f"[{netloc}]"
    if port is not None and port != _DEFAULT_PORTS[parts.scheme]:
        netloc = f"{netloc}:{port}"
    return urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, ""))


def canonical_seed(url: str) -> str:
    """Canonicalize a URL given by the user, or raise :class:`InvalidURL` saying why."""
    canon = canonicalize(url.strip())
    if canon is None:
        raise InvalidURL(f"not an absolute http(s) URL: {url!r}")
    return canon


@lru_cache(maxsize=16384)  # for the same reason as canonicalize: links repeat across pages
def fingerprint(canonical_url: str) -> str:
    """A short stable name for a canonical URL: 16 hex digits of its SHA-1."""
    return hashlib.sha1(canonical_url.encode(), usedforsecurity=False).hexdigest()[:16]


def is_page_link(canonical_url: str) -> bool:
    """False for links whose extension marks a non-page (images, media, archives, fonts, ...)."""
    path = urlsplit(canonical_url).path
    dot = path.rfind(".")
    if dot == -1 or "/" in path[dot:]:
        return True
    return path[dot + 1 :].lower() not in NON_PAGE_EXTENSIONS


@lru_cache(maxsize=65536)
def registered_domain(host: str) -> str:
    """The domain a host belongs to by the public suffix list (an IP address is its own)."""
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        pass
    else:
        return host
    parts = _public_suffixes()(host)
    return parts.top_domain_under_public_suffix or host


def origin_of(canonical_url: str) -> str:
    """``scheme://netloc`` of a canonical URL: robots.txt applies per origin (the frontier's
    Lua derives the same string)."""
    scheme, _, rest = canonical_url.partition("://")
    return f"{scheme}://{rest.split('/', 1)[0]}"


def host_of(canonical_url: str) -> str:
    """The host of a canonical URL (without port)."""
    return urlsplit(canonical_url).hostname or ""


class ScopeRule:
    """Decides whether a link belongs to a crawl, from the crawl's seeds and scope."""

    def __init__(
        self,
        scope: Scope,
        seeds: list[str],
        allow: list[str] | None = None,
        deny: list[str] | None = None,
    ) -> None:
        self.scope = scope
        hosts = {host_of(s) for s in seeds}
        self._allowed = {registered_domain(h) for h in hosts} if scope == "domain" else hosts
        self._allow = [re.compile(p) for p in allow or []]
        self._deny = [re.compile(p) for p in deny or []]

    def allows(self, canonical_url: str) -> bool:
        """True if the crawl may follow a link to this URL: in scope, matching an ``allow``
        pattern (when there are any) and no ``deny`` pattern."""
        if self._allow and not any(p.search(canonical_url) for p in self._allow):
            return False
        if any(p.search(canonical_url) for p in self._deny):
            return False
        return self.covers(canonical_url)

    def covers(self, canonical_url: str) -> bool:
        """True if the URL's host is within the crawl's scope (its patterns aside: they choose
        pages, and a sitemap is none)."""
        if self.scope == "any":
            return True
        host = host_of(canonical_url)
        if self.scope == "host":
            return host in self._allowed
        return registered_domain(host) in self._allowed
