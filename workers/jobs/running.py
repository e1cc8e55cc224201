"""How every job runs: within the page deadline, handed back to the queue when it cannot be
done now (``HandBack``: a full disk, no fetch turn free) or lost (``LostTry``: its deadline
passed, Redis failed), never left open; and what the jobs that fetch share: the wait before a
transient failure is tried again, how long a response holds its host, the failure of a job
whose tries were lost.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Coroutine
from typing import Any

import structlog
from arq import Retry
from redis.exceptions import RedisError

from crawlfleet.shared.errors import HandBack, LostTry
from crawlfleet.shared.failures import Failure, FailureKind
from crawlfleet.workers.arq_worker import retry_wait_s
from crawlfleet.workers.fetch import FetchResult
from crawlfleet.workers.jobs.job_context import JobContext

log = structlog.get_logger()

# the failure of the pages of a host that a crawl gave up on (frontier.lua's adapt)
UNRESPONSIVE = Failure(FailureKind.HOST_UNRESPONSIVE)


async def run_job(job: JobContext, step: Coroutine[Any, Any, bool]) -> None:
    """Run one job's step within the page deadline; True from it means the job closed itself
    (arq's clean-up is done). What is not the page's fault hands the job back through arq's
    ``Retry``, so no page is closed without its files; a deadline passed or Redis failing is a
    lost try (``LostTry``), so a job that hangs every time gives up after ``job_tries``."""
    worker = job.worker
    try:
        async with asyncio.timeout(worker.settings.page_deadline_s), worker.body_bytes.held():
            if await step:
                job.closed()
    except HandBack as exc:  # no fetch turn free (NoTurn) among them
        say = log.debug if exc.routine else log.info
        say("page handed back", reason=str(exc), retry_in_s=round(exc.defer_s, 2))
        raise Retry(defer=exc.defer_s) from exc  # queued anew: not counted as a lost try
    except (RedisError, TimeoutError) as exc:
        # counted as a try: a page that hangs every time is given up on after job_tries
        reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        wait = retry_wait_s(job.job_try)
        log.warning("page handed back", reason=reason, retry_in_s=wait)
        raise LostTry(reason, wait) from exc


def worth_retrying(
    result: FetchResult, policy_settled: bool, transient: bool | None = None
) -> bool:
    """Whether a failed fetch (a page's, a robots.txt's, a sitemap's) is tried again later.

    An address refused by the crawl's network policy is tried again only while that policy
    is not settled (a seed's name did not resolve in time, so the crawl is public for now: its
    own private hosts are allowed once the name resolves, and recording the URL as refused now
    would lose it and all it leads to); once the policy is settled, the refusal is final. Any
    other failure is tried again if it is transient, as the fetch says, or as the job reads
    it where it reads failures its own way (``transient``: a robots.txt job asks again
    whatever left the origin unreachable).
    """
    error = result.error
    if error is not None and error.kind is FailureKind.BLOCKED:
        return not policy_settled
    return result.transient if transient is None else transient


def fetch_backoff(retried: int, result: FetchResult, base_s: float = 1.0) -> float:
    """Seconds before a transient failure is tried again: Retry-After, else exponential."""
    return result.retry_after or (base_s * 2.0**retried + random.uniform(0, 1))


def hold_s(result: FetchResult) -> float:
    """How long to hold every request to the host after this response: its Retry-After on a
    429 or 503."""
    if result.retry_after and result.status in (429, 503):
        return result.retry_after
    return 0.0


def gave_up(tries: int) -> Failure:
    """The failure of a job claimed ``tries`` times, each lost: past ``job_tries`` it is
    recorded as failed rather than tried again."""
    detail = f"{tries - 1} tries lost (its worker stopped, hung or failed)"
    return Failure(FailureKind.GAVE_UP, detail)
