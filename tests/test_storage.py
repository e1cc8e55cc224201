"""The on-disk layout: atomic writes, and no link followed below the data directory."""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis.asyncio import Redis

from crawlfleet.shared.errors import InvalidCrawlId, LinkRefused
from crawlfleet.shared.nofollow import link_at
from crawlfleet.shared.settings import Settings
from crawlfleet.shared.storage import CrawlLayout, PageRecord, body_extension
from crawlfleet.shared.urls import fingerprint
from crawlfleet.workers.fetch import FetchResult
from crawlfleet.workers.finalize import write_manifest
from crawlfleet.workers.frontier import Frontier, PageJob
from crawlfleet.workers.record_logs import RecordLogs
from crawlfleet.workers.store import store_page

FP = "abcdef0123456789"


def _link(old: CrawlLayout, source: Path, new: CrawlLayout, target: Path) -> None:
    """``link_at`` from ``source`` in one crawl to ``target`` in another, by their folders."""
    src, dst = old.open_folder(source.parent), new.open_folder(target.parent)
    try:
        link_at(src, source.name, dst, target.name)
    finally:
        os.close(src)
        os.close(dst)


def test_atomic_write_replaces_whole_file(tmp_path: Path) -> None:
    """A write makes its folders, replaces the file and leaves no temporary behind."""
    target = CrawlLayout(tmp_path, "c1").record_path(FP, 0)
    CrawlLayout(tmp_path, "c1").write(target, b"one")
    CrawlLayout(tmp_path, "c1").write(target, b"two")
    assert target.read_bytes() == b"two"
    assert [p.name for p in target.parent.iterdir()] == [target.name]


def test_a_body_is_linked_from_another_crawl(tmp_path: Path) -> None:
    """``link_at`` makes a crawl's file a hard link of another crawl's (one inode, no
    copy), replacing what was there, and leaves no temporary file."""
    old, new = CrawlLayout(tmp_path, "old"), CrawlLayout(tmp_path, "new")
    source, target = old.body_path(FP, 1, "text/html"), new.body_path(FP, 2, "text/html")
    old.write(source, b"body")
    new.write(target, b"stale")
    _link(old, source, new, target)
    assert target.read_bytes() == b"body" and target.stat().st_ino == source.stat().st_ino
    assert [p.name for p in target.parent.iterdir()] == [target.name]


def test_a_body_is_linked_under_a_free_name(tmp_path: Path) -> None:
    """``link_at`` to a name nothing holds yet makes the link there: one inode, and nothing
    else left in the folder."""
    old, new = CrawlLayout(tmp_path, "old"), CrawlLayout(tmp_path, "new")
    source, target = old.body_path(FP, 1, "text/html"), new.body_path(FP, 1, "text/html")
    old.write(source, b"body")
    new.check_writable(bodies=True)
    target.parent.mkdir(parents=True)
    _link(old, source, new, target)
    assert target.read_bytes() == b"body" and target.stat().st_ino == source.stat().st_ino
    assert os.listdir(target.parent) == [target.name]


def test_no_file_as_the_source_of_a_body_is_refused(tmp_path: Path) -> None:
    """A FIFO, or nothing, where the earlier crawl's body should be is no body: FileNotFoundError,
    and nothing is left where the body would go."""
    old, new = CrawlLayout(tmp_path, "old"), CrawlLayout(tmp_path, "new")
    source = old.body_path(FP, 1, "text/html")
    source.parent.mkdir(parents=True)
    os.mkfifo(source)
    target = new.body_path(FP, 1, "text/html")
    new.check_writable(bodies=True)
    target.parent.mkdir(parents=True)
    with pytest.raises(FileNotFoundError):
        _link(old, source, new, target)
    with pytest.raises(FileNotFoundError):
        _link(old, source.with_name("missing.html"), new, target)
    assert os.listdir(target.parent) == []


def test_a_link_as_the_source_of_a_body_is_refused(tmp_path: Path) -> None:
    """A symbolic link where the earlier crawl's body should be is neither linked nor
    followed."""
    old, new = CrawlLayout(tmp_path, "old"), CrawlLayout(tmp_path, "new")
    source = old.body_path(FP, 1, "text/html")
    (tmp_path / "secret").write_bytes(b"secret")
    source.parent.mkdir(parents=True)
    os.symlink(tmp_path / "secret", source)
    target = new.body_path(FP, 1, "text/html")
    new.check_writable(bodies=True)
    target.parent.mkdir(parents=True)
    with pytest.raises(LinkRefused):
        _link(old, source, new, target)
    assert not target.exists() and os.listdir(target.parent) == []


def test_a_body_on_another_file_system_is_copied(tmp_path: Path) -> None:
    """Where no hard link can be made (another device), the file is copied."""
    shm = Path("/dev/shm")
    if not shm.is_dir() or shm.stat().st_dev == tmp_path.stat().st_dev:
        pytest.skip("no second file system to copy across")
    other = Path(tempfile.mkdtemp(dir=shm, prefix="crawlfleet-test-"))
    try:
        (other / "body").write_bytes(b"across")
        src_fd = os.open(other, os.O_RDONLY | os.O_DIRECTORY)
        dst_fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
        try:
            link_at(src_fd, "body", dst_fd, "copy")
        finally:
            os.close(src_fd)
            os.close(dst_fd)
        copy = tmp_path / "copy"
        assert copy.read_bytes() == b"across" and copy.stat().st_nlink == 1
    finally:
        shutil.rmtree(other)


def test_atomic_write_interrupted_leaves_old_file(tmp_path: Path) -> None:
    """A write that fails midway leaves the old content and no temporary file."""
    layout = CrawlLayout(tmp_path, "c1")
    layout.write(layout.manifest, b"old")
    with pytest.raises(TypeError):
        layout.write(layout.manifest, 12345)  # type: ignore[arg-type]
    assert layout.manifest.read_bytes() == b"old"
    assert list(layout.root.iterdir()) == [layout.manifest]


def test_a_write_of_chunks_is_whole_or_none(tmp_path: Path) -> None:
    """A file written from chunks as they are made is their concatenation, and a write whose
    chunks fail midway leaves the old file and no temporary file."""
    layout = CrawlLayout(tmp_path, "c1")
    layout.write_chunks(layout.unreached, (f"{n}\n".encode() for n in range(10_000)))
    assert layout.unreached.read_text().splitlines() == [str(n) for n in range(10_000)]

    def failing() -> Iterator[bytes]:
        yield b"half\n" * 100_000
        raise OSError("the earlier crawl's log is gone")

    with pytest.raises(OSError, match="log is gone"):
        layout.write_chunks(layout.unreached, failing())
    assert layout.unreached.read_text().splitlines()[-1] == "9999"
    assert list(layout.root.iterdir()) == [layout.unreached]


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
    layout = CrawlLayout(tmp_path, "c1")
    target = layout.body_path(FP, 0, "text/html")
    layout.write(target, b"x")
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask


@pytest.mark.parametrize("linked", ["crawl folder", "pages folder", "bucket"])
def test_nothing_is_written_or_removed_through_a_link(tmp_path: Path, linked: str) -> None:
    """A crawl folder, pages folder or bucket that is a symbolic link is refused, naming it:
    the folder check, writes and removals touch nothing where it points."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / f"{FP}.d0.json").write_text("keep me")
    layout = CrawlLayout(tmp_path / "data", "c1")
    record = layout.record_path(FP, 0)
    link = {"crawl folder": layout.root, "pages folder": layout.pages, "bucket": record.parent}
    link[linked].parent.mkdir(parents=True, exist_ok=True)
    link[linked].symlink_to(outside)
    said = f"{re.escape(str(link[linked]))} is a symbolic link, which crawlfleet does not follow$"
    with pytest.raises(LinkRefused, match=said):
        layout.write(record, b"{}")
    with pytest.raises(LinkRefused, match=said):
        layout.remove(record)
    if linked != "bucket":  # the check makes the pages folder, writes in the records folder
        with pytest.raises(LinkRefused, match=said):
            layout.check_writable(bodies=True)
    assert [p.name for p in outside.iterdir()] == [f"{FP}.d0.json"]
    assert (outside / f"{FP}.d0.json").read_text() == "keep me"


def test_a_link_in_a_files_place_is_replaced_not_followed(tmp_path: Path) -> None:
    """A record's name that is a link to a file elsewhere: the write replaces the link, the
    file it pointed to is untouched."""
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    layout = CrawlLayout(tmp_path / "data", "c1")
    record = layout.record_path(FP, 0)
    record.parent.mkdir(parents=True)
    record.symlink_to(victim)
    layout.write(record, b"{}")
    assert not record.is_symlink() and record.read_bytes() == b"{}"
    assert victim.read_text() == "keep me"


def _page(logs: RecordLogs, layout: CrawlLayout, url: str, depth: int) -> PageRecord:
    result = FetchResult(url=url, final_url=url, status=200, content_type="text/html",
                         body=b"<p>x</p>", truncated=False, error=None, duration_ms=1)  # fmt: skip
    return store_page(layout, logs, PageJob("c1", url, depth, None), result, "w1")


async def test_finalize_skips_what_it_cannot_trust(
    redis: Redis, settings: Settings, tmp_path: Path
) -> None:
    """The manifest is written whatever lies in the pages folder: a damaged record file and a
    stray file are reported and left out, and a planted record file whose body path points
    outside the crawl folder deletes nothing there (bodies are derived from fingerprint and
    depth)."""
    layout = CrawlLayout(settings.data_dir, "c1")
    with RecordLogs(settings) as logs:
        good = _page(logs, layout, "http://example.org/", 0)
        twice = [_page(logs, layout, "http://example.org/a", d) for d in (1, 2)]
    damaged = layout.record_path(fingerprint("http://example.org/b"), 1)
    damaged.parent.mkdir(parents=True, exist_ok=True)
    damaged.write_bytes(b'{"url": "http://example.org/b", "depth":')
    (layout.pages / "zz").mkdir()
    (layout.pages / "zz" / "notes.json").write_bytes(b"{}")
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    planted = twice[1].model_copy(update={"path": f"../../{victim.name}"})
    layout.record_path(planted.fingerprint, 2).write_text(planted.model_dump_json())
    frontier = Frontier(redis, settings)
    assert (await write_manifest(layout, frontier, "c1")).pages == 2
    urls = [json.loads(line)["url"] for line in layout.manifest.read_text().splitlines()]
    assert urls == [good.url, twice[0].url]
    assert victim.read_text() == "keep me"
    # the worse copy of /a went, its body derived from its name, not from what it said
    assert not layout.record_path(twice[1].fingerprint, 2).exists()
    assert not layout.body_path(twice[1].fingerprint, 2, "text/html").exists()
    assert layout.body_path(twice[0].fingerprint, 1, "text/html").exists()


async def test_finalize_reads_and_removes_nothing_through_a_link(
    redis: Redis, settings: Settings, tmp_path: Path
) -> None:
    """A bucket that is a link is reported and skipped by finalize (the records and temp
    files where it points are neither read nor removed); a pages folder that is a link stops
    finalize with LinkRefused (the crawl then fails), touching nothing."""
    outside = tmp_path / "outside"
    outside.mkdir()
    with RecordLogs(settings) as logs:
        planted = _page(logs, CrawlLayout(tmp_path, "elsewhere"), "http://example.org/x", 0)
        layout = CrawlLayout(settings.data_dir, "c1")
        good = _page(logs, layout, "http://example.org/", 0)
    fp = planted.fingerprint
    elsewhere = CrawlLayout(tmp_path, "elsewhere").record_path(fp, 0)
    (outside / elsewhere.name).write_bytes(planted.model_dump_json().encode())
    (outside / f".{fp}.d0.json.1.abcd.tmp").write_text("a temp file")
    (layout.pages / fp[:2]).symlink_to(outside)
    frontier = Frontier(redis, settings)
    assert (await write_manifest(layout, frontier, "c1")).pages == 1
    assert [json.loads(line)["url"] for line in layout.manifest.read_text().splitlines()] == [
        good.url
    ]
    linked = CrawlLayout(settings.data_dir, "c2")
    linked.root.mkdir()
    linked.pages.symlink_to(outside)
    with pytest.raises(LinkRefused):
        await write_manifest(linked, frontier, "c2")
    assert sorted(p.name for p in outside.iterdir()) == sorted(
        [elsewhere.name, f".{fp}.d0.json.1.abcd.tmp"]
    )
    assert not linked.manifest.exists()
