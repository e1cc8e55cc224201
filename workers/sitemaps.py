"""Reading one sitemap (sitemaps.org): an XML ``urlset`` or ``sitemapindex``, or a text file of
one URL per line, gzip-compressed or not, into the pages and sitemaps it gives a crawl.

A sitemap is read as a stream, never built as a tree: the body is inflated a chunk at a time
into lxml's pull parser (iterparse's feeding form), and each ``<url>`` or ``<sitemap>`` is
dropped once read, so memory holds the body as fetched and one entry, whatever the file lists.
The protocol's limits hold: at most ``SITEMAP_MAX_URLS`` entries and ``SITEMAP_MAX_BYTES``
uncompressed bytes are read, the rest ignored and said so. Entities are not resolved, nothing is
fetched from the network, and a document with a DTD is refused: a sitemap has no use for one,
and XML bombs need one. What cannot be read raises ``shared.errors.BadSitemap`` with its kind.
"""

from __future__ import annotations

import itertools
import re
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from urllib.parse import urljoin

from lxml import etree

from crawlfleet.shared.errors import BadSitemap
from crawlfleet.shared.failures import FailureKind, sitemap_reason
from crawlfleet.shared.urls import ScopeRule, canonicalize
from crawlfleet.workers.follow import followable_links

SITEMAP_MAX_URLS = 50_000
SITEMAP_MAX_BYTES = 50 * 1024 * 1024  # the protocol's 50 MB: 52,428,800 bytes
# the indexes above a sitemap that is read: an index lists sitemaps (level 1) and, though the
# protocol has no such thing, some list indexes (whose sitemaps are level 2); none deeper
MAX_SITEMAP_LEVEL = 2
_CHUNK = 64 * 1024
_GZIP_MAGIC = b"\x1f\x8b"
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
_LEADING = b"\xef\xbb\xbf \t\r\n"  # a UTF-8 byte order mark and white space
# W3C Datetime (a time without a zone, and a space for the T, as some sitemaps write it, too)
_W3C_DATETIME = re.compile(
    r"(\d{4})(?:-(\d{2})(?:-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(\.\d+)?)?"
    r"(Z|[+-]\d{2}:?\d{2})?)?)?)?"
)
# a line of a text sitemap longer than this is no URL a crawl follows (links.MAX_URL_LENGTH),
# and is skipped unread rather than held
_MAX_LINE = 8 * 1024


@dataclass(frozen=True, slots=True)
class SitemapEntry:
    """One URL a sitemap lists (a page, or a sitemap of an index), and when it last changed
    at the latest, if the sitemap says (``<lastmod>``, as ``parse_lastmod`` reads it)."""

    url: str
    lastmod: datetime | None = None


@dataclass(frozen=True, slots=True)
class SitemapRef:
    """A sitemap for the crawl to read: its canonical URL and how many indexes are above it."""

    url: str
    level: int


@dataclass(frozen=True, slots=True)
class ParsedSitemap:
    """A sitemap as written: its entries in order (sitemaps if it is an index), and the
    reasons it was cut short, if it was."""

    index: bool
    entries: list[SitemapEntry]
    cut: list[FailureKind]


@dataclass(frozen=True, slots=True)
class SitemapRead:
    """What one sitemap gives a crawl: its pages (canonical, in scope, each once, in order),
    the sitemaps it points to, the reasons to report (``sitemap: ...``), and how many of its
    entries were left out (out of scope, not pages, not URLs)."""

    index: bool
    pages: list[SitemapEntry]
    sitemaps: list[SitemapRef]
    reasons: list[str]
    ignored: int


def parse_lastmod(text: str | None) -> datetime | None:
    """A ``<lastmod>`` (W3C Datetime: ``2024``, ``2024-05``, ``2024-05-01``, or with a time and
    zone; a time without one is taken as UTC) as the latest time in UTC it may mean: its time,
    or the end of the year, month, day or minute it names (``2024-05-01``: May 2nd, 00:00), so
    that a page changed later that day is never taken as older; None if absent or
    unreadable."""
    found = _W3C_DATETIME.fullmatch((text or "").strip())
    if found is None:
        return None
    year, month, day, hour, minute, second, fraction, zone = found.groups()
    try:
        start = datetime(int(year), int(month or 1), int(day or 1), int(hour or 0),
                         int(minute or 0), int(second or 0), tzinfo=_zone(zone))  # fmt: skip
        if month is None:
            return start.replace(year=start.year + 1).astimezone(UTC)
        if day is None:
            return (start + timedelta(days=31)).replace(day=1).astimezone(UTC)
        if hour is None:
            return (start + timedelta(days=1)).astimezone(UTC)
        if second is None:
            return (start + timedelta(minutes=1)).astimezone(UTC)
        return (start + timedelta(seconds=float(fraction or 0))).astimezone(UTC)
    except (ValueError, OverflowError):  # no such date, or past the calendar's end
        return None


def _zone(zone: str | None) -> tzinfo:
    """A W3C time zone designator (``Z``, ``+02:00``) as a tzinfo; none is UTC."""
    if zone is None or zone == "Z":
        return UTC
    sign = -1 if zone[0] == "-" else 1
    digits = zone[1:].replace(":", "")
    return timezone(sign * timedelta(hours=int(digits[:2]), minutes=int(digits[2:])))


class _Inflated:
    """A sitemap's bytes a chunk at a time, inflated if gzip-compressed, at most ``limit`` in
    all; ``cut`` once more were left (or the body as fetched was cut, ``truncated``)."""

    def __init__(self, body: bytes, truncated: bool, limit: int) -> None:
        self._body = body
        self._limit = limit
        self.cut = truncated

    def __iter__(self) -> Iterator[bytes]:
        body, limit = self._body, self._limit
        if not body.startswith(_GZIP_MAGIC):
            end = min(len(body), limit)
            yield from (body[at : min(at + _CHUNK, end)] for at in range(0, end, _CHUNK))
            self.cut = self.cut or len(body) > limit
            return
        inflater = zlib.decompressobj(zlib.MAX_WBITS | 16)
        size = 0
        try:
            for at in range(0, len(body), _CHUNK):
                data = body[at : at + _CHUNK]
                while True:
                    # one byte past the limit tells a sitemap of exactly `limit` from a longer
                    out = inflater.decompress(data, min(_CHUNK, limit - size + 1))
                    data = inflater.unconsumed_tail
                    if size + len(out) > limit:
                        yield out[: limit - size]
                        self.cut = True
                        return
                    size += len(out)
                    if out:
                        yield out
                    if inflater.eof:
                        return  # what follows the compressed stream is not read
                    if not out and not data:
                        break
        except zlib.error as exc:
            raise BadSitemap(FailureKind.BAD_GZIP, str(exc)) from None
        if not self.cut:  # the body ended inside the compressed stream
            raise BadSitemap(FailureKind.BAD_GZIP, "the compressed stream is cut short")


def parse_sitemap(body: bytes, *, truncated: bool = False) -> ParsedSitemap:
    """The entries of a sitemap's ``body`` (``truncated``: the fetch cut it), XML if its first
    character is ``<``, else text; BadSitemap if it cannot be read."""
    inflated = _Inflated(body, truncated, SITEMAP_MAX_BYTES)
    chunks = iter(inflated)
    head: list[bytes] = []
    start = b""
    for chunk in chunks:
        head.append(chunk)
        start = chunk.lstrip(_LEADING)
        if start:
            break
    stream = itertools.chain(head, chunks)
    if start.startswith(b"<") or start.startswith(_UTF16_BOMS):
        index, entries, full = _xml_entries(stream, inflated, SITEMAP_MAX_URLS)
    else:
        index, entries, full = False, *_text_entries(stream, inflated, SITEMAP_MAX_URLS)
    cut = [FailureKind.OVER_URL_LIMIT] if full else []
    if inflated.cut:
        cut.append(FailureKind.OVER_BYTE_LIMIT)
    return ParsedSitemap(index, entries, cut)


def _local(element: etree._Element) -> str:
    tag = element.tag
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""


def _xml_entries(
    chunks: Iterable[bytes], inflated: _Inflated, max_urls: int
) -> tuple[bool, list[SitemapEntry], bool]:
    """(whether it is an index, its entries, whether there were more than ``max_urls``)."""
    parser = etree.XMLPullParser(
        events=("start", "end"), resolve_entities=False, no_network=True, load_dtd=False,
        huge_tree=False, remove_comments=True, remove_pis=True,
    )  # fmt: skip
    root: etree._Element | None = None
    entries: list[SitemapEntry] = []
    index = False
    depth = 0

    def take(events: Iterator[tuple[str, etree._Element]]) -> bool:
        """Read parsed events; True once more entries came than ``max_urls``."""
        nonlocal root, index, depth
        for event, element in events:
            if event == "start":
                depth += 1
                if root is None:
                    root, index = element, _root_is_index(element)
                continue
            depth -= 1
            if depth == 1 and root is not None:  # a child of the root, read whole
                if _local(element) in ("url", "sitemap"):
                    if len(entries) == max_urls:
                        return True
                    entries.append(_entry(element))
                root.remove(element)  # read: no tree grows
        return False

    try:
        for chunk in chunks:
            parser.feed(chunk)
            if take(parser.read_events()):
                return index, entries, True
        if not inflated.cut:  # a sitemap cut at the byte limit has no end to check
            parser.close()
            if take(parser.read_events()):
                return index, entries, True
    except etree.XMLSyntaxError as exc:
        raise BadSitemap(FailureKind.MALFORMED_XML, str(exc)) from None
    if root is None:
        raise BadSitemap(FailureKind.MALFORMED_XML, "no root element")
    return index, entries, False


def _root_is_index(root: etree._Element) -> bool:
    """Whether the root is a ``sitemapindex`` (else a ``urlset``); BadSitemap if neither, or
    if the document has a DTD."""
    info = root.getroottree().docinfo
    if info.doctype or info.internalDTD is not None:
        raise BadSitemap(FailureKind.DTD, "sitemaps have none; refused unread")
    name = _local(root)
    if name not in ("urlset", "sitemapindex"):
        raise BadSitemap(FailureKind.NOT_A_SITEMAP, f"its root element is <{name}>")
    return name == "sitemapindex"


def _entry(element: etree._Element) -> SitemapEntry:
    """A ``<url>`` or ``<sitemap>``: its ``<loc>`` and ``<lastmod>``."""
    loc = lastmod = None
    for child in element:
        name = _local(child)
        if name == "loc":
            loc = child.text
        elif name == "lastmod":
            lastmod = child.text
    return SitemapEntry((loc or "").strip(), parse_lastmod(lastmod))


def _text_entries(
    chunks: Iterable[bytes], inflated: _Inflated, max_urls: int
) -> tuple[list[SitemapEntry], bool]:
    """The URLs of a text sitemap, one per line (blank lines skipped), and whether there
    were more than ``max_urls``."""
    entries: list[SitemapEntry] = []
    rest = b""
    overlong = False  # the line being read is past _MAX_LINE: no URL, skipped to its end
    for chunk in chunks:
        *lines, tail = chunk.split(b"\n")
        if lines:
            lines[0] = b"" if overlong else rest + lines[0]
            rest, overlong = tail, False
        elif not overlong:
            rest += tail
        if len(rest) > _MAX_LINE:
            rest, overlong = b"", True
        for line in lines:
            url = _text_line(line)
            if url:
                if len(entries) == max_urls:
                    return entries, True
                entries.append(SitemapEntry(url))
    url = _text_line(rest)
    if url and not inflated.cut:  # a line cut at the byte limit is no URL
        if len(entries) == max_urls:
            return entries, True
        entries.append(SitemapEntry(url))
    return entries, False


def _text_line(line: bytes) -> str:
    """A line of a text sitemap as text, without white space or a byte order mark."""
    return line.decode("utf-8", errors="replace").strip().lstrip("\ufeff")


def read_sitemap(
    body: bytes, truncated: bool, url: str, level: int, scope: ScopeRule
) -> SitemapRead:
    """What the sitemap at ``url`` (``level`` indexes below the first) gives a crawl of
    ``scope``: its page URLs by the rules of links (canonical, page links, in scope and its
    patterns), or, for an index, its sitemaps on the crawl's hosts; BadSitemap if it cannot be
    read."""
    parsed = parse_sitemap(body, truncated=truncated)
    reasons = [sitemap_reason(why) for why in parsed.cut]
    pages: list[SitemapEntry] = []
    sitemaps: list[SitemapRef] = []
    ignored = 0
    if parsed.index and level >= MAX_SITEMAP_LEVEL:
        reasons.append(sitemap_reason(FailureKind.NESTED_TOO_DEEP))
        return SitemapRead(True, [], [], reasons, len(parsed.entries))
    taken: set[str] = set()
    for entry in parsed.entries:
        href = urljoin(url, entry.url) if entry.url else ""
        if parsed.index:
            target = canonicalize(href) if href else None
            ok = target is not None and scope.covers(target)
        else:
            followed = followable_links([href], scope) if href else []
            target = followed[0] if followed else None
            ok = target is not None
        if not ok or target is None:
            ignored += 1
        elif target not in taken:
            taken.add(target)
            if parsed.index:
                sitemaps.append(SitemapRef(target, level + 1))
            else:
                pages.append(SitemapEntry(target, entry.lastmod))
    return SitemapRead(parsed.index, pages, sitemaps, reasons, ignored)


def listed_sitemaps(urls: Iterable[str], base: str, scope: ScopeRule) -> list[SitemapRef]:
    """The sitemaps a robots.txt lists (``Sitemap:`` lines, resolved against ``base``, its
    URL) that are on the crawl's hosts, as sitemaps of level 0, each once."""
    refs: dict[str, SitemapRef] = {}
    for url in urls:
        target = canonicalize(urljoin(base, url.strip()))
        if target is not None and scope.covers(target):
            refs.setdefault(target, SitemapRef(target, 0))
    return list(refs.values())
