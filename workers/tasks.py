"""The arq job functions: crawl one page, fetch one robots.txt, read one sitemap, finalize one
crawl.

A job exists only when its host may be fetched: the frontier promoted it into one of the host's
slots, deferred to the host's next allowed start (``shared/lua/frontier.lua``). So a job never
waits for its host; it fetches, stores, and closes, which gives the slot to the host's next URL.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Coroutine
from dataclasses import replace
from typing import Any

import structlog
from arq import Retry
from redis.exceptions import RedisError

from shared.errors import BadSitemap, EarlierMissing, HandBack, LostTry
from shared.failures import Failure, FailureKind, sitemap_reason, status_reason
from shared.jobs import crawl_of_job, parent_url
from shared.storage import CrawlLayout
from shared.urls import is_page_link, origin_of
from workers.arq_worker import CLOSED_JOBS, LASTMOD, VERDICT, retry_wait_s
from workers.context import CTX_KEY, CrawlRules, WorkerContext
from workers.disk import storage_failure
from workers.fetch import FetchResult, excluded, failed, fetch
from workers.finalize import write_manifest, write_warc_index
from workers.frontier import Fetched, Outcome, PageJob, SitemapJob, SitemapOutcome, Verdict
from workers.parsing import Links
from workers.robots import ROBOTS_RETRY_BASE_S, ROBOTS_TTL_S, Rules, entry_of
from workers.since import (
    NOT_COMPARED,
    Against,
    EarlierCrawl,
    against,
    carry_body,
    not_requested,
    refers_body,
    revisit_of,
)
from workers.sitemaps import (
    SITEMAP_MAX_BYTES,
    SitemapEntry,
    SitemapRef,
    listed_sitemaps,
    read_sitemap,
)
from workers.store import body_sha256, store_page

log = structlog.get_logger()

# the failure of the pages of a host that a crawl gave up on (frontier.lua's adapt)
UNRESPONSIVE = Failure(FailureKind.HOST_UNRESPONSIVE)


async def _run_job(ctx: dict[str, Any], step: Coroutine[Any, Any, bool]) -> None:
    """Run one job's step within the page deadline; True from it means the job closed itself
    (arq's clean-up is done). What is not the page's fault hands the job back through arq's
    ``Retry``, so no page is closed without its files; a deadline passed or Redis failing is a
    lost try (``LostTry``), so a job that hangs every time gives up after ``job_tries``."""
    worker: WorkerContext = ctx[CTX_KEY]
    try:
        async with asyncio.timeout(worker.settings.page_deadline_s), worker.body_bytes.held():
            if await step:
                ctx[CLOSED_JOBS].add(ctx["job_id"])
    except HandBack as exc:  # no fetch turn free (NoTurn) among them
        say = log.debug if exc.routine else log.info
        say("page handed back", reason=str(exc), retry_in_s=round(exc.defer_s, 2))
        raise Retry(defer=exc.defer_s) from exc  # queued anew: not counted as a lost try
    except (RedisError, TimeoutError) as exc:
        # counted as a try: a page that hangs every time is given up on after job_tries
        reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        wait = retry_wait_s(int(ctx["job_try"]))
        log.warning("page handed back", reason=reason, retry_in_s=wait)
        raise LostTry(reason, wait) from exc


def _fetch_backoff(retried: int, result: FetchResult, base_s: float = 1.0) -> float:
    """Seconds before a transient failure is tried again: Retry-After, else exponential."""
    return result.retry_after or (base_s * 2.0**retried + random.uniform(0, 1))


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
    worker: WorkerContext = ctx[CTX_KEY]
    crawl_id = crawl_of_job(ctx["job_id"])
    job = PageJob(crawl_id, url, depth, parent_url(url, parent), hops, retried)
    verdict, lastmod = Verdict(ctx[VERDICT]), ctx.get(LASTMOD)
    with structlog.contextvars.bound_contextvars(crawl_id=crawl_id, url=url, depth=depth):
        await _run_job(
            ctx, _crawl(worker, job, int(ctx["job_try"]), verdict, unresponsive, lastmod)
        )


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
    if not await _disk_ready(worker, rules, job.crawl_id):
        return await _skip(worker, rules, job)
    ready, earlier_crawl = await _since_ready(worker, rules, job.crawl_id)
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
        if result.transient and spent < rules.spec.retries:
            backoff = _fetch_backoff(spent, result)
            log.info("page retried", reason=result.reason, retry_in_s=backoff)
            job = replace(job, retried=spent)
            return await worker.frontier.retry(job, backoff, _hold(result), fetched)
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
        await _storage_failed(worker, rules, job.crawl_id, exc)
        return await _skip(worker, rules, job)
    rules.disk.stored()
    queued = await worker.frontier.close(
        job, rules.spec.depth, _outcome(result), len(result.body), links.followed, result.reason,
        redirect, _hold(result), fetched, page.change,
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
        layout, job, result, worker.settings.worker_id, keep and not spec.warc, warc,
        links=found, change=page.change, revalidated=revalidated, body_in=body_in,
        sitemap_lastmod=page.lastmod,
    )  # fmt: skip


async def _since_ready(
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
        await _crawl_failed(worker, crawl_id, str(exc))
        return False, None


async def _skip(worker: WorkerContext, rules: CrawlRules, job: PageJob) -> bool:
    """Close the job unfetched (its crawl has ended, or it is stale); True if it was open."""
    return await worker.frontier.close(job, rules.spec.depth, "skipped", 0, []) is not None


async def _disk_ready(worker: WorkerContext, rules: CrawlRules, crawl_id: str) -> bool:
    """Whether the crawl's folder takes files (checked before its first fetch in this process,
    and again after a failure: ``workers.disk``); False if the crawl has failed for it."""
    try:
        rules.disk.check(rules.layout)
    except OSError as exc:
        await _storage_failed(worker, rules, crawl_id, exc)
        return False
    return True


async def _storage_failed(
    worker: WorkerContext, rules: CrawlRules, crawl_id: str, exc: OSError
) -> None:
    """The crawl's folder took no file: the job is handed back while a full disk may yet take
    it (``HandBack``), else the crawl fails with the reason."""
    reason = str(storage_failure(rules.layout, exc))
    if not rules.disk.gives_up(exc, worker.settings.storage_wait_s):
        raise HandBack(reason, worker.settings.pause_poll_s) from exc
    await _crawl_failed(worker, crawl_id, reason)


async def _crawl_failed(worker: WorkerContext, crawl_id: str, reason: str) -> None:
    """End the crawl as failed for ``reason`` (said once, by the worker that ended it)."""
    if await worker.frontier.fail(crawl_id, reason):
        log.error("crawl failed", reason=reason)


def _hold(result: FetchResult) -> float:
    """How long to hold every request to the host after this response: its Retry-After on a
    429 or 503."""
    if result.retry_after and result.status in (429, 503):
        return result.retry_after
    return 0.0


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
        return failed(job.url, _gave_up(tries))
    if spec.obey_robots:
        robots = await _robots_of(worker, rules, job.url)
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


def _gave_up(tries: int) -> Failure:
    detail = f"{tries - 1} tries lost (its worker stopped, hung or failed)"
    return Failure(FailureKind.GAVE_UP, detail)


async def fetch_robots(
    ctx: dict[str, Any], origin: str, retried: int = 0, unresponsive: bool = False
) -> None:
    """Fetch an origin's robots.txt for a crawl before any of its pages (see ``workers.robots``);
    ``retried`` counts its transient failures so far; ``unresponsive``: the crawl gave the host
    up, so it is not asked for (and the origin's pages fail for that reason)."""
    worker: WorkerContext = ctx[CTX_KEY]
    crawl_id = crawl_of_job(ctx["job_id"])
    with structlog.contextvars.bound_contextvars(crawl_id=crawl_id, url=f"{origin}/robots.txt"):
        job_id, verdict, tries = ctx["job_id"], Verdict(ctx[VERDICT]), int(ctx["job_try"])
        if unresponsive and verdict is Verdict.RUN:
            entry, _ = entry_of(failed(f"{origin}/robots.txt", UNRESPONSIVE))
            await _run_job(ctx, worker.frontier.robots_done(job_id, origin, entry, 0.0,
                                                            ROBOTS_TTL_S))  # fmt: skip
            return
        await _run_job(ctx, _robots(worker, job_id, crawl_id, origin, retried, verdict, tries))


async def _robots(
    worker: WorkerContext, job_id: str, crawl_id: str, origin: str, retried: int,
    verdict: Verdict, tries: int,
) -> bool:  # fmt: skip
    frontier = worker.frontier
    if verdict is Verdict.STOPPED:
        return await frontier.robots_done(job_id, origin, b"", 0.0, ROBOTS_TTL_S)
    # a paused crawl's robots.txt is fetched all the same: one request, like a page in flight
    rules = await worker.rules_for(crawl_id)
    # nothing fetched for a crawl that failed for its folder, or its earlier crawl's
    ready = await _disk_ready(worker, rules, crawl_id)
    if not (ready and (await _since_ready(worker, rules, crawl_id))[0]):
        return await frontier.robots_done(job_id, origin, b"", 0.0, ROBOTS_TTL_S)
    giving_up = tries > worker.settings.job_tries
    if giving_up:  # the origin's pages fail with this reason
        result = failed(f"{origin}/robots.txt", _gave_up(tries))
    else:
        client = await worker.client_for(rules.policy)
        result = await worker.robots.fetch(origin, client)
    entry, transient = entry_of(result)
    spent = retried + tries - 1  # lost tries count, as a page's do
    if transient and spent < rules.spec.retries and not giving_up:
        backoff = _fetch_backoff(spent, result, ROBOTS_RETRY_BASE_S)
        log.info("robots.txt retried", reason=result.reason, retry_in_s=backoff)
        return await frontier.robots_retry(job_id, origin, spent, backoff)
    parsed = await worker.robots.parse(crawl_id, origin, entry)
    delay = parsed.crawl_delay(worker.settings.robots_agent)
    log.info("robots.txt fetched", status=result.status, crawl_delay=delay or None)
    return await frontier.robots_done(job_id, origin, entry, delay, ROBOTS_TTL_S)


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
    worker: WorkerContext = ctx[CTX_KEY]
    crawl_id = crawl_of_job(ctx["job_id"])
    job = SitemapJob(crawl_id, url, level, retried, discover)
    verdict, tries = Verdict(ctx[VERDICT]), int(ctx["job_try"])
    with structlog.contextvars.bound_contextvars(crawl_id=crawl_id, url=url, sitemap_level=level):
        await _run_job(ctx, _sitemap(worker, job, verdict, tries, unresponsive))


async def _sitemap(
    worker: WorkerContext, job: SitemapJob, verdict: Verdict, tries: int, unresponsive: bool
) -> bool:
    frontier = worker.frontier
    if verdict is Verdict.STOPPED:  # nothing is counted for an ended crawl
        return await frontier.sitemap_done(job, "skipped") is not None
    rules = await worker.rules_for(job.crawl_id)
    if not await _disk_ready(worker, rules, job.crawl_id):  # the crawl has failed
        return await frontier.sitemap_done(job, "skipped") is not None
    if unresponsive:
        refused: Failure | None = UNRESPONSIVE
    elif tries > worker.settings.job_tries:
        refused = _gave_up(tries)
    else:
        refused = await _sitemap_refusal(worker, rules, job.url)
    if refused is not None:
        return await _sitemap_skipped(worker, rules, job, refused.kind, refused.detail)
    client = await worker.client_for(rules.policy)
    async with worker.turns.turn():
        with worker.metrics.request():
            result = await fetch(client, job.url, worker.settings, SITEMAP_MAX_BYTES)
    fetched = Fetched(result.duration_ms, result.ok, result.timed_out)
    spent = job.retried + tries - 1  # lost tries count, as a page's do
    if result.transient and spent < rules.spec.retries:
        backoff = _fetch_backoff(spent, result)
        log.info("sitemap retried", reason=result.reason, retry_in_s=backoff)
        return await frontier.sitemap_retry(replace(job, retried=spent), backoff, _hold(result),
                                            fetched)  # fmt: skip
    hold = _hold(result)
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
    robots = await _robots_of(worker, rules, url)
    if robots.unreachable is not None:
        return Failure(FailureKind.ROBOTS_UNREACHABLE, robots.unreachable)
    if not robots.allows(url, worker.settings.robots_agent):
        return Failure(FailureKind.ROBOTS_DISALLOWED)
    return None


async def _robots_of(worker: WorkerContext, rules: CrawlRules, url: str) -> Rules:
    client = await worker.client_for(rules.policy)
    return await worker.robots.rules(rules.spec.crawl_id, url, client)


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
        robots = await _robots_of(worker, rules, job.url)
        robots_url = f"{origin_of(job.url)}/robots.txt"
        sitemaps = [*listed_sitemaps(robots.sitemaps(), robots_url, rules.scope), *sitemaps]
    admitted = await worker.frontier.sitemap_done(
        job, outcome, pages, sitemaps, reasons, hold, fetched, lastmods=rules.spec.since is not None
    )
    if outcome == "read":
        log.info("sitemap read", index=index, urls=len(pages), queued=admitted or 0,
                 sitemaps=len(sitemaps), ignored=ignored, reasons=reasons or None)  # fmt: skip
    return admitted is not None


async def finalize_crawl(ctx: dict[str, Any], crawl_id: str) -> None:
    """Write the manifest of a crawl whose last page is done, then mark the crawl done; or
    the manifest of what a cancelled crawl had fetched."""
    worker: WorkerContext = ctx[CTX_KEY]
    with structlog.contextvars.bound_contextvars(crawl_id=crawl_id):
        layout = CrawlLayout(worker.settings.data_dir, crawl_id)
        try:
            pages = await write_manifest(layout, worker.frontier, crawl_id)
            await write_warc_index(layout)
        except OSError as exc:
            rules = await worker.rules_for(crawl_id)
            if not rules.disk.gives_up(exc, worker.settings.storage_wait_s):
                log.warning("manifest or warc index not written", reason=str(exc))
                raise Retry(defer=retry_wait_s(int(ctx["job_try"]))) from exc
            await _crawl_failed(worker, crawl_id, str(storage_failure(layout, exc)))
            return
        if await worker.frontier.finish(crawl_id, str(layout.manifest)):
            log.info("crawl done", pages=pages, manifest=str(layout.manifest))
        else:  # a cancelled crawl's manifest (or this job run again)
            log.info("manifest written", pages=pages, manifest=str(layout.manifest))
