"""The arq job functions: crawl one page, finalize one crawl."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import structlog
from arq import Retry
from redis.exceptions import RedisError

from shared.storage import CrawlLayout
from shared.urls import host_of
from workers.context import CTX_KEY, CrawlRules, WorkerContext
from workers.fetch import FetchResult, failed, fetch
from workers.finalize import write_manifest
from workers.frontier import PageJob, Start, Verdict
from workers.links import charset_of, extract_hrefs, followable_links
from workers.politeness import HostBusy
from workers.robots import RobotsUnreachable
from workers.store import store_page

log = structlog.get_logger()


class HandBack(Exception):
    """The job cannot be done now: put it back on the queue to run ``defer`` seconds later.

    ``fetch_failed`` marks a transient fetch failure, counted against the crawl's retries;
    ``routine`` hand-backs (a busy host, a paused crawl) are logged at debug level only.
    """

    def __init__(
        self, reason: str, defer: float, *, fetch_failed: bool = False, routine: bool = False
    ) -> None:
        super().__init__(reason)
        self.defer = defer
        self.fetch_failed = fetch_failed
        self.routine = routine


async def crawl_page(
    ctx: dict[str, Any], crawl_id: str, url: str, depth: int, parent: str | None
) -> None:
    """Fetch one page, store it, queue its new links.

    A bad page is recorded, never raised. What is not the page's fault (a paused crawl, an
    unwritable data directory, a Redis outage, a hung fetch) hands the job back to the queue
    through arq's ``Retry``, so no page is closed without its files.
    """
    worker: WorkerContext = ctx[CTX_KEY]
    job = PageJob(crawl_id=crawl_id, url=url, depth=depth, parent=parent)
    with structlog.contextvars.bound_contextvars(crawl_id=crawl_id, url=url, depth=depth):
        try:
            async with asyncio.timeout(worker.settings.page_deadline_s):
                await _crawl(worker, job)
        except HandBack as exc:
            say = log.debug if exc.routine else log.info
            say("page handed back", reason=str(exc), retry_in_s=round(exc.defer, 2))
            raise Retry(defer=exc.defer) from exc
        except (RedisError, TimeoutError) as exc:
            # counted as a try: a page that hangs every time is given up on after job_tries
            reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            log.warning("page handed back", reason=reason, retry_in_s=_backoff(ctx))
            raise Retry(defer=_backoff(ctx)) from exc


def _backoff(ctx: dict[str, Any]) -> float:
    return float(min(60, 2 ** min(int(ctx.get("job_try", 1)), 6)))


async def _crawl(worker: WorkerContext, job: PageJob) -> None:
    settings = worker.settings
    start = await worker.frontier.start(job)
    if start.verdict is Verdict.DONE_ALREADY:
        log.debug("page already done")
        return
    if start.verdict is Verdict.PAUSED:
        raise HandBack("crawl paused", settings.pause_poll_s, routine=True)
    rules = await worker.rules_for(job.crawl_id)
    if start.verdict is not Verdict.RUN:
        await worker.frontier.close(job, rules.spec, "skipped", 0, [])
        log.debug("page skipped", reason=start.verdict.value)
        return
    try:
        result = await _polite_fetch(worker, rules, job, start)
        try:
            keep_body = rules.spec.stores(result.content_type)
            store_page(rules.layout, job, result, settings.worker_id, keep_body)
        except OSError as exc:
            raise HandBack(f"not stored: {exc}", settings.pause_poll_s) from exc
    except HandBack as exc:
        await worker.frontier.hand_back(job, fetch_failed=exc.fetch_failed)
        raise

    links: list[str] = []
    if result.is_html and result.final_url:
        try:
            hrefs = extract_hrefs(result.body, result.final_url, charset_of(result.content_type))
            links = followable_links(hrefs, rules.scope, settings.max_links_per_page)
        except Exception as exc:  # a page that breaks the parser must not break the worker
            log.warning("links not extracted", error=f"{type(exc).__name__}: {exc}")
    queued = await worker.frontier.close(
        job, rules.spec, "fetched" if result.ok else "failed", len(result.body), links,
        result.reason,
    )  # fmt: skip
    fields = {
        "status": result.status,
        "bytes": len(result.body),
        "duration_ms": result.duration_ms,
        "links": len(links),
        "queued": queued or 0,
    }
    if result.ok:
        log.info("page fetched", **fields, **({"truncated": True} if result.truncated else {}))
    else:
        log.warning("page failed", **fields, reason=result.error)


async def _polite_fetch(
    worker: WorkerContext, rules: CrawlRules, job: PageJob, start: Start
) -> FetchResult:
    """Fetch as the crawl's politeness allows: robots.txt, per-host slots and delay, and
    retries of transient failures (handed back with backoff until the crawl's retries)."""
    settings, spec = worker.settings, rules.spec
    if start.tries > settings.job_tries:
        return failed(
            job.url, f"gave up: its worker stopped or hung {start.tries - 1} times fetching it"
        )
    client = await worker.client_for(rules.policy)
    delay = spec.per_host_delay
    if spec.obey_robots:
        try:
            robots = await worker.robots.rules(job.crawl_id, job.url, client)
        except RobotsUnreachable as exc:
            if start.retried >= spec.retries:
                return failed(job.url, f"robots.txt unreachable: {exc.reason}")
            raise HandBack(str(exc), exc.retry_in, fetch_failed=True) from exc
        if not robots.allows(job.url, settings.robots_agent):
            return failed(job.url, "robots.txt: disallowed")
        delay = max(delay, robots.crawl_delay(settings.robots_agent))
    host = host_of(job.url)
    try:
        async with worker.politeness.slot(host, spec.per_host_concurrency, delay):
            result = await fetch(client, job.url, settings, spec.max_bytes_per_page)
    except HostBusy as exc:
        raise HandBack(str(exc), exc.retry_in, routine=True) from exc
    if result.retry_after and result.status in (429, 503):
        await worker.politeness.hold(host, result.retry_after)
    if result.transient and start.retried < spec.retries:
        backoff = result.retry_after or (2.0**start.retried + random.uniform(0, 1))
        raise HandBack(
            f"transient failure: {result.error or f'http {result.status}'}",
            backoff,
            fetch_failed=True,
        )
    return result


async def finalize_crawl(ctx: dict[str, Any], crawl_id: str) -> None:
    """Write the manifest of a crawl whose last page is done, then mark the crawl done."""
    worker: WorkerContext = ctx[CTX_KEY]
    with structlog.contextvars.bound_contextvars(crawl_id=crawl_id):
        layout = CrawlLayout(worker.settings.data_dir, crawl_id)
        try:
            pages = await write_manifest(layout, worker.frontier, crawl_id)
        except OSError as exc:
            log.warning("manifest not written", reason=str(exc))
            raise Retry(defer=_backoff(ctx)) from exc
        if await worker.frontier.finish(crawl_id):
            log.info("crawl done", pages=pages, manifest=str(layout.manifest))
