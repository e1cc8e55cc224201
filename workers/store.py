"""Writing one fetch to the data directory: the body, then its metadata record."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

from shared.storage import CrawlLayout, PageRecord, WarcRef
from workers.fetch import FetchResult
from workers.frontier import PageJob


def store_page(
    layout: CrawlLayout,
    job: PageJob,
    result: FetchResult,
    worker: str,
    keep_body: bool = True,
    warc: WarcRef | None = None,
) -> PageRecord:
    """Write the body (if ``keep_body``; a redirect's is never read) and the record of one
    fetch, with its response headers and where its ``warc`` response record is; both
    atomically, body first.

    Names depend only on the URL's fingerprint and the depth, so a job that runs again
    overwrites its own files.
    """
    fp = job.fingerprint
    rel_body: str | None = None
    if result.ok and keep_body and result.redirect is None:
        body_path = layout.body_path(fp, job.depth, result.content_type)
        layout.write(body_path, result.body)
        rel_body = body_path.relative_to(layout.root).as_posix()
    record = PageRecord(
        url=job.url,
        final_url=result.final_url,
        depth=job.depth,
        parent=job.parent,
        status=result.status,
        content_type=result.content_type,
        length=len(result.body),
        sha256=hashlib.sha256(result.body).hexdigest() if result.ok else None,
        fetched_at=datetime.now(UTC),
        duration_ms=result.duration_ms,
        path=rel_body,
        truncated=result.truncated,
        error=result.error,
        fingerprint=fp,
        worker=worker,
        redirect=result.redirect,
        skipped=result.skipped,
        headers=result.headers,
        warc=warc,
    )
    layout.write(layout.record_path(fp, job.depth), record.model_dump_json().encode())
    return record
