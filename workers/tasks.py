"""The arq job functions: crawl one page, finalize one crawl."""

from __future__ import annotations

from typing import Any

import structlog

from shared.storage import CrawlLayout
from workers.context import CTX_KEY, WorkerContext
from workers.fetch import FetchResult, fetch
from workers.finalize import write_manifest
from workers.frontier import PageJob, Verdict
from workers.links import charset_of, extract_hrefs, followable_links
from workers.store import store_page

log = structlog.get_logger()


async def crawl_page(
    ctx: dict[str, Any], crawl_id: str, url: str, depth: int, parent: str | None
) -> None:
    """Fetch one page, store it, queue its new links; a bad page is recorded, never raised."""
    worker: WorkerContext = ctx[CTX_KEY]
    job = PageJob(crawl_id=crawl_id, url=url, depth=depth, parent=parent)
    with structlog.contextvars.bound_contextvars(crawl_id=crawl_id, url=url, depth=depth):
        verdict = await worker.frontier.verdict(job)
        if verdict is Verdict.DONE_ALREADY:
            log.debug("page already done")
            return
        rules = await worker.rules_for(crawl_id)
        if verdict is not Verdict.RUN:
            await worker.frontier.close(job, rules.spec, "skipped", 0, [])
            log.debug("page skipped", reason=verdict.value)
            return

        settings = worker.settings
        if ctx["job_try"] > settings.job_tries:
            result = FetchResult(
                url=url, final_url=None, status=None, content_type=None, body=b"",
                truncated=False, duration_ms=0,
                error=f"gave up after {settings.job_tries} tries: its worker stopped each time",
            )  # fmt: skip
        else:
            result = await fetch(worker.client, url, settings)
        store_page(rules.layout, job, result, settings.worker_id)

        links: list[str] = []
        if result.is_html and result.final_url:
            try:
                hrefs = extract_hrefs(
                    result.body, result.final_url, charset_of(result.content_type)
                )
                links = followable_links(hrefs, rules.scope)
            except Exception as exc:  # a page that breaks the parser must not break the worker
                log.warning("links not extracted", error=f"{type(exc).__name__}: {exc}")
        queued = await worker.frontier.close(
            job, rules.spec, "fetched" if result.ok else "failed", len(result.body), links
        )
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


async def finalize_crawl(ctx: dict[str, Any], crawl_id: str) -> None:
    """Write the manifest of a crawl whose last page is done, then mark the crawl done."""
    worker: WorkerContext = ctx[CTX_KEY]
    with structlog.contextvars.bound_contextvars(crawl_id=crawl_id):
        layout = CrawlLayout(worker.settings.data_dir, crawl_id)
        pages = await write_manifest(layout, worker.frontier, crawl_id)
        if await worker.frontier.finish(crawl_id):
            log.info("crawl done", pages=pages, manifest=str(layout.manifest))
