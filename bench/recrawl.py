"""Scenario ``recrawl``: a crawl of a synthetic site whose pages carry an ETag, then a crawl
``--since`` it of the same site, unchanged: every page answers 304, so the recrawl fetches no
body and parses nothing. Measured: each crawl's CPU (workers and Redis, seed to done), their
ratio, and the server's own count of the bodies and 304s it sent during each.
"""

from __future__ import annotations

import json
import urllib.request
from dataclasses import dataclass

from bench.slow import STATS_PATH

FIRST = "first"
AGAIN = "again"


@dataclass(frozen=True)
class Served:
    """What the bench server had sent so far: pages with their body, and 304s."""

    pages: int
    not_modified: int

    def since(self, before: Served) -> Served:
        return Served(self.pages - before.pages, self.not_modified - before.not_modified)


def served(port: int, host: str) -> Served:
    """The bench server's counts so far (``GET /_stats`` on one of its hosts)."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback only
    with opener.open(f"http://{host}:{port}{STATS_PATH}", timeout=10) as response:
        stats = json.loads(response.read())
    return Served(int(stats["pages_sent"]), int(stats["not_modified"]))
