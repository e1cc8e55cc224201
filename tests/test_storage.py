"""The on-disk layout and atomic writes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from shared.errors import InvalidCrawlId
from shared.storage import CrawlLayout, atomic_write, body_extension


def test_atomic_write_replaces_whole_file(tmp_path: Path) -> None:
    """A write replaces the file and leaves no temporary behind."""
    target = tmp_path / "a" / "b.json"
    atomic_write(target, b"one")
    atomic_write(target, b"two")
    assert target.read_bytes() == b"two"
    assert [p.name for p in target.parent.iterdir()] == ["b.json"]


def test_atomic_write_interrupted_leaves_old_file(tmp_path: Path) -> None:
    """A write that fails midway leaves the old content and no temporary file."""
    target = tmp_path / "page.html"
    atomic_write(target, b"old")
    with pytest.raises(TypeError):
        atomic_write(target, 12345)  # type: ignore[arg-type]
    assert target.read_bytes() == b"old"
    assert list(tmp_path.iterdir()) == [target]


def test_layout_names_come_from_fingerprints(tmp_path: Path) -> None:
    """Record and body paths are built from the fingerprint, the depth and fixed words."""
    layout = CrawlLayout(tmp_path, "crawl-1")
    assert layout.record_path("abcdef0123456789", 2) == (
        tmp_path / "crawl-1" / "pages" / "ab" / "abcdef0123456789.d2.json"
    )
    body = layout.body_path("abcdef0123456789", 0, "text/html; charset=utf-8")
    assert body.name == "abcdef0123456789.d0.html"
    assert layout.manifest == tmp_path / "crawl-1" / "manifest.jsonl"


@pytest.mark.parametrize("bad", ["../etc", "a/b", "", ".hidden", "x" * 65, "a b"])
def test_crawl_ids_cannot_escape_the_data_dir(tmp_path: Path, bad: str) -> None:
    """Crawl ids that are not plain names are refused."""
    with pytest.raises(InvalidCrawlId):
        CrawlLayout(tmp_path, bad)


@pytest.mark.parametrize(
    ("ctype", "ext"),
    [("text/html", "html"), ("TEXT/HTML; charset=x", "html"), ("application/pdf", "pdf"),
     ("image/../../x", "bin"), (None, "bin")],
)  # fmt: skip
def test_body_extension_is_from_a_fixed_table(ctype: str | None, ext: str) -> None:
    """Extensions come from a fixed table, never from the header text."""
    assert body_extension(ctype) == ext


def test_written_files_are_readable_by_others(tmp_path: Path) -> None:
    """Pages get the umask's mode (0644 usually), not mkstemp's owner-only 0600."""
    target = tmp_path / "page.html"
    atomic_write(target, b"x")
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask
