"""The sitemap job: read one sitemap of a crawl that reads them (``--sitemaps``) and give its
page URLs and sitemaps to the frontier; one that cannot be read is counted with its reason and
skipped, never raised.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

import structlog

from crawlfleet.shared.errors import BadSitemap
from crawlfleet.shared.failures import Failure, FailureKind, sitemap_reason, status_reason
from crawlfleet.shared.urls import origin_of
from crawlfleet.workers.context import CrawlRules, WorkerContext
from crawlfleet.workers.fetch import fetch
from crawlfleet.workers.frontier import Fetched, SitemapJob, SitemapOutcome, Verdict
from crawlfleet.workers.jobs.gates import disk_ready, recorded, robots_of
from crawlfleet.workers.jobs.job_context import JobContext
from crawlfleet.workers.jobs.running import (
    UNRESPONSIVE,
    fetch_backoff,
    gave_up,
    hold_s,
    run_job,
    worth_retrying,
)
from crawlfleet.workers.sitemaps import (
    SITEMAP_MAX_BYTES,
    SitemapEntry,
    SitemapRef,
    listed_sitemaps,
    read_sitemap,
)

log = structlog.get_logger()


async def fetch_sitemap(
    ctx: dict[str, Any],
    url: str,
    level: int,
    retried: int = 0,
    discover: bool = False,
    unresponsive: bool = False,
) -> None:
    """Read one sitemap of a crawl that reads them (arguments as ``frontier.lua`` builds them:
    see ``SitemapJob``; ``unresponsive``: the crawl gave the host up, so no request). Its
    page URLs and sitemaps go to the frontier; a sitemap that cannot be read is counted with
    its reason and skipped, never raised."""
    run = JobContext.of(ctx)
    job = SitemapJob(run.crawl_id, url, level, retried, discover)
    step = _sitemap(run.worker, job, run.verdict, run.job_try, unresponsive)
    with structlog.contextvars.bound_contextvars(crawl_id=run.crawl_id, url=url,
                                                 sitemap_level=level):  # fmt: skip
        await run_job(run, step)


async def _sitemap(
    worker: WorkerContext, job: SitemapJob, verdict: Verdict, tries: int, unresponsive: bool
) -> bool:
    frontier = worker.frontier
    if verdict is Verdict.STOPPED:  # nothing is counted for an ended crawl
        return await frontier.sitemap_done(job, "skipped") is not None
    rules = await worker.rules_for(job.crawl_id)
    if not await disk_ready(worker, rules, job.crawl_id):  # the crawl has failed
        return await frontier.sitemap_done(job, "skipped") is not None
    if unresponsive:
        refused: Failure | None = UNRESPONSIVE
    elif tries > worker.settings.job_tries:
        refused = gave_up(tries)
    else:
        refused = await _sitemap_refusal(worker, rules, job.url)
    if refused is not None:
        return await _sitemap_skipped(worker, rules, job, refused.kind, refused.detail)
    client = await worker.client_for(rules.policy)
    async with worker.turns.turn():
        with worker.metrics.request():
            result = await fetch(client, job.url, worker.settings, SITEMAP_MAX_BYTES,
                                 exchange=rules.spec.warc)  # fmt: skip
    if not await recorded(worker, rules, result):  # the crawl has failed for its folder
        return await frontier.sitemap_done(job, "skipped") is not None
    # its raw copy (a body fetched gzip-coded) is not needed past its record
    result = replace(result, exchange=None)
    fetched = Fetched(result.duration_ms, result.ok, result.timed_out)
    spent = job.retried + tries - 1  # lost tries count, as a page's do
    if worth_retrying(result, rules.settled) and spent < rules.spec.retries:
        backoff = fetch_backoff(spent, result)
        log.info("sitemap retried", reason=result.reason, retry_in_s=backoff)
        return await frontier.sitemap_retry(replace(job, retried=spent), backoff, hold_s(result),
                                            fetched)  # fmt: skip
    hold = hold_s(result)
    if result.redirect is not None:
        if not rules.scope.covers(result.redirect):
            return await _sitemap_skipped(worker, rules, job, FailureKind.REDIRECT_OUT_OF_SCOPE,
                                          result.redirect, hold, fetched)  # fmt: skip
        log.info("sitemap redirected", redirect=result.redirect)
        moved = [SitemapRef(result.redirect, job.level)]
        return await _sitemap_close(worker, rules, job, "redirected", [], moved, [], hold, fetched)
    if job.discover and result.status in (404, 410):
        # most sites have no /sitemap.xml: not reading one that was only guessed is no error
        log.info("sitemap absent", status=result.status)
        return await _sitemap_close(worker, rules, job, "skipped", [], [], [], hold, fetched)
    if result.error is not None:
        return await _sitemap_skipped(worker, rules, job, result.error.kind, result.error.detail,
                                      hold, fetched)  # fmt: skip
    if result.status is None or not 200 <= result.status < 300:
        reason = status_reason(result.status or 0)
        return await _sitemap_skipped(worker, rules, job, reason, "", hold, fetched)
    try:
        read = await asyncio.to_thread(
            read_sitemap, result.body, result.truncated, job.url, job.level, rules.scope
        )
    except BadSitemap as exc:
        bad = exc.failure
        return await _sitemap_skipped(worker, rules, job, bad.kind, bad.detail, hold, fetched)
    except Exception as exc:  # a sitemap that breaks the parser must not break the worker
        detail = f"{type(exc).__name__}: {exc}"
        return await _sitemap_skipped(worker, rules, job, FailureKind.UNREADABLE, detail, hold,
                                      fetched)  # fmt: skip
    return await _sitemap_close(
        worker, rules, job, "read", read.pages, read.sitemaps, read.reasons, hold, fetched,
        index=read.index, ignored=read.ignored,
    )  # fmt: skip


async def _sitemap_refusal(worker: WorkerContext, rules: CrawlRules, url: str) -> Failure | None:
    """A reason not to fetch the sitemap (robots.txt), or None."""
    if not rules.spec.obey_robots:
        return None
    robots = await robots_of(worker, rules, url)
    if robots.unreachable is not None:
        return Failure(FailureKind.ROBOTS_UNREACHABLE, robots.unreachable)
    if not robots.allows(url, worker.settings.robots_agent):
        return Failure(FailureKind.ROBOTS_DISALLOWED)
    return None


async def _sitemap_skipped(
    worker: WorkerContext, rules: CrawlRules, job: SitemapJob, reason: str, detail: str = "",
    hold: float = 0.0, fetched: Fetched | None = None,
) -> bool:  # fmt: skip
    """Close a sitemap that was not read, counting ``reason`` (a kind of failure, or an error
    status: ``http 404``)."""
    log.warning("sitemap skipped", reason=str(reason), detail=detail or None)
    return await _sitemap_close(worker, rules, job, "skipped", [], [], [sitemap_reason(reason)],
                                hold, fetched)  # fmt: skip


async def _sitemap_close(
    worker: WorkerContext, rules: CrawlRules, job: SitemapJob, outcome: SitemapOutcome,
    pages: list[SitemapEntry], sitemaps: list[SitemapRef], reasons: list[str], hold: float,
    fetched: Fetched | None, *, index: bool = False, ignored: int = 0,
) -> bool:  # fmt: skip
    """Close the job, with the robots.txt Sitemap: lines of the seed's origin when it is the
    one to read them (its robots.txt is known: its host's backlog waited for it)."""
    if job.discover and rules.spec.obey_robots:
        robots = await robots_of(worker, rules, job.url)
        robots_url = f"{origin_of(job.url)}/robots.txt"
        sitemaps = [*listed_sitemaps(robots.sitemaps(), robots_url, rules.scope), *sitemaps]
    admitted = await worker.frontier.sitemap_done(
        job, outcome, pages, sitemaps, reasons, hold, fetched, lastmods=rules.spec.since is not None
    )
    if outcome == "read":
        log.info("sitemap read", index=index, urls=len(pages), queued=admitted or 0,
                 sitemaps=len(sitemaps), ignored=ignored, reasons=reasons or None)  # fmt: skip
    return admitted is not None
