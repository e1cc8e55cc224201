"""The ``fair`` scenario's figure: when the ordinary hosts are done, with and without a trap.

A crawl of ordinary hosts is made alone, then again with one more seed on an endless host
(:mod:`bench.trap`), which has pages to the crawl's depth bound and many more than any ordinary
host. A fair crawler keeps giving the ordinary hosts their share while the trap is crawled, so
their last page is stored about as early as without it; one that lets the trap's pages take its
slots or its queue makes them wait. The time of the ordinary hosts' last page comes from the
records crawlfleet writes as it stores each page (``fetched_at``), from the seeding.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlsplit

from bench.result import RunResult


def ordinary_done_s(result: RunResult, hosts: Iterable[str]) -> float | None:
    """Seconds from the seeding to the last page stored on any of ``hosts`` (None if the run
    recorded no page times)."""
    times = [result.host_last_s[h] for h in hosts if h in result.host_last_s]
    return max(times) if times else None


def pages_on(result: RunResult, host: str) -> int:
    """How many of the run's pages are on ``host``."""
    return sum(1 for u in result.urls if urlsplit(u).hostname == host)
