"""The pages a crawl --since another no longer reaches: those the earlier crawl had (a response
below 400, an unchanged page's 304 among them) that the new crawl has no record of at all. No
page of the new crawl linked to them within its depth, scope and caps (or it was cancelled
before it got to them); a 404 or 410 is a record, counted ``gone`` instead.

    <crawl>/unreached.jsonl   one line per such URL, in fingerprint order: its ``url``, and
                              the ``status`` and ``depth`` of the earlier crawl's record

Found when the crawl is finalized, once its ``pages.idx`` is written, by one merge of the two
crawls' page indexes (``shared.page_index``). Each is sorted by fingerprint and mapped
read-only, so the pass holds neither crawl's URLs in memory: two files of 28 bytes an entry
read in order, where a set of each crawl's URLs would hold every URL of both as a Python
string. Only the earlier record of a fingerprint the new index lacks is read (one
member of its log), for its URL and status. The file is written as its lines are found (a
temp file, then renamed over the name, as the manifest is), so a long list (a crawl cut short
by a page cap) is not held either; its lines are in fingerprint order for that reason, not by
URL as the manifest's are (each line starts with its URL: ``sort`` orders them by it).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import structlog

from crawlfleet.shared.errors import EarlierMissing
from crawlfleet.shared.page_index import PageIndex
from crawlfleet.shared.storage import CrawlLayout, PageRecord
from crawlfleet.workers.since import EarlierCrawl, EarlierPage

log = structlog.get_logger()


def unreached_pages(new: PageIndex, earlier: EarlierCrawl) -> Iterator[PageRecord]:
    """The earlier crawl's records of the pages it had that ``new`` (the index of the crawl
    since it) has no entry for, in fingerprint order; a record that cannot be read is left out
    (``EarlierCrawl.record`` warns)."""
    present = new.keys()
    have = next(present, None)
    for number, key in enumerate(earlier.index.keys()):
        while have is not None and have < key:
            have = next(present, None)
        if have == key:
            continue
        try:
            found = earlier.index.entry(number)
        except ValueError as exc:  # an entry naming no log: a damaged index
            log.warning("earlier record unreadable", record=key.hex(), reason=str(exc))
            continue
        record = earlier.record(key.hex(), found)
        if record is not None and EarlierPage(earlier, record).had:
            yield record


def unreached_line(record: PageRecord) -> bytes:
    """One line of ``unreached.jsonl``: the URL, its earlier status and depth."""
    line = {"url": record.url, "status": record.status, "depth": record.depth}
    return json.dumps(line, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"


def write_unreached(layout: CrawlLayout, earlier: EarlierCrawl) -> int:
    """Write ``unreached.jsonl`` of the crawl (its ``pages.idx`` written) against the crawl it
    is --since; returns how many lines it has. OSError if a file cannot be read or written."""
    count = 0

    def lines() -> Iterator[bytes]:
        nonlocal count
        with PageIndex(layout) as new:
            for record in unreached_pages(new, earlier):
                count += 1
                yield unreached_line(record)

    layout.write_chunks(layout.unreached, lines())
    return count


async def count_unreached(layout: CrawlLayout, since: str) -> int | None:
    """Write the crawl's ``unreached.jsonl`` against the crawl ``since`` (off the event loop:
    it reads both indexes whole); how many pages it lists, or None (a warning, no file) if that
    crawl cannot be read here any more."""

    def write() -> int:
        earlier = EarlierCrawl(layout.data_dir, since)
        try:
            return write_unreached(layout, earlier)
        finally:
            earlier.close()

    try:
        return await asyncio.to_thread(write)
    except EarlierMissing as exc:
        log.warning("unreached pages not counted", reason=str(exc))
        return None
