"""An endless host: a calendar trap for the ``fair`` scenario.

Page ``n`` of the host (``/e/<n>.html``) links to ``links`` pages no one has linked to before,
``/e/<links * n + 1>.html`` ... ``/e/<links * n + links>.html``: a tree with no end, generated
on the fly, every link new, as a calendar's "next month" or a faceted search's filters are on a
real site. Only the crawl's depth bounds it: depth ``d`` holds ``links ** d`` pages. The host is
the one after the synthetic site's hosts (``127.0.0.(2 + hosts)``), served by
:mod:`bench.server` on the same port, with the same latency; no page of the site links to it,
so it is reached from its own seed only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from tests.support.synthetic import FIRST_HOST, shortest_depths

_PAGE_PATH = re.compile(r"^/e/(\d+)\.html$")
_FILLER = (
    "every day of the calendar has a page and every page has a next day; the crawl that "
    "follows them all never ends unless something bounds it. "
)


@dataclass(frozen=True)
class EndlessHost:
    """The trap host after ``site_hosts`` synthetic hosts, ``links`` new links a page."""

    site_hosts: int
    links: int
    page_bytes: int
    port: int = 0

    @property
    def host(self) -> str:
        return f"127.0.0.{FIRST_HOST + self.site_hosts}"

    def url(self, n: int) -> str:
        return f"http://{self.host}:{self.port}/e/{n}.html"

    def seed(self) -> str:
        return self.url(0)

    def children(self, n: int) -> list[int]:
        return [self.links * n + j for j in range(1, self.links + 1)]

    def page_index(self, path: str) -> int | None:
        match = _PAGE_PATH.match(path)
        return int(match.group(1)) if match else None

    def render(self, n: int) -> bytes:
        """Page ``n``: its links (relative, on this host), padded to ``page_bytes``."""
        anchors = " ".join(f'<a href="/e/{c}.html">day {c}</a>' for c in self.children(n))
        head = (
            '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f"<title>Day {n}</title></head>\n<body>\n<h1>Day {n}</h1>\n<p>{anchors}</p>\n"
        )
        tail = "</body></html>\n"
        room = max(0, self.page_bytes - len(head) - len(tail) - len("<p></p>\n"))
        filler = (_FILLER * (room // len(_FILLER) + 1))[:room]
        return f"{head}<p>{filler}</p>\n{tail}".encode()

    def follows(self, url: str) -> list[str]:
        """The links of the page at ``url``."""
        n = self.page_index(urlsplit(url).path)
        return [] if n is None else [self.url(c) for c in self.children(n)]

    def redirect(self, url: str) -> str | None:
        """No page of the trap redirects."""
        return None

    def ground_truth(self, depth: int) -> dict[str, int]:
        """Every page within ``depth`` links of the seed, with its depth (BFS)."""
        return shortest_depths(self, [self.seed()], depth)
