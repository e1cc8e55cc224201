"""A finished crawl's page index: each record's depth by fingerprint, found in one lookup."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from crawlfleet.shared.errors import UnreadableCrawl
from crawlfleet.shared.page_index import PageIndex, index_from_manifest, write_page_index
from crawlfleet.shared.storage import CrawlLayout, PageRecord, manifest_line
from crawlfleet.shared.urls import fingerprint


def record(url: str, depth: int) -> PageRecord:
    return PageRecord(
        url=url, final_url=url, depth=depth, parent=None, status=200, content_type=None,
        length=0, sha256=None, fetched_at=datetime.now(UTC), duration_ms=0, path=None,
        fingerprint=fingerprint(url), worker="w", links=["/a"],
    )  # fmt: skip


def test_every_record_is_found_at_its_depth_and_no_other(tmp_path: Path) -> None:
    """Each of 2,000 records is found with its depth; fingerprints of no record are not."""
    layout = CrawlLayout(tmp_path, "c1")
    records = [record(f"http://h.test/p/{i}", i % 7) for i in range(2000)]
    write_page_index(layout, records)
    assert layout.page_index.stat().st_size == 8 + 12 * 2000
    with PageIndex(layout) as index:
        assert index.pages == 2000
        for r in records:
            assert index.depth(r.fingerprint) == r.depth
        for i in range(2000, 2100):
            assert index.depth(fingerprint(f"http://h.test/p/{i}")) is None
        assert index.depth("0" * 16) is None and index.depth("f" * 16) is None


def test_an_empty_crawl_has_an_empty_index(tmp_path: Path) -> None:
    """A crawl with no record has an index that finds nothing."""
    layout = CrawlLayout(tmp_path, "c1")
    write_page_index(layout, [])
    with PageIndex(layout) as index:
        assert index.pages == 0 and index.depth("0123456789abcdef") is None


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
    write_page_index(layout, records)
    assert made == layout.page_index.read_bytes()


@pytest.mark.parametrize("content", [b"", b"CFPIDX1\n" + b"x" * 5, b"NOTANIDX" + b"y" * 12])
def test_a_file_that_is_no_index_is_refused(tmp_path: Path, content: bytes) -> None:
    """A file of the wrong size or magic is not read as an index."""
    layout = CrawlLayout(tmp_path, "c1")
    layout.write(layout.page_index, content)
    with pytest.raises(UnreadableCrawl):
        PageIndex(layout)


def test_a_link_in_the_index_place_is_not_followed(tmp_path: Path) -> None:
    """The index is opened without following a link."""
    layout = CrawlLayout(tmp_path, "c1")
    write_page_index(layout, [record("http://h.test/", 0)])
    elsewhere = tmp_path / "elsewhere.idx"
    layout.page_index.rename(elsewhere)
    os.symlink(elsewhere, layout.page_index)
    with pytest.raises(OSError):
        PageIndex(layout)
