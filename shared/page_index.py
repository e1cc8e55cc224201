"""A finished crawl's pages by fingerprint: where a later crawl (``--since``) finds the record
of one URL in one lookup, whatever depth it was fetched at.

    <crawl>/pages.idx   MAGIC, then one ENTRY per record the manifest lists, sorted: the
                        fingerprint's 8 bytes, the depth of its record (uint32, big-endian)

Written when the crawl is finalized, beside the manifest (from the same records), or from the
manifest of a crawl finalized before the index existed. Readers map the file and search it:
no memory of its own per page, the page cache shared by every worker of the machine, 20 steps
for a million pages.
"""

from __future__ import annotations

import mmap
import os
import struct
from collections.abc import Iterable

from crawlfleet.shared.errors import UnreadableCrawl
from crawlfleet.shared.storage import CrawlLayout, PageRecord

MAGIC = b"CFPIDX1\n"
ENTRY = struct.Struct(">8sI")


def index_bytes(pages: Iterable[tuple[str, int]]) -> bytes:
    """The index of (fingerprint, depth) pairs, one per fingerprint."""
    entries = sorted((bytes.fromhex(fp), depth) for fp, depth in pages)
    return MAGIC + b"".join(ENTRY.pack(fp, depth) for fp, depth in entries)


def write_page_index(layout: CrawlLayout, records: Iterable[PageRecord]) -> None:
    """Write the crawl's index of ``records`` (atomically)."""
    layout.write(layout.page_index, index_bytes((r.fingerprint, r.depth) for r in records))


def index_from_manifest(layout: CrawlLayout) -> None:
    """Write the index of a crawl from its manifest (a crawl finalized before indexes were
    written); UnreadableCrawl if the manifest is not one crawlfleet wrote."""
    pages: list[tuple[str, int]] = []
    for number, line in enumerate(layout.read(layout.manifest).splitlines(), 1):
        try:
            record = PageRecord.model_validate_json(line)
            pages.append((record.fingerprint, record.depth))
        except ValueError:
            why = f"{layout.manifest}: line {number} is not a page record"
            raise UnreadableCrawl(why) from None
    layout.write(layout.page_index, index_bytes(pages))


class PageIndex:
    """The index of one crawl, mapped read-only; OSError if it cannot be opened, UnreadableCrawl
    if it is not an index."""

    def __init__(self, layout: CrawlLayout) -> None:
        fd = layout.open_fd(layout.page_index)
        try:
            size = os.fstat(fd).st_size
            if size < len(MAGIC) or (size - len(MAGIC)) % ENTRY.size:
                raise UnreadableCrawl(f"{layout.page_index} is not a page index")
            self._map = mmap.mmap(fd, size, prot=mmap.PROT_READ)
        finally:
            os.close(fd)
        if self._map[: len(MAGIC)] != MAGIC:
            self._map.close()
            raise UnreadableCrawl(f"{layout.page_index} is not a page index")
        self.pages = (size - len(MAGIC)) // ENTRY.size

    def depth(self, fingerprint: str) -> int | None:
        """The depth of the record of ``fingerprint``, None if the crawl has none."""
        key = bytes.fromhex(fingerprint)
        lo, hi = 0, self.pages
        data = self._map
        while lo < hi:
            mid = (lo + hi) // 2
            at = len(MAGIC) + mid * ENTRY.size
            found = data[at : at + 8]
            if found < key:
                lo = mid + 1
            elif found > key:
                hi = mid
            else:
                return int(ENTRY.unpack_from(data, at)[1])
        return None

    def close(self) -> None:
        self._map.close()

    def __enter__(self) -> PageIndex:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
