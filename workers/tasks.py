"""The arq job functions: crawl one page, finalize one crawl."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import structlog
from arq import Retry
from redis.exceptions import RedisError

from shared.crawl import CrawlSpec
from shared.jobs import crawl_of_job, parent_url
from shared.storage import CrawlLayout
from shared.urls import host_of
from workers.arq_worker import CLOSED_JOBS
from workers.context import CTX_KEY, CrawlRules, WorkerContext
from workers.fetch import FetchResult, failed, fetch
from workers.finalize import write_manifest
from workers.frontier import PageJob, Start, Verdict
from workers.links import charset_of, extract_hrefs, followable_links
from workers.politeness import HostBusy, SlotAsk
from workers.robots import RobotsUnreachable, Rules
from workers.store import store_page
from workers.turns import NoTurn

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


async def crawl_page(ctx: dict[str, Any], url: str, depth: int, parent: str | None) -> None:
    """Fetch one page, store it, queue its new links (arguments: ``shared.jobs.page_job_args``).

    A bad page is recorded, never raised. What is not the page's fault (a paused crawl, an
    unwritable data directory, a Redis outage, a hung fetch) hands the job back to the queue
    through arq's ``Retry``, so no page is closed without its files.
    """
    worker: WorkerContext = ctx[CTX_KEY]
    crawl_id = crawl_of_job(ctx["job_id"])
    job = PageJob(crawl_id=crawl_id, url=url, depth=depth, parent=parent_url(url, parent))
    with structlog.contextvars.bound_contextvars(crawl_id=crawl_id, url=url, depth=depth):
        try:
            async with asyncio.timeout(worker.settings.page_deadline_s):
                if await _crawl(worker, job):
                    ctx[CLOSED_JOBS].add(ctx["job_id"])  # arq's clean-up is done too
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


async def _crawl(worker: WorkerContext, job: PageJob) -> bool:
    """Run one page job; True if it closed it (``Frontier.close``)."""
    settings = worker.settings
    early = _early_slot(worker, job)
    start = await worker.frontier.start(job, early)
    if start.verdict is Verdict.DONE_ALREADY:
        log.debug("page already done")
        return False
    if start.verdict is Verdict.PAUSED:
        raise HandBack("crawl paused", settings.pause_poll_s, routine=True)
    rules = await worker.rules_for(job.crawl_id)
    if start.verdict is not Verdict.RUN:
        closed = await worker.frontier.close(job, rules.spec, "skipped", 0, [])
        log.debug("page skipped", reason=start.verdict.value)
        return closed is not None
    slot = early  # given back by close, or below if the job ends any other way
    try:
        try:
            refusal, delay = await _gate(worker, rules, job, start)
            if refusal is not None:
                result = refusal
            else:
                if slot is None:
                    slot = worker.politeness.ask(
                        host_of(job.url), rules.spec.per_host_concurrency, delay
                    )
                result = await _polite_fetch(worker, rules, job, start, slot)
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
                hrefs = extract_hrefs(
                    result.body,
                    result.final_url,
                    charset_of(result.content_type),
                    settings.extractor,
                )
                links = followable_links(hrefs, rules.scope, settings.max_links_per_page)
            except Exception as exc:  # a page that breaks the parser must not break the worker
                log.warning("links not extracted", error=f"{type(exc).__name__}: {exc}")
        queued = await worker.frontier.close(
            job, rules.spec, "fetched" if result.ok else "failed", len(result.body), links,
            result.reason, slot,
        )  # fmt: skip
        if slot is not None:
            worker.politeness.given_back(slot.host)
        slot = None
    finally:
        if slot is not None:
            await worker.politeness.release(slot)
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
    return queued is not None


def _host_delay(worker: WorkerContext, spec: CrawlSpec, robots: Rules | None) -> float:
    """Seconds between request starts to a host: the crawl's, or robots.txt's if longer."""
    if robots is None:
        return spec.per_host_delay
    return max(spec.per_host_delay, robots.crawl_delay(worker.settings.robots_agent))


def _early_slot(worker: WorkerContext, job: PageJob) -> SlotAsk | None:
    """The host slot to take in the job's first round trip, when this process already knows
    the crawl's limits and robots.txt allows the page; else None (asked for after the start)."""
    rules = worker.rules.get(job.crawl_id)
    if rules is None:
        return None
    robots = None
    if rules.spec.obey_robots:
        robots = worker.robots.known(job.crawl_id, job.url)
        if robots is None or not robots.allows(job.url, worker.settings.robots_agent):
            return None
    delay = _host_delay(worker, rules.spec, robots)
    return worker.politeness.ask(host_of(job.url), rules.spec.per_host_concurrency, delay)


async def _gate(
    worker: WorkerContext, rules: CrawlRules, job: PageJob, start: Start
) -> tuple[FetchResult | None, float]:
    """May the page be fetched: a refusal recorded as the page's result (too many lost tries,
    robots.txt), or None and the delay its host needs; HandBack if robots.txt is not known yet."""
    settings, spec = worker.settings, rules.spec
    if start.tries > settings.job_tries:
        reason = f"gave up: its worker stopped or hung {start.tries - 1} times fetching it"
        return failed(job.url, reason), 0.0
    robots = None
    if spec.obey_robots:
        client = await worker.client_for(rules.policy)
        try:
            robots = await worker.robots.rules(job.crawl_id, job.url, client)
        except RobotsUnreachable as exc:
            if start.retried >= spec.retries:
                return failed(job.url, f"robots.txt unreachable: {exc.reason}"), 0.0
            raise HandBack(str(exc), exc.retry_in, fetch_failed=True) from exc
        except NoTurn as exc:
            raise _no_turn(exc) from exc
        if not robots.allows(job.url, settings.robots_agent):
            return failed(job.url, "robots.txt: disallowed"), 0.0
    return None, _host_delay(worker, spec, robots)


async def _polite_fetch(
    worker: WorkerContext, rules: CrawlRules, job: PageJob, start: Start, slot: SlotAsk
) -> FetchResult:
    """Fetch in one of the host's slots, and retry transient failures (handed back with
    backoff until the crawl's retries); a 429 or 503 with Retry-After holds the host."""
    settings, spec = worker.settings, rules.spec
    try:
        # start.slot_wait_ms is start.lua's answer when the slot was asked for with the start
        await worker.politeness.take(slot, start.slot_wait_ms)
    except HostBusy as exc:
        raise HandBack(str(exc), exc.retry_in, routine=True) from exc
    client = await worker.client_for(rules.policy)
    try:
        async with worker.turns.turn():
            result = await fetch(client, job.url, settings, spec.max_bytes_per_page)
    except NoTurn as exc:
        raise _no_turn(exc) from exc
    if result.retry_after and result.status in (429, 503):
        await worker.politeness.hold(slot.host, result.retry_after)
    if result.transient and start.retried < spec.retries:
        backoff = result.retry_after or (2.0**start.retried + random.uniform(0, 1))
        raise HandBack(
            f"transient failure: {result.error or f'http {result.status}'}",
            backoff,
            fetch_failed=True,
        )
    return result


def _no_turn(exc: NoTurn) -> HandBack:
    """All the worker's fetch turns stayed busy: the job goes back to the queue for a moment
    (not the page's fault, so not counted against it)."""
    return HandBack(str(exc), random.uniform(0.5, 1.5), routine=True)


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
