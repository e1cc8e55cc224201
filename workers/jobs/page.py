"""The page job: fetch one page, store it, admit its new links, close it.

A page job exists only when its host may be fetched: the frontier promoted it into one of the
host's slots, deferred to the host's next allowed start (``shared/lua/frontier.lua``). So it
never waits for its host; it fetches, stores, and closes, which gives the slot to the host's
next URL.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import structlog

from crawlfleet.shared.failures import Failure, FailureKind
from crawlfleet.shared.jobs import parent_url
from crawlfleet.shared.urls import is_page_link
from crawlfleet.workers.context import CrawlRules, WorkerContext
from crawlfleet.workers.fetch import FetchResult, excluded, failed, fetch
from crawlfleet.workers.frontier import Fetched, Outcome, PageJob, Verdict
from crawlfleet.workers.jobs.gates import disk_ready, robots_of, since_ready, storage_failed
from crawlfleet.workers.jobs.job_context import JobContext
from crawlfleet.workers.jobs.running import (
    UNRESPONSIVE,
    fetch_backoff,
    gave_up,
    hold_s,
    run_job,
    worth_retrying,
)
from crawlfleet.workers.parsing import Links
from crawlfleet.workers.since import (
    NOT_COMPARED,
    Against,
    against,
    carry_body,
    not_requested,
    refers_body,
    revisit_of,
)
from crawlfleet.workers.store import body_sha256, store_page

log = structlog.get_logger()


async def crawl_page(
    ctx: dict[str, Any],
    url: str,
    depth: int,
    parent: str | None = None,
    hops: int = 0,
    retried: int = 0,
    delay_ms: int = 0,
    unresponsive: bool = False,
) -> None:
    """Fetch one page, store it, admit its new links (arguments as ``frontier.lua`` builds
    them: see ``PageJob``; ``delay_ms``, its host's delay between request starts, is claim.lua's
    to keep; ``unresponsive``: the crawl gave the host up, so the page is recorded as failed
    without a request). A bad page is recorded, never raised."""
    run = JobContext.of(ctx)
    job = PageJob(run.crawl_id, url, depth, parent_url(url, parent), hops, retried)
    step = _crawl(run.worker, job, run.job_try, run.verdict, unresponsive, run.lastmod)
    with structlog.contextvars.bound_contextvars(crawl_id=run.crawl_id, url=url, depth=depth):
        await run_job(run, step)


async def _crawl(
    worker: WorkerContext,
    job: PageJob,
    tries: int,
    verdict: Verdict,
    unresponsive: bool,
    lastmod_s: int | None = None,
) -> bool:
    """Run one page job (claimed ``tries`` times without a close: more than one means a
    worker died or hung running it; ``lastmod_s``: its URL's sitemap lastmod, as claim.lua
    gave it); True if it closed it (or gave it back to the frontier)."""
    if verdict is Verdict.PAUSED:
        return await worker.frontier.requeue(job)
    rules = await worker.rules_for(job.crawl_id)
    if verdict is not Verdict.RUN:
        log.debug("page skipped", reason=verdict.value)
        return await _skip(worker, rules, job)
    if not await disk_ready(worker, rules, job.crawl_id):
        return await _skip(worker, rules, job)
    ready, earlier_crawl = await since_ready(worker, rules, job.crawl_id)
    if not ready:
        return await _skip(worker, rules, job)
    fetched, earlier, validators, page = None, None, {}, None
    if unresponsive:  # the crawl gave the host up: no request
        result: FetchResult | None = failed(job.url, UNRESPONSIVE)
    else:
        result = await _refusal(worker, rules, job, tries)
    if result is None and earlier_crawl is not None:
        earlier = earlier_crawl.page(job.url)
        lastmod = earlier_crawl.unchanged_by(earlier, lastmod_s, rules.spec)
        if lastmod is not None and earlier is not None:  # its sitemap says it is unchanged
            result, page = not_requested(job.url, earlier, lastmod)
        else:
            validators = earlier_crawl.validators(earlier, rules.spec)
    if result is None:
        result = await _fetch(worker, rules, job, validators)
        fetched = Fetched(result.duration_ms, result.ok, result.timed_out)
        # lost tries (a worker that died or hung mid-fetch) may each have sent a request:
        # they count against the same budget, so a URL draws at most retries + 1 of them
        spent = job.retried + tries - 1
        if worth_retrying(result, rules.settled) and spent < rules.spec.retries:
            backoff = fetch_backoff(spent, result)
            log.info("page retried", reason=result.reason, retry_in_s=backoff)
            job = replace(job, retried=spent)
            return await worker.frontier.retry(job, backoff, hold_s(result), fetched)
    redirect, target = None, result.redirect
    if target is not None:
        if job.hops >= worker.settings.max_redirects:
            hops = Failure(FailureKind.TOO_MANY_REDIRECTS, f"{job.hops + 1} in a row")
            result = replace(result, error=hops)
        elif rules.scope.allows(target) and is_page_link(target):
            redirect = target  # admitted at the page's depth, one hop more
    if page is None:
        page = NOT_COMPARED
        if earlier_crawl is not None:
            page = against(result, earlier, bool(validators), body_sha256(result))
    links = await _links_of(worker, rules, result, page)
    try:
        await _keep(worker, rules, job, result, page, links.found)
    except OSError as exc:
        await storage_failed(worker, rules, job.crawl_id, exc)
        return await _skip(worker, rules, job)
    rules.disk.stored()
    queued = await worker.frontier.close(
        job, rules.spec.depth, _outcome(result), len(result.body), links.followed, result.reason,
        redirect, hold_s(result), fetched, page.change,
    )  # fmt: skip
    _log_page(result, links.followed, queued, page)
    worker.metrics.closed(job.crawl_id, result)
    return queued is not None


async def _links_of(
    worker: WorkerContext, rules: CrawlRules, result: FetchResult, page: Against
) -> Links:
    """The page's links: an unchanged page's are its earlier record's (no parse), a 2xx
    response that is no HTML page has none; else they are read from the body."""
    earlier = page.earlier.record.link_urls() if page.earlier is not None else None
    if page.change == "unchanged" and earlier is not None:
        return Links(earlier, worker.links.followed(earlier, rules.scope))
    links = await worker.links.of(result, rules.scope)
    if links.found is None and result.status is not None and 200 <= result.status < 300:
        return Links([], links.followed)
    return links


async def _keep(
    worker: WorkerContext,
    rules: CrawlRules,
    job: PageJob,
    result: FetchResult,
    page: Against,
    found: list[str] | None,
) -> None:
    """Write the page's WARC records (a revisit for an unchanged page, if it can refer to the
    earlier capture; the revisit alone for a page not requested), body and record; a 304's
    body comes from the earlier crawl. OSError if the crawl's folder takes no file."""
    spec, layout = rules.spec, rules.layout
    revalidated, content_type = None, result.content_type
    if page.not_modified and page.earlier is not None:
        revalidated = await carry_body(page.earlier, spec)
        content_type = page.earlier.record.content_type
    keep = spec.stores(content_type)
    warc, body_in = None, None
    # a redirect has no body to keep or leave out: its record says where it pointed
    if result.exchange is not None and (keep or result.redirect is not None):
        refers = await revisit_of(page, result)
        warc = await worker.warcs.write(layout, spec, result, refers)
        body_in = refers_body(page, refers)
    elif page.lastmod is not None and keep and spec.warc:
        refers = await revisit_of(page, result)
        if refers is not None:
            warc = await worker.warcs.write_unrequested(layout, spec, job.url, refers)
            body_in = refers_body(page, refers)
    store_page(
        layout, worker.records, job, result, worker.settings.worker_id, keep and not spec.warc,
        warc, links=found, change=page.change, revalidated=revalidated, body_in=body_in,
        sitemap_lastmod=page.lastmod,
    )  # fmt: skip


async def _skip(worker: WorkerContext, rules: CrawlRules, job: PageJob) -> bool:
    """Close the job unfetched (its crawl has ended, or it is stale); True if it was open."""
    return await worker.frontier.close(job, rules.spec.depth, "skipped", 0, []) is not None


def _outcome(result: FetchResult) -> Outcome:
    """How the frontier counts the page: excluded by robots.txt is no failure."""
    if result.skipped is not None:
        return "excluded"
    return "fetched" if result.ok else "failed"


def _log_page(result: FetchResult, links: list[str], queued: int | None, page: Against) -> None:
    if page.lastmod is not None:
        lastmod = page.lastmod.isoformat()
        log.info("page not requested", reason="sitemap lastmod", change=page.change,
                 lastmod=lastmod, links=len(links), queued=queued or 0)  # fmt: skip
        return
    change = page.change
    fields: dict[str, Any] = {
        "status": result.status,
        "bytes": len(result.body),
        "duration_ms": result.duration_ms,
        "links": len(links),
        "queued": queued or 0,
    }
    if change is not None:
        fields["change"] = change
    if result.redirect:
        fields["redirect"] = result.redirect
    if result.truncated:
        fields["truncated"] = True
    if result.skipped is not None:
        log.info("page excluded", reason=result.skipped.value, kind=result.skipped.value)
    elif result.error is None:
        log.info("page fetched", **fields)
    else:
        failure = result.error
        log.warning("page failed", **fields, reason=str(failure), kind=failure.kind.value)


async def _refusal(
    worker: WorkerContext, rules: CrawlRules, job: PageJob, tries: int
) -> FetchResult | None:
    """A reason not to fetch the page, recorded as its result (too many lost tries,
    robots.txt), or None."""
    settings, spec = worker.settings, rules.spec
    if tries > settings.job_tries:
        return failed(job.url, gave_up(tries))
    if spec.obey_robots:
        robots = await robots_of(worker, rules, job.url)
        if robots.unreachable is not None:
            return failed(job.url, Failure(FailureKind.ROBOTS_UNREACHABLE, robots.unreachable))
        if not robots.allows(job.url, settings.robots_agent):
            return excluded(job.url, FailureKind.ROBOTS_DISALLOWED)
    return None


async def _fetch(
    worker: WorkerContext, rules: CrawlRules, job: PageJob, headers: dict[str, str]
) -> FetchResult:
    """Fetch the page in one of the worker's fetch turns (with ``headers``: validators)."""
    client = await worker.client_for(rules.policy)
    async with worker.turns.turn():
        with worker.metrics.request():
            return await fetch(
                client, job.url, worker.settings, rules.spec.max_bytes_per_page,
                exchange=rules.spec.warc, headers=headers or None,
            )  # fmt: skip
