"""Writing one fetch to the data directory: the body, then its metadata record (to the
process's record log)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime

from crawlfleet.shared.nofollow import link_at, write_at
from crawlfleet.shared.storage import (
    BodyRef,
    Change,
    CrawlLayout,
    PageRecord,
    WarcRef,
    body_name,
    pack_links,
    relative_path,
)
from crawlfleet.workers.fetch import FetchResult
from crawlfleet.workers.frontier import PageJob
from crawlfleet.workers.record_logs import RecordLogs


@dataclass(frozen=True, slots=True)
class LinkedBody:
    """A body file of another crawl to hard-link: its folder's descriptor and its name."""

    folder_fd: int
    name: str


@dataclass(frozen=True, slots=True)
class Revalidated:
    """A page the server says is not modified (a 304 to a recrawl's validators): the earlier
    crawl's record of it, and how this crawl keeps its body (``workers.since.carry_body``): a
    link to the earlier file, the bytes to write, or none (the earlier WARC record it refers
    to, ``body_in``, or a type the crawl does not store)."""

    earlier: PageRecord
    body: LinkedBody | bytes | None
    body_in: BodyRef | None


def body_sha256(result: FetchResult) -> str | None:
    """The SHA-256 of a response's body (None without a response)."""
    return hashlib.sha256(result.body).hexdigest() if result.ok else None


def store_page(
    layout: CrawlLayout,
    logs: RecordLogs,
    job: PageJob,
    result: FetchResult,
    worker: str,
    keep_body: bool = True,
    warc: WarcRef | None = None,
    *,
    links: list[str] | None = None,
    change: Change | None = None,
    revalidated: Revalidated | None = None,
    body_in: BodyRef | None = None,
    sitemap_lastmod: datetime | None = None,
) -> PageRecord:
    """Write the body (if ``keep_body``; a redirect's is never read) and append the record of
    one fetch to ``logs``, with its response headers, its ``links`` (all of them, before
    scope), where its ``warc`` response record is and, for a crawl --since another, its
    ``change``; the body atomically, before the record. A ``revalidated`` page takes its
    body, type, size, digest and links from the earlier crawl (``links`` are those, the
    earlier record's, which it keeps as they are); ``body_in`` is where the body of a page
    recorded as a WARC revisit is; ``sitemap_lastmod`` is the lastmod by which a page was taken
    as unchanged without a request.

    A body's name depends only on the URL's fingerprint and the depth, so a job that runs
    again overwrites its own body; its record is appended again, and finalizing keeps one.
    """
    fp = job.fingerprint
    etag, last_modified = result.header("etag"), result.header("last-modified")
    body: LinkedBody | bytes | None = None
    if revalidated is not None:
        earlier = revalidated.earlier
        content_type, length, sha256 = earlier.content_type, earlier.length, earlier.sha256
        truncated, body, body_in = earlier.truncated, revalidated.body, revalidated.body_in
        etag, last_modified = etag or earlier.etag, last_modified or earlier.last_modified
        packed = earlier.links  # the same URL's links, kept as its record keeps them
    else:
        content_type, length, sha256 = result.content_type, len(result.body), body_sha256(result)
        truncated = result.truncated
        if result.ok and keep_body and result.redirect is None:
            body = result.body
        packed = None if links is None else pack_links(job.url, links)
    name = body_name(fp, job.depth, content_type)
    if body is not None:
        bucket = logs.bodies.bucket(layout, fp)
        if isinstance(body, LinkedBody):
            link_at(body.folder_fd, body.name, bucket, name)
        else:
            write_at(bucket, name, body)
    record = PageRecord(
        url=job.url,
        final_url=result.final_url,
        depth=job.depth,
        parent=job.parent,
        status=result.status,
        content_type=content_type,
        length=length,
        sha256=sha256,
        fetched_at=datetime.now(UTC),
        duration_ms=result.duration_ms,
        path=None if body is None else relative_path(fp, name),
        truncated=truncated,
        error=None if result.error is None else str(result.error),
        kind=None if result.error is None else result.error.kind,
        fingerprint=fp,
        worker=worker,
        redirect=result.redirect,
        skipped=None if result.skipped is None else result.skipped.value,
        headers=result.headers,
        warc=warc,
        etag=etag,
        last_modified=last_modified,
        links=packed,
        change=change,
        body_in=body_in,
        sitemap_lastmod=sitemap_lastmod,
    )
    logs.append(layout, record)
    return record
