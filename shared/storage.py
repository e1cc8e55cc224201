"""Where a crawl's files live on the data volume, and how they are written.

    <data-dir>/<crawl-id>/
        records/<worker>-<time>-<seq>.jsonl.gz  the metadata records of one worker process's
                                              fetches, appended, one gzip member each
        pages/<fp[:2]>/<fp>.d<depth>.<ext>    the body as received (ext from the content type)
        manifest.jsonl                        one record per URL, written when the crawl is done
        pages.idx                             where each URL's record is, by fingerprint: its
                                              depth, log, offset and length, written with the
                                              manifest (``shared.page_index``)
        unreached.jsonl                       of a crawl --since another: the earlier crawl's
                                              pages this one has no record of, written with
                                              the manifest (``workers.unreached``)
        warc/<worker>-<time>-<seq>.warc.gz    with --warc: every fetch, instead of body files
        index.cdxj                            with --warc: the WARC records' index (pywb's CDXJ)

``fp`` is the URL's fingerprint and ``depth`` the depth the page was fetched at: names come only
from fingerprints, worker ids, numbers and fixed words, never from URL text. Records go to logs
in both modes, one per worker process and crawl (``shared.record_log``: a killed writer leaves
a log that reads whole up to its last whole record), rather than one file per page: a file
takes at least one block of the disk and one creation, where a record compresses to about
1 KB. A job that runs again writes the same body file and appends its record again; finalizing
the crawl keeps, per fingerprint, the record at the shortest depth (the latest of those), and
removes the bodies of the others. Crawls written before the logs kept one record file per page,
``pages/<fp[:2]>/<fp>.d<depth>.json``: those are still read. Below the data directory, no
symbolic link is followed (``shared.nofollow``): a crawl folder, pages folder or file that is a
link is refused.
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Iterable, Iterator
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from crawlfleet.shared.crawl import check_crawl_id
from crawlfleet.shared.failures import FailureKind
from crawlfleet.shared.gzip_members import whole_members
from crawlfleet.shared.mime import media_type
from crawlfleet.shared.nofollow import (
    TMP_SUFFIX,
    entries,
    folder,
    is_file_at,
    open_folder,
    read_at,
    remove_at,
    write_at,
    write_chunks_at,
)
from crawlfleet.shared.urls import origin_of

MANIFEST = "manifest.jsonl"
PAGE_INDEX = "pages.idx"
UNREACHED = "unreached.jsonl"
PAGES = "pages"
RECORDS = "records"
RECORD_LOG_SUFFIX = ".jsonl.gz"
WARC = "warc"
INDEX = "index.cdxj"
WARC_SUFFIX = ".warc.gz"
# the names workers give their WARC files (workers/warc.py), the only ones read or named
_WARC_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,200}\.warc\.gz")
# the names workers give their record logs (workers/record_logs.py)
_RECORD_LOG_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,200}\.jsonl\.gz")

_EXTENSIONS = {
    "text/html": "html",
    "application/xhtml+xml": "html",
    "text/plain": "txt",
    "application/json": "json",
    "application/xml": "xml",
    "text/xml": "xml",
    "application/pdf": "pdf",
    "text/csv": "csv",
}


class WarcRef(BaseModel):
    """Where the response record of a fetch is: one of the crawl's WARC files, and the offset
    and length of the record's gzip member in it."""

    filename: str
    offset: int
    length: int


@dataclass(frozen=True, slots=True)
class RecordAt:
    """Where a page record is: the member of one of the crawl's record logs at ``offset``,
    ``length`` bytes long; or, with ``log`` None, the record file of its own that a crawl
    written before the logs has (``CrawlLayout.record_path``)."""

    log: str | None
    offset: int = 0
    length: int = 0


class BodyRef(BaseModel):
    """A body kept in another crawl: the response record of an earlier crawl's WARC file (an
    unchanged page of a crawl --since it, recorded as a ``revisit``)."""

    crawl_id: str
    warc: WarcRef


# what a page of a crawl --since an earlier one is against the earlier crawl's:
# new: a response (below 400) for a URL that had none below 400 there; changed: another body
# (its SHA-256) or redirect target; unchanged: the same (a 304 to its validators, or the same
# body); gone: a 404 or 410 for a URL that had a response below 400 there
Change = Literal["new", "changed", "unchanged", "gone"]


class PageRecord(BaseModel):
    """The metadata of one fetched (or failed) URL, as written next to its body."""

    url: str
    final_url: str | None
    depth: int
    parent: str | None
    status: int | None
    content_type: str | None
    length: int
    sha256: str | None
    fetched_at: datetime
    duration_ms: int
    path: str | None
    truncated: bool = False
    # why the URL got no response (``kind: detail``), and that failure's kind
    error: str | None = None
    kind: FailureKind | None = None
    fingerprint: str
    worker: str
    # where a redirect pointed (the target is a page of its own, at the same depth)
    redirect: str | None = None
    # why the URL was not fetched by a rule of the site's (``robots.txt: disallowed``)
    skipped: str | None = None
    # the response headers as received, in order
    headers: list[tuple[str, str]] = Field(default_factory=list)
    # the response record of a crawl that writes WARC (a revisit record, for an unchanged page
    # of a crawl --since an earlier one)
    warc: WarcRef | None = None
    # the validators a later crawl --since this one sends: the response's ETag and
    # Last-Modified (for a 304 that lacks one, the earlier crawl's)
    etag: str | None = None
    last_modified: str | None = None
    # the page's links: canonical page URLs in page order, before the crawl's scope, one on
    # the page's origin as its path; [] for a response that is no HTML page, None when not read
    # (a failure, a redirect, a record written before links were kept). Not in the manifest.
    links: list[str] | None = None
    # of a crawl --since an earlier one (else None)
    change: Change | None = None
    # where the body is when it is another crawl's (an unchanged page, with --warc)
    body_in: BodyRef | None = None
    # of a page recorded as unchanged without a request (``status`` 304, as if revalidated):
    # the latest time its sitemap's <lastmod> may mean, no later than the earlier crawl's fetch
    sitemap_lastmod: datetime | None = None

    def link_urls(self) -> list[str] | None:
        """The page's links as absolute URLs (``links`` unpacked)."""
        if self.links is None:
            return None
        origin = origin_of(self.url)
        return [origin + link if link.startswith("/") else link for link in self.links]


def pack_links(url: str, links: list[str]) -> list[str]:
    """``links`` of the page ``url`` as ``PageRecord.links`` keeps them: those on its origin
    as their paths."""
    origin = origin_of(url)
    cut = len(origin)
    return [
        link[cut:] if link.startswith(origin) and link[cut : cut + 1] == "/" else link
        for link in links
    ]


# fields of a record that the manifest leaves out: kept in the record file for a later crawl
MANIFEST_EXCLUDES = frozenset({"links"})


def manifest_line(record: PageRecord) -> bytes:
    """A record as one line of the manifest."""
    return record.model_dump_json(exclude=set(MANIFEST_EXCLUDES)).encode() + b"\n"


@lru_cache(maxsize=256)
def body_extension(content_type: str | None) -> str:
    """A fixed file extension for a content type (``bin`` when unknown)."""
    return _EXTENSIONS.get(media_type(content_type), "bin")


def record_name(fp: str, depth: int) -> str:
    """The file name of a record, in its bucket ``fp[:2]``."""
    return f"{fp}.d{depth}.json"


def body_name(fp: str, depth: int, content_type: str | None) -> str:
    """The file name of a body, in its bucket ``fp[:2]``."""
    return f"{fp}.d{depth}.{body_extension(content_type)}"


def relative_path(fp: str, name: str) -> str:
    """A file of ``fp``'s bucket as records name it, relative to the crawl's folder."""
    return f"{PAGES}/{fp[:2]}/{name}"


class CrawlLayout:
    """The file names of one crawl under the data directory, and the reads and writes of its
    files, none of which follows a link below the data directory."""

    def __init__(self, data_dir: Path, crawl_id: str) -> None:
        self.data_dir = data_dir
        self.root = data_dir / check_crawl_id(crawl_id)
        self.pages = self.root / PAGES
        self.records_dir = self.root / RECORDS
        self.manifest = self.root / MANIFEST
        self.page_index = self.root / PAGE_INDEX
        self.unreached = self.root / UNREACHED
        self.warc_dir = self.root / WARC
        self.index = self.root / INDEX

    def warc_path(self, filename: str) -> Path:
        """The path of a WARC file of the crawl; ValueError if ``filename`` is not a name a
        worker gives (a record or index line names it: never a way out of the folder)."""
        if not _WARC_NAME.fullmatch(filename):
            raise ValueError(f"not a WARC file name of crawlfleet: {filename!r}")
        return self.warc_dir / filename

    def warc_files(self) -> list[Path]:
        """The crawl's WARC files, by name (none through a link)."""
        try:
            with folder(self.data_dir, [self.root.name, WARC]) as fd:
                names = [e.name for e in entries(fd) if e.is_file(follow_symlinks=False)]
        except FileNotFoundError:
            return []
        return sorted(self.warc_dir / name for name in names if _WARC_NAME.fullmatch(name))

    def record_log_path(self, filename: str) -> Path:
        """The path of a record log of the crawl; ValueError if ``filename`` is not a name a
        worker gives (the page index names it: never a way out of the folder)."""
        if not _RECORD_LOG_NAME.fullmatch(filename):
            raise ValueError(f"not a record log name of crawlfleet: {filename!r}")
        return self.records_dir / filename

    def record_logs(self) -> list[str]:
        """The names of the crawl's record logs, sorted (none through a link)."""
        try:
            with folder(self.data_dir, [self.root.name, RECORDS]) as fd:
                found = [e.name for e in entries(fd) if e.is_file(follow_symlinks=False)]
        except FileNotFoundError:
            return []
        return sorted(name for name in found if _RECORD_LOG_NAME.fullmatch(name))

    def record_path(self, fp: str, depth: int) -> Path:
        """The record file of its own of a page of a crawl written before the record logs."""
        return self.pages / fp[:2] / record_name(fp, depth)

    def body_path(self, fp: str, depth: int, content_type: str | None) -> Path:
        return self.pages / fp[:2] / body_name(fp, depth, content_type)

    def _folders(self, path: Path) -> tuple[list[str], str]:
        """The folders from the data directory down to a file of the crawl, and its name."""
        *folders, name = path.relative_to(self.root).parts
        return [self.root.name, *folders], name

    def write(self, path: Path, data: bytes) -> None:
        """Write a file of the crawl (``path`` named by this layout) atomically, making its
        folders if missing; OSError (``LinkRefused`` for a link) if it cannot."""
        folders, name = self._folders(path)
        with folder(self.data_dir, folders, create=True) as fd:
            write_at(fd, name, data)

    def write_chunks(self, path: Path, chunks: Iterable[bytes]) -> None:
        """Write a file of the crawl as ``write`` does, from ``chunks`` as they are made
        (``nofollow.write_chunks_at``)."""
        folders, name = self._folders(path)
        with folder(self.data_dir, folders, create=True) as fd:
            write_chunks_at(fd, name, chunks)

    def open_fd(self, path: Path, flags: int = os.O_RDONLY) -> int:
        """A descriptor of a file of the crawl, opened with ``flags`` without following a
        link on the way (its folders made if ``flags`` create it); OSError (``LinkRefused``
        for a link) if it cannot be."""
        folders, name = self._folders(path)
        with folder(self.data_dir, folders, create=bool(flags & os.O_CREAT)) as fd:
            return os.open(name, flags | os.O_NOFOLLOW | os.O_CLOEXEC, 0o666, dir_fd=fd)

    def has_file(self, path: Path) -> bool:
        """Whether a regular file of the crawl is at ``path`` (reached without a link)."""
        folders, name = self._folders(path)
        try:
            with folder(self.data_dir, folders) as fd:
                return is_file_at(fd, name)
        except OSError:
            return False

    def open_folder(self, path: Path) -> int:
        """A descriptor of a folder of the crawl (its pages folder, one of its buckets), reached
        without following a link, that the caller closes; OSError if it cannot be opened."""
        folders, name = self._folders(path)
        return open_folder(self.data_dir, [*folders, name])

    def open_bucket(self, fp: str) -> int:
        """A descriptor of the folder of ``fp``'s files (made if missing, reached without
        following a link) that the caller closes; OSError if it cannot be opened."""
        return open_folder(self.data_dir, [self.root.name, PAGES, fp[:2]], create=True)

    def read(self, path: Path) -> bytes:
        """The bytes of a file of the crawl; OSError if it cannot be read or is a link."""
        folders, name = self._folders(path)
        with folder(self.data_dir, folders) as fd:
            return read_at(fd, name)

    def remove(self, path: Path) -> None:
        """Remove a file of the crawl, if it is there."""
        folders, name = self._folders(path)
        with suppress(FileNotFoundError), folder(self.data_dir, folders) as fd:
            remove_at(fd, name)

    def check_writable(self, *, bodies: bool) -> None:
        """Make the crawl's records folder (and its pages folder, if it keeps ``bodies``), and
        write and remove a small file there: raises the OSError a page's files would meet (a
        read-only or full disk, a file or a link in the way)."""
        if bodies:
            with folder(self.data_dir, [self.root.name, PAGES], create=True):
                pass
        with folder(self.data_dir, [self.root.name, RECORDS], create=True) as fd:
            probe = f".probe.{os.getpid()}.{secrets.token_hex(4)}{TMP_SUFFIX}"
            try:
                write_at(fd, probe, b"crawlfleet\n")
            finally:
                remove_at(fd, probe)

    def _buckets(self) -> list[os.DirEntry[str]]:
        """What the pages folder holds (nothing if it is missing); LinkRefused if a link."""
        try:
            with folder(self.data_dir, [self.root.name, PAGES]) as fd:
                return entries(fd)
        except FileNotFoundError:
            return []

    def remove_temp_files(self) -> int:
        """Remove the temporary files of page writes that never finished; returns how many.

        Only for a crawl with no page job left: a writer killed between its write and its
        rename (SIGKILL, power loss) leaves its temp file behind, and no one else will.
        """
        removed = 0
        with suppress(FileNotFoundError), folder(self.data_dir, [self.root.name, RECORDS]) as fd:
            for entry in entries(fd):
                if _is_temp(entry):  # a probe's
                    remove_at(fd, entry.name)
                    removed += 1
        for bucket in self._buckets():
            if _is_temp(bucket):  # a probe's, of a crawl written before the logs
                self.remove(self.pages / bucket.name)
                removed += 1
            elif bucket.is_dir(follow_symlinks=False):
                names = [self.root.name, PAGES, bucket.name]
                with suppress(FileNotFoundError), folder(self.data_dir, names) as fd:
                    for entry in entries(fd):
                        if _is_temp(entry):
                            remove_at(fd, entry.name)
                            removed += 1
        return removed

    def records(self) -> Iterator[tuple[str, RecordAt, PageRecord | str]]:
        """Every metadata record on disk, log by log in order, then the record files of a crawl
        written before the logs: where it is (named for a log line), and the record or why it
        cannot be read.

        A log's cut last member (its writer was killed mid-append) is left out. A record file
        is read only if named as ``record_path`` names it, and only if its fingerprint and
        depth are that name's: a file planted or damaged in the folder, or a link, is reported,
        never trusted or followed.
        """
        for name in self.record_logs():
            where = f"{RECORDS}/{name}"
            try:
                fd = self.open_fd(self.records_dir / name)
            except OSError as exc:
                yield where, RecordAt(name), f"unreadable: {type(exc).__name__}"
                continue
            try:
                end = 0  # one member at a time: a log holds a worker's share of the crawl
                for member in whole_members(fd):
                    end = member.offset + member.length
                    at = RecordAt(name, member.offset, member.length)
                    yield f"{where}@{member.offset}", at, _parse_record(member.data)
                cut = os.fstat(fd).st_size - end
            except OSError as exc:
                yield where, RecordAt(name), f"unreadable: {type(exc).__name__}"
                continue
            finally:
                os.close(fd)
            if cut:  # its writer was killed mid-append: the page was never closed
                yield where, RecordAt(name), f"cut off: its last {cut} bytes are no whole record"
        for bucket in self._buckets():
            where_bucket = self.pages / bucket.name
            if bucket.is_symlink():
                yield str(where_bucket), RecordAt(None), "a symbolic link, not followed"
            if not bucket.is_dir(follow_symlinks=False):
                continue
            try:
                with folder(self.data_dir, [self.root.name, PAGES, bucket.name]) as fd:
                    for entry in entries(fd):
                        if entry.name.endswith(".json"):
                            where = str(where_bucket / entry.name)
                            yield where, RecordAt(None), _read_record(fd, entry, bucket.name)
            except FileNotFoundError:
                continue

    def stored_body(self, record: PageRecord) -> Path | None:
        """The body file of a record read by ``records`` (None if it has none), derived from
        its fingerprint, depth and content type, never from the path it names."""
        if record.path is None:
            return None
        return self.body_path(record.fingerprint, record.depth, record.content_type)


_RECORD_NAME = re.compile(r"(?P<fp>[0-9a-f]{16})\.d(?P<depth>\d{1,4})\.json")


def _is_temp(entry: os.DirEntry[str]) -> bool:
    return entry.name.startswith(".") and entry.name.endswith(TMP_SUFFIX)


def _read_record(folder_fd: int, entry: os.DirEntry[str], bucket: str) -> PageRecord | str:
    named = _RECORD_NAME.fullmatch(entry.name)
    if named is None or bucket != entry.name[:2]:
        return "not a record's name"
    if not entry.is_file(follow_symlinks=False):
        return "not a regular file"
    try:
        record = PageRecord.model_validate_json(read_at(folder_fd, entry.name))
    except (OSError, ValueError) as exc:  # pydantic's ValidationError is a ValueError
        return f"unreadable: {type(exc).__name__}"
    if (record.fingerprint, record.depth) != (named["fp"], int(named["depth"])):
        return "its fingerprint or depth is not its file's"
    return record


def _parse_record(data: bytes) -> PageRecord | str:
    try:
        return PageRecord.model_validate_json(data)
    except ValueError as exc:  # pydantic's ValidationError is a ValueError
        return f"unreadable: {type(exc).__name__}"
