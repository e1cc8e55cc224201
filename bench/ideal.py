"""The best a crawler could do on the synthetic web with latency: the bound of the latency ratio.

A model crawler with unlimited requests in flight and no cost but its CPU: every page takes
``1 / rate`` seconds of one CPU (the rate crawlfleet reached at 0 ms), pages are processed in the
order their responses come in, and a page's links are requested the moment it is processed,
answered ``latency`` seconds later. Its time at 50 ms over its time at 0 ms is the highest
latency ratio any crawler with that CPU cost could show on this site: the first levels are too
small to fill the CPU while they wait, and the last pages wait for their parents.
"""

from __future__ import annotations

import heapq

from tests.support.synthetic import SiteConfig, SyntheticSite


def model_crawl(config: SiteConfig, depth: int, rate: float, latency_s: float) -> tuple[float, int]:
    """Seconds the model crawler takes for the site's pages within ``depth``, and the pages."""
    site = SyntheticSite(config, port=1)  # links only: the port never shows
    cost = 1.0 / rate
    best: dict[tuple[int, int], int] = {}
    done: set[tuple[int, int]] = set()
    responses: list[tuple[float, int, tuple[int, int]]] = []  # (answered at, depth, page)
    for host in range(config.hosts):
        best[(host, 0)] = 0
        responses.append((latency_s, 0, (host, 0)))
    heapq.heapify(responses)
    cpu_free = 0.0
    while responses:
        answered, page_depth, page = heapq.heappop(responses)
        if page in done:
            continue
        done.add(page)
        page_depth = best[page]  # a shorter path found while its request was out
        cpu_free = max(answered, cpu_free) + cost
        if page_depth == depth:
            continue
        for link in site.links(*page):
            if link not in done and best.get(link, depth + 1) > page_depth + 1:
                best[link] = page_depth + 1
                heapq.heappush(responses, (cpu_free + latency_s, page_depth + 1, link))
    return cpu_free, len(done)


def best_latency_ratio(config: SiteConfig, depth: int, rate: float, latency_s: float) -> float:
    """The model's pages/s at ``latency_s`` over its pages/s at 0 ms, at ``rate`` pages/s."""
    at_zero, _ = model_crawl(config, depth, rate, 0.0)
    with_latency, _ = model_crawl(config, depth, rate, latency_s)
    return at_zero / with_latency
