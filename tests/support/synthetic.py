"""The synthetic web, the one generator of link graphs that the tests and the bench share: a
deterministic graph over several loopback hosts, its pages, and the BFS ground truth of which
URLs a crawl of depth N must fetch (:func:`shortest_depths`, for any :class:`LinkGraph`).

Host ``h`` is ``127.0.0.(2 + h)``; page ``i`` of a host is ``/p/<i>.html``. The graph is a
function of ``(seed, h, i)`` alone, so the server, the ground truth and any process that needs a
page agree without sharing state.

Link structure (why a depth-4 crawl reaches a few thousand pages, not the whole web): each page
links to its host's home page (``/p/0.html``, a navigation link), to ``links - 3`` pages of its
own host near its own number (``i - window/4 .. i + window``, like the "next", "see also" links
of a real site) and to 2 pages of other hosts near the same number. Starting from every host's
home page, depth ``d`` reaches about ``d * window`` pages per host, much less than the site, so
the crawl's size is set by ``window`` and the depth, and most links point to pages already seen
(dedupe is exercised as on a real site).
"""

from __future__ import annotations

import random
import re
from collections import deque
from dataclasses import asdict, dataclass
from typing import Protocol
from urllib.parse import urlsplit

FIRST_HOST = 2  # 127.0.0.2 is the first host: 127.0.0.1 is left to everything else
CROSS_HOST_LINKS = 2
_PAGE_PATH = re.compile(r"^/p/(\d+)\.html$")

_WORDS = (
    "crawler frontier fetch parse redis queue worker depth link page host latency throughput "
    "budget politeness robots canonical fingerprint manifest record scope seed breadth first "
    "synthetic benchmark measure ceiling loopback keep alive socket header body padding"
).split()


class LinkGraph(Protocol):
    """What a BFS needs of a site: the links a crawler follows from a URL, and its redirect."""

    def follows(self, url: str) -> list[str]: ...

    def redirect(self, url: str) -> str | None: ...


def shortest_depths(
    site: LinkGraph, seeds: list[str], depth: int, *, only_seed_hosts: bool = False
) -> dict[str, int]:
    """The shortest distance of every URL within ``depth`` hops (on the seeds' hosts only if
    ``only_seed_hosts``, as a crawl with host scope). A redirect's target is a URL of its own
    at the redirect's depth (a crawler fetches it as a page of its own)."""
    hosts = {urlsplit(s).hostname for s in seeds}
    dist = {s: 0 for s in seeds}
    queue = deque(seeds)
    while queue:  # 0-1 BFS: a redirect is an edge of length 0
        url = queue.popleft()
        here = dist[url]
        target = site.redirect(url)
        if target is not None:
            steps = [(target, here)]
        else:
            steps = [(nxt, here + 1) for nxt in site.follows(url)] if here < depth else []
        for nxt, d in steps:
            if only_seed_hosts and urlsplit(nxt).hostname not in hosts:
                continue
            if d < dist.get(nxt, depth + 1):
                dist[nxt] = d
                if d == here:
                    queue.appendleft(nxt)
                else:
                    queue.append(nxt)
    return dist


@dataclass(frozen=True)
class SiteConfig:
    """Everything that determines the synthetic web."""

    seed: int = 5
    hosts: int = 8
    pages_per_host: int = 2000
    links_per_page: int = 12
    page_bytes: int = 8192
    latency_s: float = 0.0
    window: int = 60  # how far (in page numbers) a page's local links reach forward

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> SiteConfig:
        return cls(**data)  # type: ignore[arg-type]


# the bench's scenario (a) in its full plan, 2,320 URLs within 4 links of the seeds; the
# extractor tests compare their parsers on these pages
SCENARIO_A = SiteConfig(seed=5, hosts=8, pages_per_host=2000, links_per_page=12, page_bytes=8192,
                        latency_s=0.0, window=72)  # fmt: skip


class SyntheticSite:
    """Pages and links of one :class:`SiteConfig`, served on ``port``."""

    def __init__(self, config: SiteConfig, port: int) -> None:
        if config.links_per_page < 1 + CROSS_HOST_LINKS:
            raise ValueError("links_per_page must be at least 3")
        self.config = config
        self.port = port
        self._cache: dict[tuple[int, int], bytes] = {}

    # --- addressing -----------------------------------------------------------------------
    def host(self, h: int) -> str:
        return f"127.0.0.{FIRST_HOST + h}"

    def origin(self, h: int) -> str:
        return f"http://{self.host(h)}:{self.port}"

    def url(self, h: int, i: int) -> str:
        return f"{self.origin(h)}/p/{i}.html"

    def seeds(self) -> list[str]:
        """One seed per host: its home page."""
        return [self.url(h, 0) for h in range(self.config.hosts)]

    def host_index(self, host: str) -> int | None:
        """The host number of ``127.0.0.N`` (None if it is not one of the site's hosts)."""
        if not host.startswith("127.0.0."):
            return None
        try:
            h = int(host.rsplit(".", 1)[1]) - FIRST_HOST
        except ValueError:
            return None
        return h if 0 <= h < self.config.hosts else None

    def page_index(self, path: str) -> int | None:
        match = _PAGE_PATH.match(path)
        if match is None:
            return None
        i = int(match.group(1))
        return i if i < self.config.pages_per_host else None

    # --- the graph ------------------------------------------------------------------------
    def links(self, h: int, i: int) -> list[tuple[int, int]]:
        """The (host, page) targets of page ``i`` of host ``h``, in document order."""
        c = self.config
        rng = random.Random(f"{c.seed}:{h}:{i}")
        n = c.pages_per_host
        back = max(1, c.window // 4)
        targets = [(h, 0)]
        for _ in range(c.links_per_page - 1 - CROSS_HOST_LINKS):
            targets.append((h, (i + rng.randint(-back, c.window)) % n))
        for _ in range(CROSS_HOST_LINKS):
            other = (h + rng.randint(1, max(1, c.hosts - 1))) % c.hosts
            targets.append((other, (i + rng.randint(-back, c.window)) % n))
        return targets

    def link_urls(self, h: int, i: int) -> list[str]:
        return [self.url(th, ti) for th, ti in self.links(h, i)]

    def follows(self, url: str) -> list[str]:
        """The links of the page at ``url`` (none if it is not one of the site's pages)."""
        parts = urlsplit(url)
        h, i = self.host_index(parts.hostname or ""), self.page_index(parts.path)
        if h is None or i is None or parts.port != self.port:
            return []
        return self.link_urls(h, i)

    def redirect(self, url: str) -> str | None:
        """No page of the synthetic web redirects."""
        return None

    def ground_truth(self, depth: int) -> dict[str, int]:
        """Every URL within ``depth`` links of the seeds, with its shortest depth (BFS)."""
        return shortest_depths(self, self.seeds(), depth)

    # --- the pages ------------------------------------------------------------------------
    def render(self, h: int, i: int) -> bytes:
        """The HTML of a page: its links among paragraphs, padded to ``page_bytes``."""
        key = (h, i)
        body = self._cache.get(key)
        if body is None:
            body = self._render(h, i)
            if len(self._cache) < 200_000:
                self._cache[key] = body
        return body

    def _render(self, h: int, i: int) -> bytes:
        c = self.config
        rng = random.Random(f"text:{c.seed}:{h}:{i}")
        anchors: list[str] = []
        for th, ti in self.links(h, i):
            # links to the same host are written relative, to other hosts absolute
            href = f"/p/{ti}.html" if th == h else self.url(th, ti)
            anchors.append(f'<a href="{href}">page {th}-{ti}</a>')
        head = (
            '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f"<title>Host {h} page {i}</title>"
            '<link rel="stylesheet" href="/static/site.css"></head>\n<body>\n'
            f'<nav class="top">{anchors[0]}</nav>\n<main>\n<h1>Page {i} of host {h}</h1>\n'
        )
        tail = "</main>\n<footer>synthetic web</footer>\n</body></html>\n"
        parts = [head]
        size = len(head) + len(tail)
        rest = anchors[1:]
        # spread the links over the page, then pad with paragraphs up to the page size
        per_paragraph = max(1, len(rest) // 4)
        while rest or size < c.page_bytes:
            words = " ".join(rng.choice(_WORDS) for _ in range(24))
            links, rest = rest[:per_paragraph], rest[per_paragraph:]
            para = f'<p class="t">{words} {" ".join(links)}</p>\n'
            if not links and size + len(para) > c.page_bytes:
                para = para[: max(0, c.page_bytes - size - 5)] + "</p>\n"
                parts.append(para)
                size += len(para)
                break
            parts.append(para)
            size += len(para)
        parts.append(tail)
        return "".join(parts).encode()
