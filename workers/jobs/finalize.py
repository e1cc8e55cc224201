"""The finalize job: write a crawl's manifest (and WARC index, and for a crawl --since another
the pages it no longer reaches) once its last page is done, then mark it done; or the manifest
of what a cancelled crawl had fetched.
"""

from __future__ import annotations

from typing import Any

import structlog
from arq import Retry
from redis.asyncio import Redis

from crawlfleet.shared.catalog import load_spec
from crawlfleet.shared.errors import UnknownCrawl
from crawlfleet.shared.storage import CrawlLayout
from crawlfleet.workers.arq_worker import retry_wait_s
from crawlfleet.workers.disk import storage_failure
from crawlfleet.workers.finalize import write_manifest, write_warc_index
from crawlfleet.workers.jobs.gates import crawl_failed
from crawlfleet.workers.jobs.job_context import JobContext
from crawlfleet.workers.unreached import count_unreached

log = structlog.get_logger()


async def finalize_crawl(ctx: dict[str, Any], crawl_id: str) -> None:
    """Write the manifest of a crawl whose last page is done, then mark the crawl done; or
    the manifest of what a cancelled crawl had fetched."""
    run = JobContext.of(ctx)
    worker = run.worker
    with structlog.contextvars.bound_contextvars(crawl_id=crawl_id):
        layout = CrawlLayout(worker.settings.data_dir, crawl_id)
        try:
            manifest = await write_manifest(layout, worker.frontier, crawl_id)
            await write_warc_index(layout, manifest)
            since = await _since(worker.frontier.redis, crawl_id)
            unreached = None if since is None else await count_unreached(layout, since)
        except OSError as exc:
            rules = await worker.rules_for(crawl_id)
            if not rules.disk.gives_up(exc, worker.settings.storage_wait_s):
                log.warning("manifest or warc index not written", reason=str(exc))
                raise Retry(defer=retry_wait_s(run.job_try)) from exc
            await crawl_failed(worker, crawl_id, str(storage_failure(layout, exc)))
            return
        counts: dict[str, object] = {"pages": manifest.pages, "manifest": str(layout.manifest)}
        if unreached is not None:
            counts["unreached"] = unreached
        if await worker.frontier.finish(crawl_id, str(layout.manifest), unreached):
            log.info("crawl done", **counts)
        else:  # a cancelled crawl's manifest (or this job run again)
            log.info("manifest written", **counts)


async def _since(redis: Redis, crawl_id: str) -> str | None:
    """The crawl the crawl is --since, if any (none for a crawl forgotten meanwhile)."""
    try:
        return (await load_spec(redis, crawl_id)).since
    except UnknownCrawl:
        return None
