"""The robots.txt job: fetch an origin's robots.txt for a crawl before any of its pages (its
host's backlog waits behind it), try it again while it is unreachable, then keep it in Redis
and open the backlog (``workers.robots`` reads and parses it).
"""

from __future__ import annotations

from typing import Any

import structlog

from crawlfleet.workers.context import WorkerContext
from crawlfleet.workers.fetch import failed
from crawlfleet.workers.frontier import Fetched, Verdict
from crawlfleet.workers.jobs.gates import disk_ready, recorded, since_ready
from crawlfleet.workers.jobs.job_context import JobContext
from crawlfleet.workers.jobs.running import (
    UNRESPONSIVE,
    fetch_backoff,
    gave_up,
    run_job,
    worth_retrying,
)
from crawlfleet.workers.robots import ROBOTS_RETRY_BASE_S, ROBOTS_TTL_S, entry_of

log = structlog.get_logger()


async def fetch_robots(
    ctx: dict[str, Any], origin: str, retried: int = 0, unresponsive: bool = False
) -> None:
    """Fetch an origin's robots.txt for a crawl before any of its pages (see ``workers.robots``);
    ``retried`` counts its transient failures so far; ``unresponsive``: the crawl gave the host
    up, so it is not asked for (and the origin's pages fail for that reason)."""
    run = JobContext.of(ctx)
    worker, job_id, crawl_id = run.worker, run.job_id, run.crawl_id
    with structlog.contextvars.bound_contextvars(crawl_id=crawl_id, url=f"{origin}/robots.txt"):
        if unresponsive and run.verdict is Verdict.RUN:
            entry, _ = entry_of(failed(f"{origin}/robots.txt", UNRESPONSIVE))
            await run_job(run, worker.frontier.robots_done(job_id, origin, entry, 0.0,
                                                           ROBOTS_TTL_S))  # fmt: skip
            return
        await run_job(run, _robots(worker, job_id, crawl_id, origin, retried, run.verdict,
                                   run.job_try))  # fmt: skip


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
    ready = await disk_ready(worker, rules, crawl_id)
    if not (ready and (await since_ready(worker, rules, crawl_id))[0]):
        return await frontier.robots_done(job_id, origin, b"", 0.0, ROBOTS_TTL_S)
    giving_up = tries > worker.settings.job_tries
    fetched = None
    if giving_up:  # the origin's pages fail with this reason
        result = failed(f"{origin}/robots.txt", gave_up(tries))
    else:
        client = await worker.client_for(rules.policy)
        result = await worker.robots.fetch(origin, client, exchange=rules.spec.warc)
        if not await recorded(worker, rules, result):  # the crawl has failed for its folder
            return await frontier.robots_done(job_id, origin, b"", 0.0, ROBOTS_TTL_S)
        # what the host's adaptive politeness learns, as from a page: a timeout is a strike
        fetched = Fetched(result.duration_ms, result.ok, result.timed_out)
    entry, unreachable = entry_of(result)
    spent = retried + tries - 1  # lost tries count, as a page's do
    retry = worth_retrying(result, rules.settled, unreachable)
    if retry and spent < rules.spec.retries and not giving_up:
        backoff = fetch_backoff(spent, result, ROBOTS_RETRY_BASE_S)
        log.info("robots.txt retried", reason=result.reason, retry_in_s=backoff)
        return await frontier.robots_retry(job_id, origin, spent, backoff, fetched)
    parsed = await worker.robots.parse(crawl_id, origin, entry)
    delay = parsed.crawl_delay(worker.settings.robots_agent)
    log.info("robots.txt fetched", status=result.status, crawl_delay=delay or None)
    return await frontier.robots_done(job_id, origin, entry, delay, ROBOTS_TTL_S, fetched)
