"""What a job looks at before it fetches: whether its crawl's folder takes files and its
earlier crawl (``--since``) can be read here (a crawl that fails either fails as a whole, with
the reason), and the robots.txt rules of its URL.
"""

from __future__ import annotations

from functools import partial

import structlog

from crawlfleet.shared.errors import EarlierMissing, HandBack
from crawlfleet.workers.context import CrawlRules, WorkerContext
from crawlfleet.workers.disk import storage_failure
from crawlfleet.workers.fetch import FetchResult
from crawlfleet.workers.robots import Rules
from crawlfleet.workers.since import EarlierCrawl

log = structlog.get_logger()


async def since_ready(
    worker: WorkerContext, rules: CrawlRules, crawl_id: str
) -> tuple[bool, EarlierCrawl | None]:
    """Whether a job of the crawl may go on, and, for a crawl --since another, that crawl as
    this process reads it; (False, None) if the crawl has failed for it (not readable here)."""
    since = rules.spec.since
    if since is None:
        return True, None
    try:
        return True, await worker.earlier.get(since)
    except EarlierMissing as exc:
        await crawl_failed(worker, crawl_id, str(exc))
        return False, None


async def disk_ready(worker: WorkerContext, rules: CrawlRules, crawl_id: str) -> bool:
    """Whether the crawl's folder takes files (checked before its first fetch in this process,
    and again after a failure: ``workers.disk``); False if the crawl has failed for it."""
    try:
        rules.disk.check(rules.layout, bodies=not rules.spec.warc)
    except OSError as exc:
        await storage_failed(worker, rules, crawl_id, exc)
        return False
    return True


async def storage_failed(
    worker: WorkerContext, rules: CrawlRules, crawl_id: str, exc: OSError
) -> None:
    """The crawl's folder took no file: the job is handed back while a full disk may yet take
    it (``HandBack``), else the crawl fails with the reason."""
    reason = str(storage_failure(rules.layout, exc))
    if not rules.disk.gives_up(exc, worker.settings.storage_wait_s):
        raise HandBack(reason, worker.settings.pause_poll_s) from exc
    await crawl_failed(worker, crawl_id, reason)


async def crawl_failed(worker: WorkerContext, crawl_id: str, reason: str) -> None:
    """End the crawl as failed for ``reason`` (said once, by the worker that ended it)."""
    if await worker.frontier.fail(crawl_id, reason):
        log.error("crawl failed", reason=reason)


async def robots_of(worker: WorkerContext, rules: CrawlRules, url: str) -> Rules:
    """The robots.txt rules of ``url``'s origin in the crawl (``workers.robots``); fetched
    again if Redis lost them, and then recorded in a crawl's WARC files as its robots.txt job
    records it."""
    client = await worker.client_for(rules.policy)
    record = partial(recorded, worker, rules) if rules.spec.warc else None
    return await worker.robots.rules(rules.spec.crawl_id, url, client, record)


async def recorded(worker: WorkerContext, rules: CrawlRules, result: FetchResult) -> bool:
    """Write a robots.txt or sitemap fetch to the crawl's WARC files if it kept its exchange
    (the crawl writes WARC, and a response came, whatever its status, as for a page); False
    if the crawl has failed for it: one that finds no room is a storage failure, as a page's
    (the job is handed back, ``HandBack``, or the crawl fails)."""
    if result.exchange is None:
        return True
    try:
        await worker.warcs.write(rules.layout, rules.spec, result)
    except OSError as exc:
        await storage_failed(worker, rules, rules.spec.crawl_id, exc)
        return False
    rules.disk.stored()
    return True
