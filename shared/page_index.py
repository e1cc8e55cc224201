"""A finished crawl's pages by fingerprint: where a later crawl (``--since``) finds the record
of one URL in one lookup, whatever depth it was fetched at and whichever log holds it.

    <crawl>/pages.idx   MAGIC; the number of record logs (uint32) and each one's name (uint16
                        length, ASCII); then one ENTRY per record the manifest lists, sorted:
                        the fingerprint's 8 bytes, the depth of its record (uint32), its log's
                        number in that list (uint32; NO_LOG for a record file of its own), the
                        offset (uint64) and length (uint32) of its member in the log; all
                        big-endian

Written when the crawl is finalized, beside the manifest (from the same records), or from the
manifest of a crawl finalized before the index existed. An index of a crawl finalized before
the record logs (``OLD_MAGIC``: fingerprint and depth only, each record a file of its own) is
still read. Readers map the file and search it: no memory of their own per page, the page cache
shared by every worker of the machine, 20 steps for a million pages.
"""

from __future__ import annotations

import mmap
import os
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from crawlfleet.shared.errors import UnreadableCrawl
from crawlfleet.shared.storage import CrawlLayout, PageRecord, RecordAt

MAGIC = b"CFPIDX2\n"
OLD_MAGIC = b"CFPIDX1\n"
COUNT = struct.Struct(">I")
NAME_LENGTH = struct.Struct(">H")
ENTRY = struct.Struct(">8sIIQI")
OLD_ENTRY = struct.Struct(">8sI")
NO_LOG = 0xFFFFFFFF


@dataclass(frozen=True, slots=True)
class Indexed:
    """What the index says of one fingerprint: its record's depth and where the record is."""

    depth: int
    at: RecordAt


def index_bytes(pages: Iterable[tuple[str, int, RecordAt]]) -> bytes:
    """The index of (fingerprint, depth, where its record is), one per fingerprint."""
    listed = list(pages)
    logs = sorted({at.log for _, _, at in listed if at.log is not None})
    number = {name: n for n, name in enumerate(logs)}
    head = [MAGIC, COUNT.pack(len(logs))]
    for name in logs:
        encoded = name.encode("ascii")
        head += [NAME_LENGTH.pack(len(encoded)), encoded]
    entries = sorted(
        (bytes.fromhex(fp), depth, NO_LOG if at.log is None else number[at.log], at.offset,
         at.length)
        for fp, depth, at in listed
    )  # fmt: skip
    return b"".join(head) + b"".join(ENTRY.pack(*entry) for entry in entries)


def write_page_index(layout: CrawlLayout, records: Iterable[tuple[PageRecord, RecordAt]]) -> None:
    """Write the crawl's index of ``records``, each with where it is (atomically)."""
    pages = ((record.fingerprint, record.depth, at) for record, at in records)
    layout.write(layout.page_index, index_bytes(pages))


def index_from_manifest(layout: CrawlLayout) -> None:
    """Write the index of a crawl from its manifest (a crawl finalized before indexes were
    written, so before the record logs: each record is a file of its own); UnreadableCrawl if
    the manifest is not one crawlfleet wrote."""
    pages: list[tuple[str, int, RecordAt]] = []
    for number, line in enumerate(layout.read(layout.manifest).splitlines(), 1):
        try:
            record = PageRecord.model_validate_json(line)
            pages.append((record.fingerprint, record.depth, RecordAt(None)))
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
            if size < len(MAGIC):
                raise UnreadableCrawl(f"{layout.page_index} is not a page index")
            self._map = mmap.mmap(fd, size, prot=mmap.PROT_READ)
        finally:
            os.close(fd)
        try:
            self._entry, self._start, self.logs = _head(self._map, layout)
        except (UnreadableCrawl, struct.error, UnicodeDecodeError, ValueError):
            self._map.close()
            raise UnreadableCrawl(f"{layout.page_index} is not a page index") from None
        self.pages = (size - self._start) // self._entry.size

    def find(self, fingerprint: str) -> Indexed | None:
        """The depth and place of the record of ``fingerprint``, None if the crawl has none;
        ValueError if its entry names no log of the index's (a damaged file)."""
        key = bytes.fromhex(fingerprint)
        lo, hi = 0, self.pages
        data, size, start = self._map, self._entry.size, self._start
        while lo < hi:
            mid = (lo + hi) // 2
            at = start + mid * size
            found = data[at : at + 8]
            if found < key:
                lo = mid + 1
            elif found > key:
                hi = mid
            else:
                return self.entry(mid)
        return None

    def keys(self) -> Iterator[bytes]:
        """The fingerprint (8 bytes) of each entry, in the index's order (ascending): a pass
        over the mapped file, so two indexes merge with no list of either in memory."""
        data, size = self._map, self._entry.size
        for at in range(self._start, self._start + self.pages * size, size):
            yield data[at : at + 8]

    def entry(self, number: int) -> Indexed:
        """What entry ``number`` (as ``keys`` counts them) says: its record's depth and place;
        ValueError if it names no log of the index's (a damaged file)."""
        at = self._start + number * self._entry.size
        if self._entry is OLD_ENTRY:
            return Indexed(int(OLD_ENTRY.unpack_from(self._map, at)[1]), RecordAt(None))
        _, depth, log, offset, length = ENTRY.unpack_from(self._map, at)
        if log == NO_LOG:
            return Indexed(depth, RecordAt(None))
        if log >= len(self.logs):
            raise ValueError(f"entry {number} of the page index names no log")
        return Indexed(depth, RecordAt(self.logs[log], offset, length))

    def close(self) -> None:
        self._map.close()

    def __enter__(self) -> PageIndex:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _head(data: mmap.mmap, layout: CrawlLayout) -> tuple[struct.Struct, int, list[str]]:
    """The entry format of an index, where its entries start and its logs' names (each one a
    name workers give, else ValueError)."""
    magic = data[: len(MAGIC)]
    logs: list[str] = []
    if magic == OLD_MAGIC:
        entry, start = OLD_ENTRY, len(OLD_MAGIC)
    elif magic == MAGIC:
        (count,) = COUNT.unpack_from(data, len(MAGIC))
        start = len(MAGIC) + COUNT.size
        for _ in range(count):
            (length,) = NAME_LENGTH.unpack_from(data, start)
            start += NAME_LENGTH.size
            name = data[start : start + length].decode("ascii")
            layout.record_log_path(name)
            logs.append(name)
            start += length
        entry = ENTRY
    else:
        raise UnreadableCrawl("not a page index")
    if start > len(data) or (len(data) - start) % entry.size:
        raise UnreadableCrawl("not a page index")
    return entry, start, logs
