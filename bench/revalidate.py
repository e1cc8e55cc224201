"""CPU of what a recrawl does for a page answered 304, apart from the request and the close in
Redis: ``python -m bench.revalidate [--pages N] [--rounds N]``.

Writes a finished crawl of N pages (8 KB bodies, 12 links each, an ETag each: what scenario
recrawl's site serves) with the worker's own functions, then recrawls it in a loop, as a page
job does for each page: the earlier record (``EarlierCrawl.page``), the validators, the
comparison with a 304, the body kept (``carry_body``), the links taken from the earlier record,
the body linked and the record appended (``store_page``). Each round is a crawl --since the
one before it (a recrawl of a recrawl), finalized as a worker finalizes it. Prints the CPU per
page of the loop and of finalizing, the median of the rounds. No network, no Redis (finalizing
is told every page's depth), no event loop in the way: it isolates the revalidated page's own
path, whose figures ``bench.profile --recrawl`` gives only among the samples of a whole crawl.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from crawlfleet.shared.crawl import CrawlSpec
from crawlfleet.shared.settings import Settings
from crawlfleet.shared.storage import CrawlLayout
from crawlfleet.workers.fetch import FetchResult
from crawlfleet.workers.finalize import write_manifest
from crawlfleet.workers.frontier import Frontier, PageJob
from crawlfleet.workers.record_logs import RecordLogs
from crawlfleet.workers.since import EarlierCrawl, against, carry_body
from crawlfleet.workers.store import store_page

HOSTS = 8
LINKS = 12
DEPTH = 3
BODY = b"<html><body>" + b"x" * 8150 + b"</body></html>"
HTML = "text/html; charset=utf-8"
HEADERS = [("Server", "bench"), ("Date", "Mon, 07 Dec 2026 02:11:42 GMT")]


class _Depths:
    """What finalizing asks the frontier: every page's shortest depth (all at ``DEPTH``)."""

    async def best_depths(self, crawl_id: str, fps: list[str]) -> list[int]:
        return [DEPTH] * len(fps)


def _urls(pages: int) -> list[str]:
    return [f"http://127.0.0.{2 + i % HOSTS}:8000/p/{i}.html" for i in range(pages)]


def _links(urls: list[str], i: int) -> list[str]:
    return [urls[(i * 7 + k) % len(urls)] for k in range(LINKS)]


async def _finalize(layout: CrawlLayout, crawl_id: str) -> float:
    """Finalize the crawl as its worker would; the CPU seconds it took."""
    frontier: Frontier = _Depths()  # type: ignore[assignment]  # only best_depths is asked
    start = time.process_time()
    await write_manifest(layout, frontier, crawl_id)
    return time.process_time() - start


async def _first(settings: Settings, urls: list[str]) -> None:
    layout = CrawlLayout(settings.data_dir, "first")
    with RecordLogs(settings) as logs:
        for i, url in enumerate(urls):
            headers = [*HEADERS, ("ETag", f'"e{i}"'), ("Content-Length", str(len(BODY)))]
            result = FetchResult(url=url, final_url=url, status=200, content_type=HTML,
                                 body=BODY, truncated=False, error=None, duration_ms=3,
                                 headers=headers)  # fmt: skip
            job = PageJob("first", url, DEPTH, None)
            store_page(layout, logs, job, result, settings.worker_id, links=_links(urls, i))
    await _finalize(layout, "first")


async def _again(settings: Settings, urls: list[str], crawl_id: str, since: str) -> float:
    """Recrawl every page of ``since`` as answered 304; the CPU seconds the loop took."""
    layout = CrawlLayout(settings.data_dir, crawl_id)
    spec = CrawlSpec(crawl_id=crawl_id, seeds=urls[:1], since=since)
    earlier_crawl = EarlierCrawl(settings.data_dir, since)
    try:
        with RecordLogs(settings) as logs:
            start = time.process_time()
            for url in urls:
                earlier = earlier_crawl.page(url)
                validators = earlier_crawl.validators(earlier, spec)
                headers = [*HEADERS, ("ETag", validators["If-None-Match"])]
                result = FetchResult(url=url, final_url=url, status=304, content_type=None,
                                     body=b"", truncated=False, error=None, duration_ms=1,
                                     headers=headers)  # fmt: skip
                page = against(result, earlier, True, None)
                assert page.change == "unchanged" and page.earlier is not None
                found = page.earlier.record.link_urls()
                revalidated = await carry_body(page.earlier, spec)
                job = PageJob(crawl_id, url, DEPTH, None)
                store_page(layout, logs, job, result, settings.worker_id, links=found,
                           change=page.change, revalidated=revalidated)  # fmt: skip
            return time.process_time() - start
    finally:
        earlier_crawl.close()


async def run(pages: int, rounds: int, work: Path) -> tuple[list[float], list[float]]:
    """Microseconds of CPU a page, per round: the recrawl's loop, and finalizing."""
    settings = Settings(data_dir=work / "data", worker_id="bench-1")
    urls = _urls(pages)
    await _first(settings, urls)
    loop: list[float] = []
    finalize: list[float] = []
    since = "first"
    for n in range(rounds):
        crawl_id = f"again{n}"
        loop.append(await _again(settings, urls, crawl_id, since) / pages * 1e6)
        layout = CrawlLayout(settings.data_dir, crawl_id)
        finalize.append(await _finalize(layout, crawl_id) / pages * 1e6)
        since = crawl_id
    return loop, finalize


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.revalidate", description=__doc__)
    parser.add_argument("--pages", type=int, default=2320)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--work-dir", type=Path, default=Path("/dev/shm"))
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-revalidate-", dir=args.work_dir))
    try:
        loop, finalize = asyncio.run(run(args.pages, args.rounds, work))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(
        f"{args.pages} pages answered 304, {args.rounds} rounds: the revalidated page's path "
        f"{statistics.median(loop):.1f} us a page ({' '.join(f'{x:.1f}' for x in loop)}), "
        f"finalizing {statistics.median(finalize):.1f} us a page"
    )


if __name__ == "__main__":
    main()
