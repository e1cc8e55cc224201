"""Link extraction from HTML: the absolute targets of a page's links, as written (which of
them a crawl follows is ``workers/follow.py``'s).

Two extractors yield the same links: ``"bs4"`` (beautifulsoup4 on lxml, the default) and
``"fast"`` (lxml alone). Both read the same stream of start tags from the same libxml2 parser
and differ only in what they build from it: bs4 builds a soup of the ``<a>``, ``<area>`` and
``<base>`` tags that have an href (its tree builder hands it each one as an empty tag, where
it starts); ``"fast"`` keeps the tag name and ``href`` of each, nothing else. What the two
share, so that they cannot drift apart:

- the encoding: bs4's own ``EncodingDetector`` candidates, tried in its order (the charset of
  the Content-Type header, then a byte order mark, then a ``<meta>`` or XML declaration, then
  charset detection on the bytes, then utf-8 and windows-1252), each parsed by
  ``lxml.etree.HTMLParser(encoding=..., recover=True)`` until one is not rejected, exactly as
  bs4's lxml tree builder does. lxml's own detection differs (it ignores an unknown charset
  name by failing, defaults to windows-1252 where bs4 detects utf-8, and gives no root for an
  empty or binary page), so it is not used;
- a parser *target* instead of a tree, as bs4 uses: no tree means no depth limit (libxml2 stops
  building a tree 256 levels deep) and memory in proportion to the links, not to the elements;
- the rules of :func:`_resolve`: the first non-empty ``<base href>``, whitespace stripped,
  non-page schemes and bare fragments skipped;
- the parse budget: past ``max_tags`` link tags, the rest of a page is read for nothing, so a
  page of a million links costs the time of libxml2's tokenizer, not of a million soup tags.

Kept lxml parsers are per thread: a worker parses big pages in a thread of its own
(``workers/parsing.py``) while small ones are parsed on its event loop.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Callable, Iterable
from functools import lru_cache
from typing import Any, TypeVar
from urllib.parse import urljoin, urlsplit

from bs4 import BeautifulSoup
from bs4.builder._lxml import LXMLTreeBuilder
from bs4.dammit import EncodingDetector
from bs4.element import Tag
from lxml import etree

from crawlfleet.shared.settings import Extractor

# parse only the tags that carry links (and <base>, which changes what they are relative to)
_LINK_TAG_NAMES = frozenset(("a", "area", "base"))
_SKIPPED_SCHEMES = ("mailto:", "javascript:", "data:", "tel:", "ftp:", "#")

# (tag name, href) of the link tags of a page, in document order
LinkTags = Iterable[tuple[str, str | None]]


def extract_hrefs(
    html: bytes,
    page_url: str,
    encoding: str | None = None,
    extractor: Extractor = "bs4",
    max_tags: int | None = None,
) -> list[str]:
    """The absolute targets of the ``<a>`` and ``<area>`` links of a page, in document order.

    Relative links are resolved against ``<base href>`` when the page has one, else against
    ``page_url`` (the URL after redirects). ``encoding`` is the charset the server declared;
    ``extractor`` picks the parser, which does not change the result. Only the first
    ``max_tags`` link and base tags are read.
    """
    budget = _UNBOUNDED if max_tags is None else max_tags
    tags = (
        _fast_link_tags(html, encoding, budget)
        if extractor == "fast"
        else _bs4_link_tags(html, encoding, budget)
    )
    return _resolve(tags, page_url)


_UNBOUNDED = 1 << 62


def extractor_for(extractor: Extractor) -> Callable[[bytes, str, str | None], list[str]]:
    """:func:`extract_hrefs` with the given extractor, as a function of (html, url, charset)."""

    def extract(html: bytes, page_url: str, encoding: str | None = None) -> list[str]:
        return extract_hrefs(html, page_url, encoding, extractor)

    return extract


class _LinkTagsBuilder(LXMLTreeBuilder):
    """bs4's lxml HTML tree builder, handing the soup only the link tags, each as an empty tag.

    libxml2 reports every element, string and comment of a page to the builder, and bs4's own
    handling of each event (attribute and namespace bookkeeping, a SoupStrainer's test, its
    string buffer) is where most of a parse goes (bench/README.md has the figures), though a
    strainer would then drop all but the links. Dropping the other events first
    (``_ToCurrentBuilder``) does the strainer's work before bs4 sees them, so the soup is made
    without one: it holds the link tags that have an ``href`` (an anchor without one links
    nowhere), each with its ``href`` alone (the one attribute read), and no text, which no link
    depends on. Each is ended where it starts, so no parser end event is needed (lxml then
    reports none: a call per element of the page saved); what a link tag holds is never read,
    and the soup's tags stay in document order. Encoding detection is bs4's own; the lxml
    parser is the one bs4 would make, kept for the process (one per encoding), since making one
    costs about as much as parsing a small page.
    """

    def __init__(self, budget: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.budget = budget

    def parser_for(self, encoding: Any) -> Any:
        kept = _KEPT.bs4
        parser, target = _kept_parser(kept, encoding, _ToCurrentBuilder, self.huge_tree)
        target.builder = self
        target.left = self.budget
        return parser

    def feed(self, markup: Any) -> None:
        assert self.soup is not None
        encoding = self.soup.original_encoding
        kept = _KEPT.bs4
        try:
            super().feed(markup)
        except BaseException:
            kept.pop(encoding, None)  # a parser that failed is not reused
            raise
        finally:
            found = kept.get(encoding)
            if found is not None and found[1].builder is self:
                found[1].builder = None  # the kept parser must not keep this page's soup alive

    def link_tag(self, tag: str, href: str) -> None:
        """Hand the soup one link tag, started and ended, with its ``href`` alone (no other
        attribute of a link is read).

        What bs4's lxml builder does for a start and an end event, less what cannot apply to a
        tag of an HTML parse (lxml's HTML parser gives no namespaces): no namespace look-ups,
        and the attributes in a plain dict, which the tag copies into its own attribute dict
        (bs4 does so for a builder without multi-valued attributes) rather than a dict of that
        class made first for nothing.
        """
        soup = self.soup
        assert soup is not None
        attrs = {"href": href}
        namespaces = self.active_namespace_prefixes[-1]
        soup.handle_starttag(tag, None, None, attrs, namespaces=namespaces)
        soup.handle_endtag(tag)


class _ToCurrentBuilder:
    """The target of a kept lxml parser: each link tag's start event, handed to the builder of
    the page being parsed as the start and end of an empty tag (if it has an href), until
    ``left`` link tags have been read. lxml does not report the events a target has no method
    for: no call at all for end tags, strings, comments, doctypes and processing
    instructions."""

    __slots__ = ("builder", "left")

    def __init__(self) -> None:
        self.builder: _LinkTagsBuilder | None = None
        self.left = 0

    def start(self, tag: str, attrib: Any) -> None:
        if tag in _LINK_TAG_NAMES and self.builder is not None and self.left > 0:
            self.left -= 1
            href = attrib.get("href")
            # one without an href links nowhere and sets no base: it counts against the
            # budget, as in the fast extractor, but bs4 need not make a tag of it
            if href is not None:
                self.builder.link_tag(tag, href)

    def close(self) -> None:
        if self.builder is not None:
            self.builder.close()


_Target = TypeVar("_Target", "_LinkTarget", _ToCurrentBuilder)


class _KeptParsers(threading.local):
    """The lxml parsers this thread keeps, by encoding: a parser is not safe to share between
    threads, and a worker parses in two (its event loop's and its parse thread)."""

    def __init__(self) -> None:
        self.bs4: dict[Any, tuple[etree.HTMLParser, _ToCurrentBuilder]] = {}
        self.fast: dict[Any, tuple[etree.HTMLParser, _LinkTarget]] = {}


_KEPT = _KeptParsers()


def _kept_parser(
    kept: dict[Any, tuple[etree.HTMLParser, _Target]],
    encoding: Any,
    new_target: Callable[[], _Target],
    huge_tree: bool = False,
) -> tuple[etree.HTMLParser, _Target]:
    """The process's lxml parser for ``encoding`` in ``kept``, and its target, made on first
    use: making one costs about as much as parsing a small page (lxml inspects the target's
    methods). A parser that failed must be dropped from ``kept``, not reused."""
    found = kept.get(encoding)
    if found is None:
        target = new_target()
        parser = etree.HTMLParser(
            target=target, recover=True, huge_tree=huge_tree, encoding=encoding
        )
        found = kept[encoding] = parser, target
    return found


def _bs4_link_tags(html: bytes, encoding: str | None, budget: int) -> LinkTags:
    with warnings.catch_warnings():
        # bs4 warns about XML-looking or odd documents; a crawler takes pages as they come
        warnings.simplefilter("ignore")
        soup = BeautifulSoup(
            html,
            # multi-valued attributes (class) kept as written, not split into lists
            builder=_LinkTagsBuilder(budget, multi_valued_attributes=None),
            from_encoding=encoding,
        )
    tags: list[tuple[str, str | None]] = []
    # the soup holds the link tags with an href alone (the builder hands it nothing else):
    # every one of its tags, in document order, is what find_all of their names would give
    for tag in soup.descendants:
        if isinstance(tag, Tag):
            href = tag.get("href")
            tags.append((tag.name, href if isinstance(href, str) else None))
    return tags


class _LinkTarget:
    """An lxml parser target that keeps the name and href of the first ``budget`` link tags,
    nothing else (lxml calls only the methods a target has: no text, end tag or comment
    events)."""

    __slots__ = ("budget", "tags")

    def __init__(self) -> None:
        self.tags: list[tuple[str, str | None]] = []
        self.budget = 0

    def start(self, tag: str, attrib: dict[str, str]) -> None:
        if tag in _LINK_TAG_NAMES and len(self.tags) < self.budget:
            self.tags.append((tag, attrib.get("href")))

    def close(self) -> list[tuple[str, str | None]]:
        return self.tags


def _fast_link_tags(html: bytes, encoding: str | None, budget: int) -> LinkTags:
    # the steps of bs4's BeautifulSoup(html, "lxml", from_encoding=encoding), without the soup
    detector = EncodingDetector(
        html, known_definite_encodings=[encoding] if encoding else [], is_html=True
    )
    rejected: list[str] = []
    kept = _KEPT.fast
    for candidate in detector.encodings:
        try:
            # LookupError: lxml knows no such encoding name
            parser, target = _kept_parser(kept, candidate, _LinkTarget)
            target.tags, target.budget = [], budget
            parser.feed(detector.markup)  # the bytes without their byte order mark
            tags: list[tuple[str, str | None]] = parser.close()
            target.tags = []  # the kept target must not keep this page's links alive
            return tags
        except (UnicodeDecodeError, LookupError, etree.ParserError) as exc:
            kept.pop(candidate, None)
            rejected.append(f"{candidate}: {exc}")  # bs4 tries its next encoding too
    raise ValueError(f"no encoding could parse the page: {'; '.join(rejected)}")


def _resolve(tags: LinkTags, page_url: str) -> list[str]:
    base = page_url
    origin, folder = _origin_of(base)
    hrefs: list[str] = []
    joined: dict[str, str | None] = {}  # by href without fragment (see _join)
    for name, href in tags:
        if href is None:
            continue
        href = href.strip()
        if name == "base":
            if href and base is page_url:
                base = urljoin(page_url, href)
                origin, folder = _origin_of(base)
                joined.clear()
            continue
        if not href or href.lower().startswith(_SKIPPED_SCHEMES):
            continue
        url = _join(base, origin, folder, href, joined)
        if url is not None:  # None: e.g. an invalid IPv6 literal: skip the link, keep the page
            hrefs.append(url)
    return hrefs


def _join(
    base: str, origin: str | None, folder: str | None, href: str, joined: dict[str, str | None]
) -> str | None:
    """``urljoin(base, href)``, or None where it raises ValueError; memoized in ``joined``,
    and across pages for the hrefs whose result depends only on ``origin`` (see
    :func:`_origin_only`) or only on ``folder`` (see :func:`_folder_only`).

    A page links to a few dozen documents through hundreds of fragments (``x.html#a``,
    ``x.html#b``), so the part before the fragment is joined once: for a non-empty fragment
    without tab, CR or LF (which urlsplit deletes) after a part that neither starts nor ends
    with a control character or space (which urlsplit strips), ``urljoin(base, pre + "#" +
    frag)`` is ``urljoin(base, pre) + "#" + frag``, since urlsplit cuts the fragment off first
    and urlunsplit appends it last. Anything else is joined as it is.
    """
    pre, sep, frag = href.partition("#")
    if not (sep and frag and pre and pre[0] > " " and pre[-1] > " ") or (
        "\t" in frag or "\n" in frag or "\r" in frag
    ):
        pre, frag = href, ""
    if pre in joined:
        url = joined[pre]
    else:
        if origin is not None and _origin_only(pre):
            url = _join_to_origin(origin, pre)
        elif folder is not None and _folder_only(pre):
            url = _join_to_origin(folder, pre)
        else:
            url = _try_urljoin(base, pre)
        joined[pre] = url
    return url + "#" + frag if url is not None and frag else url


def _try_urljoin(base: str, href: str) -> str | None:
    try:
        return urljoin(base, href)
    except ValueError:
        return None


# Pages of a site link to the same URLs over and over (navigation, neighbours on other hosts),
# and urljoin re-parses the page URL for each link: an href that names its own path (``/x``,
# ``//host/x``, ``http://host/x``) is joined once per origin, and a relative one (``x.html``,
# ``../y/``) once per folder, whatever page it is on.
_join_to_origin = lru_cache(maxsize=16384)(_try_urljoin)


def _origin_of(base: str) -> tuple[str | None, str | None]:
    """``scheme://netloc/`` of ``base`` as urljoin parses it, or None if that fails; and for
    an http(s) ``base``, ``scheme://netloc`` and its path up to its last ``/`` (its folder, by
    which urljoin resolves a relative path), or None."""
    try:
        parts = urlsplit(base)
    except ValueError:
        return None, None
    if not (parts.scheme and parts.netloc):
        return None, None
    origin = f"{parts.scheme}://{parts.netloc}/"
    path = parts.path
    if parts.scheme not in ("http", "https") or not path.startswith("/"):
        return origin, None
    return origin, f"{parts.scheme}://{parts.netloc}{path[: path.rfind('/') + 1]}"


def _folder_only(href: str) -> bool:
    """Whether ``urljoin(base, href)`` depends on nothing of an http(s) ``base`` but its
    scheme, netloc and folder: true for a relative path (``x.html``, ``../y/?q``), which
    urljoin appends to the base's path less its last segment (dot segments removed the same
    way from either), never reading the base's query or the last segment's ``;params``. Not
    for an href that may carry a scheme (a colon), that starts with ``/`` (the origin's, see
    :func:`_origin_only`), ``?``, ``#`` or ``;`` (urljoin then keeps the base's path or
    last segment) or with a space or control character, or that holds a tab, CR or LF (which
    urlsplit strips or deletes).
    """
    if not href or href[0] <= " " or href[0] in "/?#;" or ":" in href:
        return False
    return not ("\t" in href or "\n" in href or "\r" in href)


def _origin_only(href: str) -> bool:
    """Whether ``urljoin(base, href)`` depends on nothing of ``base`` but its scheme and
    netloc: true for an href that starts with ``/``, except one that starts with ``//``,
    ``http://`` or ``https://`` and then ``?``, ``#`` or its end (urljoin takes the base's
    path only for an href with no netloc and an empty path). Tabs, CR and LF, which urlsplit
    deletes anywhere and so could turn ``/<tab>/x`` into ``//x``, send the href the slow way.
    """
    if "\t" in href or "\n" in href or "\r" in href:
        return False
    for prefix in ("//", "http://", "https://"):
        if href.startswith(prefix):
            return len(href) > len(prefix) and href[len(prefix)] not in "?#"
    return href[0] == "/"
