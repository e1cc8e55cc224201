"""Closing a crawl: keep each page's shortest-depth record, write the manifest, the page index
and the WARC index, mark it done."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import structlog

from crawlfleet.shared.page_index import write_page_index
from crawlfleet.shared.storage import CrawlLayout, PageRecord, RecordAt, manifest_line
from crawlfleet.shared.warc_index import write_index
from crawlfleet.workers.frontier import Frontier


@dataclass
class Manifest:
    """What writing a crawl's manifest found: how many records it lists, and where the WARC
    response records of every whole page record are (the lengths of those members, by file
    and offset: each was written whole before its page record was appended)."""

    pages: int = 0
    warc_members: dict[str, dict[int, int]] = field(default_factory=dict)


async def write_manifest(layout: CrawlLayout, frontier: Frontier, crawl_id: str) -> Manifest:
    """Write ``manifest.jsonl`` with one record per URL, and ``pages.idx``, where each one's
    record is by fingerprint (``shared.page_index``); returns how many records it lists and
    where their WARC records are.

    A page fetched at several depths (found again by a shorter path while the crawl ran) keeps
    only the record at its shortest depth, and a page whose job ran twice the latest of its
    records at that depth; the bodies of the others are removed (and the record files of a
    crawl written before the record logs), and so are the temp files of writers killed
    mid-write. A record that cannot be read (a log's cut last member, a damaged or planted
    file) is reported and left out, and nothing it names is touched. Nothing is read or
    removed through a link (a pages folder that is one raises ``LinkRefused``). Idempotent, so
    the finalize job can safely run again.
    """
    layout.remove_temp_files()
    found = Manifest()
    by_fp: dict[str, list[tuple[RecordAt, PageRecord]]] = {}
    for where, at, record in layout.records():
        if isinstance(record, str):
            structlog.get_logger().warning("record skipped", path=where, reason=record)
            continue
        by_fp.setdefault(record.fingerprint, []).append((at, record))
        if record.warc is not None:
            ref = record.warc
            found.warc_members.setdefault(ref.filename, {})[ref.offset] = ref.length
    fps = sorted(by_fp)
    best_depths = await frontier.best_depths(crawl_id, fps)
    kept: list[tuple[PageRecord, RecordAt]] = []
    for fp, best in zip(fps, best_depths, strict=True):
        copies = by_fp[fp]
        at_best = [pr for pr in copies if pr[1].depth == best]
        # the latest of the shortest depth's copies (a job run again writes its record again)
        keep = max(
            at_best or [pr for pr in copies if pr[1].depth == min(r.depth for _, r in copies)],
            key=lambda pr: pr[1].fetched_at,
        )
        kept.append((keep[1], keep[0]))
        for copy in copies:
            if copy is not keep:
                _remove_copy(layout, copy[0], copy[1], keep[1])
    kept.sort(key=lambda ra: ra[0].url)
    layout.write(layout.manifest, b"".join(manifest_line(r) for r, _ in kept))
    # after the manifest: a crawl with an index is one a later crawl may be --since
    write_page_index(layout, kept)
    found.pages = len(kept)
    return found


def _remove_copy(layout: CrawlLayout, at: RecordAt, record: PageRecord, kept: PageRecord) -> None:
    """Remove what a record left out of the manifest has of its own: its body file, unless it
    is the kept one's, and its record file (a crawl written before the record logs)."""
    body = layout.stored_body(record)
    if body is not None and body != layout.stored_body(kept):
        layout.remove(body)
    if at.log is None and (record.fingerprint, record.depth) != (kept.fingerprint, kept.depth):
        layout.remove(layout.record_path(record.fingerprint, record.depth))


async def write_warc_index(layout: CrawlLayout, manifest: Manifest) -> None:
    """Write ``index.cdxj`` of a crawl that wrote WARC files, from the files (off the event
    loop: it reads every one; of the response records that ``manifest`` found, only their
    heads), cutting off the last record a killed writer left half-written."""
    lines, cut = await asyncio.to_thread(write_index, layout, manifest.warc_members)
    if cut:
        structlog.get_logger().warning("warc records cut off", bytes=cut)
    if lines:
        structlog.get_logger().info("warc index written", records=lines, index=str(layout.index))
