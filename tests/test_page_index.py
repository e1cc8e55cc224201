"""A finished crawl's page index: where each record is by fingerprint, found in one lookup."""

from __future__ import annotations

import os
import struct
from datetime import UTC, datetime
from pathlib import Path

import pytest

from crawlfleet.shared.errors import UnreadableCrawl
from crawlfleet.shared.page_index import (
    OLD_MAGIC,
    Indexed,
    PageIndex,
    index_from_manifest,
    write_page_index,
)
from crawlfleet.shared.storage import CrawlLayout, PageRecord, RecordAt, manifest_line
from crawlfleet.shared.urls import fingerprint


def record(url: str, depth: int) -> PageRecord:
    return PageRecord(
        url=url, final_url=url, depth=depth, parent=None, status=200, content_type=None,
        length=0, sha256=None, fetched_at=datetime.now(UTC), duration_ms=0, path=None,
        fingerprint=fingerprint(url), worker="w", links=["/a"],
    )  # fmt: skip


def placed(i: int) -> RecordAt:
    """Where record ``i`` of a test is: a member of one of three logs, or a file of its own."""
    if i % 5 == 4:
        return RecordAt(None)
    return RecordAt(f"w{i % 3}-20260101000000-00000.jsonl.gz", 1000 * i + 2**33, 300 + i)


def test_every_record_is_found_at_its_depth_and_place_and_no_other(tmp_path: Path) -> None:
    """Each of 2,000 records is found with its depth, log, offset (past 4 GiB too) and
    length, or as a file of its own; fingerprints of no record are not."""
    layout = CrawlLayout(tmp_path, "c1")
    records = [record(f"http://h.test/p/{i}", i % 7) for i in range(2000)]
    write_page_index(layout, [(r, placed(i)) for i, r in enumerate(records)])
    with PageIndex(layout) as index:
        assert index.pages == 2000
        assert index.logs == [f"w{n}-20260101000000-00000.jsonl.gz" for n in range(3)]
        for i, r in enumerate(records):
            assert index.find(r.fingerprint) == Indexed(r.depth, placed(i))
        for i in range(2000, 2100):
            assert index.find(fingerprint(f"http://h.test/p/{i}")) is None
        assert index.find("0" * 16) is None and index.find("f" * 16) is None


def test_the_entries_are_read_in_order_one_by_one(tmp_path: Path) -> None:
    """``keys`` gives every entry's fingerprint in ascending order, and ``entry`` what the entry
    of that number says: what a merge of two indexes walks."""
    layout = CrawlLayout(tmp_path, "c1")
    records = [record(f"http://h.test/p/{i}", i % 7) for i in range(500)]
    write_page_index(layout, [(r, placed(i)) for i, r in enumerate(records)])
    where = {r.fingerprint: Indexed(r.depth, placed(i)) for i, r in enumerate(records)}
    with PageIndex(layout) as index:
        keys = list(index.keys())
        assert keys == sorted(bytes.fromhex(fp) for fp in where)
        assert [index.entry(n) for n in range(len(keys))] == [where[k.hex()] for k in keys]


def test_an_empty_crawl_has_an_empty_index(tmp_path: Path) -> None:
    """A crawl with no record has an index that finds nothing."""
    layout = CrawlLayout(tmp_path, "c1")
    write_page_index(layout, [])
    with PageIndex(layout) as index:
        assert index.pages == 0 and index.find("0123456789abcdef") is None


def test_an_index_written_before_the_record_logs_is_read(tmp_path: Path) -> None:
    """An index of fingerprints and depths alone (a crawl whose records are files of their
    own) finds each record's depth, as a file of its own."""
    layout = CrawlLayout(tmp_path, "c1")
    records = [record(f"http://h.test/p/{i}", i % 4) for i in range(100)]
    entries = sorted((bytes.fromhex(r.fingerprint), r.depth) for r in records)
    layout.write(layout.page_index, OLD_MAGIC + b"".join(struct.pack(">8sI", *e) for e in entries))
    with PageIndex(layout) as index:
        assert index.pages == 100
        for r in records:
            assert index.find(r.fingerprint) == Indexed(r.depth, RecordAt(None))
        assert list(index.keys()) == [fp for fp, _ in entries]
        assert [index.entry(n).depth for n in range(100)] == [d for _, d in entries]


def test_an_entry_naming_no_log_is_an_error_not_another_record(tmp_path: Path) -> None:
    """A damaged entry whose log number is past the index's logs raises ValueError."""
    layout = CrawlLayout(tmp_path, "c1")
    one = record("http://h.test/", 0)
    write_page_index(layout, [(one, RecordAt("w-20260101000000-00000.jsonl.gz", 0, 10))])
    data = bytearray(layout.page_index.read_bytes())
    data[-16:-12] = (7).to_bytes(4, "big")  # the entry's log number
    layout.write(layout.page_index, bytes(data))
    with PageIndex(layout) as index, pytest.raises(ValueError):
        index.find(one.fingerprint)


def test_the_index_of_an_older_crawl_is_made_from_its_manifest(tmp_path: Path) -> None:
    """A crawl finalized before indexes were written gets the same index from its manifest
    (whose lines leave the links out)."""
    layout = CrawlLayout(tmp_path, "old")
    records = [record(f"http://h.test/{i}", i % 3) for i in range(50)]
    manifest = b"".join(manifest_line(r) for r in records)
    assert b'"links"' not in manifest
    layout.write(layout.manifest, manifest)
    index_from_manifest(layout)
    made = layout.page_index.read_bytes()
    write_page_index(layout, [(r, RecordAt(None)) for r in records])
    assert made == layout.page_index.read_bytes()


NAMED = b"CFPIDX2\n" + struct.pack(">IH", 1, 4)


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"CFPIDX1\n" + b"x" * 5,
        b"NOTANIDX" + b"y" * 12,
        b"CFPIDX2\n" + b"\0" * 3,
        NAMED + b"../x" + b"z" * 28,  # a log name that is no name workers give
        NAMED + b"a.gz" + b"z" * 27,
    ],
)
def test_a_file_that_is_no_index_is_refused(tmp_path: Path, content: bytes) -> None:
    """A file of the wrong size or magic is not read as an index."""
    layout = CrawlLayout(tmp_path, "c1")
    layout.write(layout.page_index, content)
    with pytest.raises(UnreadableCrawl):
        PageIndex(layout)


def test_a_link_in_the_index_place_is_not_followed(tmp_path: Path) -> None:
    """The index is opened without following a link."""
    layout = CrawlLayout(tmp_path, "c1")
    write_page_index(layout, [(record("http://h.test/", 0), RecordAt(None))])
    elsewhere = tmp_path / "elsewhere.idx"
    layout.page_index.rename(elsewhere)
    os.symlink(elsewhere, layout.page_index)
    with pytest.raises(OSError):
        PageIndex(layout)
