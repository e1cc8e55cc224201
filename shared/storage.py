"""Where a crawl's files live on the data volume, and how they are written.

    <data-dir>/<crawl-id>/
        pages/<fp[:2]>/<fp>.d<depth>.json     metadata record of one fetch
        pages/<fp[:2]>/<fp>.d<depth>.<ext>    the body as received (ext from the content type)
        manifest.jsonl                        one record per URL, written when the crawl is done
        warc/<worker>-<time>-<seq>.warc.gz    with --warc: every fetch, instead of body files
        index.cdxj                            with --warc: the WARC records' index (pywb's CDXJ)

``fp`` is the URL's fingerprint and ``depth`` the depth the page was fetched at: names come only
from fingerprints, numbers and fixed words, never from URL text. A job that runs again writes
the same names; when a page was fetched again at a shorter depth, finalizing the crawl keeps only
the record at the shortest depth.
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

from pydantic import BaseModel, Field

from shared.crawl import check_crawl_id

# a new file of its own, never a file another writer has opened
_TMP_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC

MANIFEST = "manifest.jsonl"
TMP_SUFFIX = ".tmp"  # of a file being written (see atomic_write)
PAGES = "pages"
WARC = "warc"
INDEX = "index.cdxj"
WARC_SUFFIX = ".warc.gz"
# the names workers give their WARC files (workers/warc.py), the only ones read or named
_WARC_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,200}\.warc\.gz")

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
    error: str | None = None
    fingerprint: str
    worker: str
    # where a redirect pointed (the target is a page of its own, at the same depth)
    redirect: str | None = None
    # the response headers as received, in order
    headers: list[tuple[str, str]] = Field(default_factory=list)
    # the response record of a crawl that writes WARC
    warc: WarcRef | None = None


def body_extension(content_type: str | None) -> str:
    """A fixed file extension for a content type (``bin`` when unknown)."""
    mime = (content_type or "").split(";", 1)[0].strip().lower()
    return _EXTENSIONS.get(mime, "bin")


class CrawlLayout:
    """The file names of one crawl under the data directory."""

    def __init__(self, data_dir: Path, crawl_id: str) -> None:
        self.root = data_dir / check_crawl_id(crawl_id)

    @property
    def pages(self) -> Path:
        return self.root / PAGES

    @property
    def manifest(self) -> Path:
        return self.root / MANIFEST

    @property
    def warc_dir(self) -> Path:
        return self.root / WARC

    @property
    def index(self) -> Path:
        return self.root / INDEX

    def warc_path(self, filename: str) -> Path:
        """The path of a WARC file of the crawl; ValueError if ``filename`` is not a name a
        worker gives (a record or index line names it: never a way out of the folder)."""
        if not _WARC_NAME.fullmatch(filename):
            raise ValueError(f"not a WARC file name of crawlfleet: {filename!r}")
        return self.warc_dir / filename

    def warc_files(self) -> list[Path]:
        """The crawl's WARC files, by name."""
        if not self.warc_dir.is_dir():
            return []
        return sorted(p for p in self.warc_dir.iterdir() if _WARC_NAME.fullmatch(p.name))

    def record_path(self, fp: str, depth: int) -> Path:
        return self.pages / fp[:2] / f"{fp}.d{depth}.json"

    def body_path(self, fp: str, depth: int, content_type: str | None) -> Path:
        return self.pages / fp[:2] / f"{fp}.d{depth}.{body_extension(content_type)}"

    def remove_temp_files(self) -> int:
        """Remove the temporary files of page writes that never finished; returns how many.

        Only for a crawl with no page job left: a writer killed between its write and its
        rename (SIGKILL, power loss) leaves its temp file behind, and no one else will.
        """
        removed = 0
        if self.pages.is_dir():
            for path in self.pages.glob(f"*/.*{TMP_SUFFIX}"):
                path.unlink(missing_ok=True)
                removed += 1
        return removed

    def records(self) -> Iterator[tuple[Path, PageRecord | str]]:
        """Every metadata record on disk, in no particular order, or why it cannot be read.

        A record is read only from a file named as ``record_path`` names it, and only if its
        fingerprint and depth are that name's: a file planted or damaged in the folder is
        reported, never trusted.
        """
        if not self.pages.is_dir():
            return
        for path in self.pages.glob("*/*.json"):
            yield path, self._read_record(path)

    def _read_record(self, path: Path) -> PageRecord | str:
        named = _RECORD_NAME.fullmatch(path.name)
        if named is None or path.parent.name != path.name[:2]:
            return "not a record's name"
        try:
            record = PageRecord.model_validate_json(path.read_bytes())
        except (OSError, ValueError) as exc:  # pydantic's ValidationError is a ValueError
            return f"unreadable: {type(exc).__name__}"
        if (record.fingerprint, record.depth) != (named["fp"], int(named["depth"])):
            return "its fingerprint or depth is not its file's"
        return record

    def stored_body(self, record: PageRecord) -> Path | None:
        """The body file of a record read by ``records`` (None if it has none), derived from
        its fingerprint, depth and content type, never from the path it names."""
        if record.path is None:
            return None
        return self.body_path(record.fingerprint, record.depth, record.content_type)


_RECORD_NAME = re.compile(r"(?P<fp>[0-9a-f]{16})\.d(?P<depth>\d{1,4})\.json")


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the whole new one.

    The bytes go to a temporary file in the same folder, which is then renamed over ``path``;
    a crash or cancellation in between leaves only a ``.tmp`` file, never a partial ``path``.
    """
    # pid + random: unique across the processes and containers sharing the volume; O_EXCL
    # makes sure of it. The folder is made only when missing: most writes go to one that exists
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}{TMP_SUFFIX}")
    try:
        fd = os.open(tmp, _TMP_FLAGS, 0o666)  # the umask applies, as for any new file
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(tmp, _TMP_FLAGS, 0o666)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        finally:
            os.close(fd)
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
