"""The ``polite`` scenario's yardstick: how long a per-host delay must make a crawl last.

With ``--per-host-delay D`` a host's requests start at least D seconds apart, fleet-wide, so a
host with N URLs needs at least ``(N - 1) * D`` seconds, and the crawl at least the largest of
these: the politeness bound. A crawl that keeps to the delay and loses no time besides lasts a
little longer than the bound (the last page's own fetch, the levels of the crawl that wait for
their links); how much longer, and what the waiting costs in CPU and Redis commands, is what
the scenario measures against the same crawl without the delay.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from urllib.parse import urlsplit


def urls_per_host(urls: Iterable[str]) -> dict[str, int]:
    """How many of ``urls`` each host has."""
    return dict(sorted(Counter(urlsplit(u).hostname or "" for u in urls).items()))


def politeness_bound(urls: Iterable[str], delay_s: float) -> tuple[float, int]:
    """The least wall time of a crawl of ``urls`` with ``delay_s`` between a host's request
    starts, max over hosts of (URLs on the host - 1) x ``delay_s``; and the busiest host's
    URL count."""
    busiest = max(urls_per_host(urls).values(), default=0)
    return max(0, busiest - 1) * delay_s, busiest
