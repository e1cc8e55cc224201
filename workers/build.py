"""crawlfleet's arq worker, built from the settings: its job functions, queue, hooks,
serializers and limits."""

from __future__ import annotations

from typing import Any

from arq.worker import Worker, func

from crawlfleet.shared.connections import arq_redis_settings
from crawlfleet.shared.jobs import (
    CRAWL_PAGE,
    FETCH_ROBOTS,
    FETCH_SITEMAP,
    FINALIZE_CRAWL,
    deserialize,
    serialize,
)
from crawlfleet.shared.keys import HEALTH_CHECK_INTERVAL_S, worker_health_key
from crawlfleet.shared.settings import Settings
from crawlfleet.workers.arq_worker import TURNS, FleetWorker
from crawlfleet.workers.context import LOOKUPS_KEY, METRICS_KEY, on_shutdown, on_startup
from crawlfleet.workers.dns import Lookups
from crawlfleet.workers.jobs import crawl_page, fetch_robots, fetch_sitemap, finalize_crawl
from crawlfleet.workers.metrics import WorkerMetrics
from crawlfleet.workers.turns import FetchTurns

# crawlfleet counts a job's lost tries itself (claim.lua) and records a page as failed after
# Settings.job_tries, so arq must never drop a job on its own
_ARQ_MAX_TRIES = 1_000_000


def worker_settings(
    settings: Settings, metrics: WorkerMetrics | None = None, lookups: Lookups | None = None
) -> dict[str, Any]:
    """arq ``WorkerSettings`` for crawlfleet, derived from ``settings`` (and the process's
    served ``metrics``, and the ``lookups`` of the seeds' names instead of the system's, if
    any).

    ``max_jobs`` is twice the concurrency (``Settings.jobs_held``; arq's default of 10 would
    cap every worker at 10 pages in flight) and room for ``max_parked`` jobs whose requests
    wait on slow hosts (``workers/turns.py``); results are not kept, so no ``arq:result:*`` key
    outlives its job; payloads are msgpack, never pickle; running jobs of a cancelled crawl are
    aborted.
    """
    return {
        "functions": [
            func(crawl_page, name=CRAWL_PAGE, max_tries=_ARQ_MAX_TRIES),
            func(fetch_robots, name=FETCH_ROBOTS, max_tries=_ARQ_MAX_TRIES),
            func(fetch_sitemap, name=FETCH_SITEMAP, max_tries=_ARQ_MAX_TRIES),
            func(finalize_crawl, name=FINALIZE_CRAWL, max_tries=_ARQ_MAX_TRIES),
        ],
        "queue_name": settings.queue_name,
        "redis_settings": arq_redis_settings(settings.redis_url),
        "on_startup": on_startup,
        "on_shutdown": on_shutdown,
        "ctx": {"settings": settings, METRICS_KEY: metrics, LOOKUPS_KEY: lookups},
        "max_jobs": settings.max_jobs,
        "poll_delay": settings.poll_delay_s,
        "job_timeout": settings.job_timeout_s,
        "keep_result": 0,
        "job_serializer": serialize,
        "job_deserializer": deserialize,
        "allow_abort_jobs": True,
        "job_completion_wait": settings.shutdown_grace_s,
        "health_check_key": worker_health_key(settings.queue_name, settings.worker_id),
        # arq refreshes it between batches of jobs, which can take a while under load
        "health_check_interval": HEALTH_CHECK_INTERVAL_S,
    }


def build_worker(
    settings: Settings,
    metrics: WorkerMetrics | None = None,
    lookups: Lookups | None = None,
    **overrides: Any,
) -> Worker:
    """An arq worker for ``settings``, counting into ``metrics`` and looking the seeds' names
    up with ``lookups`` if given (``overrides`` go to arq, e.g. ``burst=True``)."""
    turns = FetchTurns(settings.concurrency, settings.park_after_s, settings.max_parked)
    arq_settings = worker_settings(settings, metrics, lookups)
    arq_settings["ctx"] = {**arq_settings["ctx"], TURNS: turns}
    return FleetWorker(
        slot_lease_ms=settings.slot_lease_ms, active_jobs=settings.jobs_held, turns=turns,
        **{**arq_settings, **overrides},
    )  # fmt: skip
