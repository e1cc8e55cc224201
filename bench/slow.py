"""Slow hosts for the ``slow`` scenario: hosts that take ``after_s`` to answer each request.

The ordinary hosts of a synthetic site are crawled alone, then again with ``hosts`` more seeds'
hosts, each holding ``pages`` URLs (``/s/<i>.html``, all seeds: a page that never answers
links nowhere) that are answered ``after_s`` seconds after they are asked for, by
:mod:`bench.server` on the same port. They are the hosts after the site's
(``127.0.0.(2 + site hosts + h)``). At 60 s, the default total timeout, they never answer in
time: a crawler that lets a request waiting on them hold one of its places has none left for
the ordinary hosts.

The server counts the requests it got for slow hosts; ``GET /_stats`` on any of its hosts
says how many (JSON), so a run's count is the difference before and after it.
"""

from __future__ import annotations

import json
import urllib.request
from dataclasses import dataclass

from tests.support.synthetic import FIRST_HOST

STATS_PATH = "/_stats"
SLOW_BODY = b"<!DOCTYPE html>\n<html><head><title>slow</title></head><body>late</body></html>\n"


@dataclass(frozen=True)
class SlowHosts:
    """``hosts`` slow hosts after ``site_hosts`` synthetic ones, ``pages`` URLs each."""

    site_hosts: int
    hosts: int
    pages: int
    after_s: float
    port: int = 0

    def host(self, h: int) -> str:
        return f"127.0.0.{FIRST_HOST + self.site_hosts + h}"

    def names(self) -> list[str]:
        return [self.host(h) for h in range(self.hosts)]

    def urls(self) -> list[str]:
        return [
            f"http://{self.host(h)}:{self.port}/s/{i}.html"
            for h in range(self.hosts)
            for i in range(self.pages)
        ]

    def is_page(self, path: str) -> bool:
        return path.startswith("/s/") and path.endswith(".html")


def slow_requests(port: int, host: str) -> int:
    """The requests the bench server has had for slow hosts so far."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback only
    with opener.open(f"http://{host}:{port}{STATS_PATH}", timeout=10) as response:
        return int(json.loads(response.read())["slow_requests"])
