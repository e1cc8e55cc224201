"""Building and running one arq worker process from the settings."""

from __future__ import annotations

import asyncio
from typing import Any

import structlog
from arq.worker import Worker, create_worker, func

from shared.connections import arq_redis_settings, connected
from shared.errors import RedisUnavailable
from shared.jobs import CRAWL_PAGE, FINALIZE_CRAWL, deserialize, serialize
from shared.settings import Settings
from workers.context import on_shutdown, on_startup
from workers.tasks import crawl_page, finalize_crawl

log = structlog.get_logger()


def health_check_key(settings: Settings) -> str:
    """This replica's own health key (arq's default is shared by every worker on a queue)."""
    return f"{settings.queue_name}:health-check:{settings.worker_id}"


def worker_settings(settings: Settings) -> dict[str, Any]:
    """arq ``WorkerSettings`` for crawlfleet, derived from ``settings``.

    ``max_jobs`` is the concurrency (arq's default of 10 would cap every worker at 10 pages in
    flight); results are not kept, so no ``arq:result:*`` key outlives its job; payloads are
    msgpack, never pickle.
    """
    return {
        "functions": [
            # one more arq try than ours: on the last one the job records the page as failed
            func(crawl_page, name=CRAWL_PAGE, max_tries=settings.job_tries + 1),
            func(finalize_crawl, name=FINALIZE_CRAWL, max_tries=1_000),
        ],
        "queue_name": settings.queue_name,
        "redis_settings": arq_redis_settings(settings.redis_url),
        "on_startup": on_startup,
        "on_shutdown": on_shutdown,
        "ctx": {"settings": settings},
        "max_jobs": settings.concurrency,
        "poll_delay": settings.poll_delay_s,
        "job_timeout": settings.job_timeout_s,
        "keep_result": 0,
        "job_serializer": serialize,
        "job_deserializer": deserialize,
        "expires_extra_ms": settings.job_expiry_s * 1000,
        "job_completion_wait": settings.shutdown_grace_s,
        "health_check_key": health_check_key(settings),
        "health_check_interval": 10,
    }


async def wait_for_redis(settings: Settings) -> None:
    """Block until Redis answers, retrying with backoff and saying so once."""
    delay = 0.5
    warned = False
    while True:
        try:
            async with connected(settings.redis_url):
                if warned:
                    log.info("redis reachable again")
                return
        except RedisUnavailable as exc:
            if not warned:
                log.warning("waiting for redis", error=str(exc))
                warned = True
        await asyncio.sleep(delay)
        delay = min(delay * 2, 10.0)


def build_worker(settings: Settings, **overrides: Any) -> Worker:
    """An arq worker for ``settings`` (``overrides`` go to arq, e.g. ``burst=True``)."""
    return create_worker(worker_settings(settings), **overrides)


def run_worker(settings: Settings) -> None:
    """Run one worker until SIGTERM or SIGINT; in-flight pages get the grace period to finish."""
    # bound before any task exists, so every task's log lines carry the worker id
    structlog.contextvars.bind_contextvars(worker=settings.worker_id)
    asyncio.run(wait_for_redis(settings))
    build_worker(settings).run()
