"""Closing a crawl: keep each page's shortest-depth record, write the manifest, the page index
and the WARC index, mark it done."""

from __future__ import annotations

import asyncio
from pathlib import Path

import structlog

from crawlfleet.shared.page_index import write_page_index
from crawlfleet.shared.storage import CrawlLayout, PageRecord, manifest_line
from crawlfleet.shared.warc_index import write_index
from crawlfleet.workers.frontier import Frontier


async def write_manifest(layout: CrawlLayout, frontier: Frontier, crawl_id: str) -> int:
    """Write ``manifest.jsonl`` with one record per URL, and ``pages.idx``, the depth of each
    one's record by fingerprint (``shared.page_index``); returns the number of records.

    A page fetched at several depths (found again by a shorter path while the crawl ran) keeps
    only the record at its shortest depth; the others and their bodies are removed, and so are
    the temp files of writers killed mid-write. A file in the pages folder that is no record
    crawlfleet wrote (damaged, planted) is reported and left out, and nothing it names is
    touched. Nothing is read or removed through a link (a pages folder that is one raises
    ``LinkRefused``). Idempotent, so the finalize job can safely run again.
    """
    layout.remove_temp_files()
    by_fp: dict[str, list[tuple[Path, PageRecord]]] = {}
    for path, record in layout.records():
        if isinstance(record, str):
            structlog.get_logger().warning("record skipped", path=str(path), reason=record)
            continue
        by_fp.setdefault(record.fingerprint, []).append((path, record))
    fps = sorted(by_fp)
    best_depths = await frontier.best_depths(crawl_id, fps)
    kept: list[PageRecord] = []
    for fp, best in zip(fps, best_depths, strict=True):
        copies = sorted(by_fp[fp], key=lambda pr: pr[1].depth)
        keep = next((pr for pr in copies if pr[1].depth == best), copies[0])
        kept.append(keep[1])
        for path, record in copies:
            if path != keep[0]:
                _remove_copy(layout, path, record, keep[1])
    kept.sort(key=lambda r: r.url)
    layout.write(layout.manifest, b"".join(manifest_line(r) for r in kept))
    # after the manifest: a crawl with an index is one a later crawl may be --since
    write_page_index(layout, kept)
    return len(kept)


def _remove_copy(layout: CrawlLayout, path: Path, record: PageRecord, kept: PageRecord) -> None:
    body = layout.stored_body(record)
    if body is not None and body != layout.stored_body(kept):
        layout.remove(body)
    layout.remove(path)


async def write_warc_index(layout: CrawlLayout) -> None:
    """Write ``index.cdxj`` of a crawl that wrote WARC files, from the files (off the event
    loop: it reads every one), cutting off the last record a killed writer left half-written."""
    lines, cut = await asyncio.to_thread(write_index, layout)
    if cut:
        structlog.get_logger().warning("warc records cut off", bytes=cut)
    if lines:
        structlog.get_logger().info("warc index written", records=lines, index=str(layout.index))
