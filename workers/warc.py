"""A worker process's WARC files: each fetch of a crawl that writes WARC (its pages, its
origins' robots.txt and its sitemaps), as a response and a request record (WARC/1.1, one gzip
member each), serialized by warcio; an unchanged page of a crawl --since an earlier one as a
``revisit`` record referring to the earlier capture (``RefersTo``), alone if the page was not
requested (its sitemap's lastmod said it had not changed).

Each process writes one file per crawl at a time, ``<crawl>/warc/<worker>-<time>-<seq>.warc.gz``,
starting with a ``warcinfo`` record, and starts the next file (``seq`` + 1) once it has reached
``Settings.warc_max_bytes``. The pair of records is compressed in memory while warcio serializes
it (no uncompressed copy of the payload is made beside the one fetched), then appended to the
file in one write before the page's own record is written and the page closed in Redis: a
worker killed mid-write leaves at most a partial last member, which finalizing the crawl cuts
off (``shared.warc_index.repair``), and the page, never closed, is fetched again. Like the page
files, a record is in the kernel's hands before its page closes (a killed worker loses
nothing); a file is synced to disk when it is finished.

The body is recorded as it came over the wire: its content coding (gzip) kept, so its
Content-Encoding and Content-Length stay true; only the chunks of a chunked transfer are
undone (by aiohttp), so Transfer-Encoding is masked as ``X-Crawler-Transfer-Encoding``, as
wget and StormCrawler do, lest a replay tool undo the chunks twice, and so is the
Content-Length of a body cut at the size cap (``WARC-Truncated: length``).
"""

from __future__ import annotations

import asyncio
import base64
import contextvars
import hashlib
import io
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata

from warcio.recordloader import ArcWarcRecord
from warcio.statusandheaders import StatusAndHeaders
from warcio.timeutils import datetime_to_iso_date
from warcio.warcwriter import WARCWriter
from zlib_ng import zlib_ng

from crawlfleet.shared.crawl import CrawlSpec
from crawlfleet.shared.settings import Settings
from crawlfleet.shared.storage import WARC_SUFFIX, CrawlLayout, WarcRef
from crawlfleet.workers.append_file import AppendFile, file_stem
from crawlfleet.workers.fetch import Exchange, FetchResult
from crawlfleet.workers.idle_files import IdleFiles

WARC_VERSION = "1.1"
# zlib's default level: warcio's level 9 costs much more CPU for files barely smaller
# (bench/README.md, the warc scenario)
GZIP_LEVEL = 6
# hop-by-hop framing that aiohttp undid: the stored payload is no longer in it
_MASKED = frozenset({"transfer-encoding"})
_MASKED_CUT = _MASKED | {"content-length"}
# payloads up to this many bytes are recorded in the event loop (about 2 ms of compressing at
# most); the hop to the WARC thread and back costs more CPU than that saves the loop
IN_LOOP_BYTES = 256 * 1024


class _Members:
    """Records as warcio writes them, each compressed into a gzip member of its own while it
    is written (warcio's ``gzip=True`` framing, at ``GZIP_LEVEL``, by zlib-ng: the same format
    and about the same size as zlib's, for less CPU; the figures are in bench/README.md), one
    after the other in one buffer: a record is never held uncompressed beside its payload (a
    50 MB sitemap's), only its members are."""

    _compress: Callable[[bytes], bytes]

    def __init__(self) -> None:
        self.data = bytearray()

    def add(self, record: ArcWarcRecord, builder: WARCWriter) -> int:
        """Write ``record`` (digests and length computed by warcio) as the next member; its
        length."""
        start = len(self.data)
        compressor = zlib_ng.compressobj(GZIP_LEVEL, zlib_ng.DEFLATED, zlib_ng.MAX_WBITS | 16)
        self._compress = compressor.compress
        builder.out = self
        builder.write_record(record)
        self.data += compressor.flush()
        return len(self.data) - start

    def write(self, data: bytes) -> None:
        """What warcio writes of a record (in pieces of 16 KiB at most): compressed as it
        comes."""
        self.data += self._compress(data)

    def flush(self) -> None:
        """warcio flushes each record it has written; ``add`` ends its member."""


SERVER_NOT_MODIFIED = "http://netpreserve.org/warc/1.1/revisit/server-not-modified"
IDENTICAL_PAYLOAD = "http://netpreserve.org/warc/1.1/revisit/identical-payload-digest"


@dataclass(frozen=True, slots=True)
class RefersTo:
    """What a ``revisit`` record says of the capture it repeats: its profile, and the earlier
    record's target URI, date, id (if known) and payload digest (if known)."""

    profile: str
    target_uri: str
    date: str
    record_id: str | None
    digest: str | None

    def headers(self) -> dict[str, str]:
        """The revisit record's WARC headers that say so."""
        said = {
            "WARC-Profile": self.profile,
            "WARC-Refers-To-Target-URI": self.target_uri,
            "WARC-Refers-To-Date": self.date,
        }
        if self.record_id is not None:
            said["WARC-Refers-To"] = self.record_id
        if self.digest is not None:
            said["WARC-Payload-Digest"] = self.digest
        return said


def payload_digest(payload: bytes) -> str:
    """A payload's WARC digest as warcio writes it: ``sha1:`` and base32."""
    # SHA-1 is what WARC digests are written in, not a security choice
    digest = hashlib.sha1(payload, usedforsecurity=False).digest()
    return "sha1:" + base64.b32encode(digest).decode()


def record_pair(
    url: str, result: FetchResult, exchange: Exchange, refers: RefersTo | None = None
) -> tuple[bytearray, int]:
    """The response (with ``refers``, a ``revisit`` instead, without payload) and the request
    record of one fetch, each one gzip member, one after the other; and the length of the
    first."""
    builder = WARCWriter(None, gzip=False, warc_version=WARC_VERSION)
    date = datetime_to_iso_date(exchange.started_at.replace(tzinfo=None), use_micros=True)
    common = {"WARC-Date": date}
    if exchange.peer is not None:
        common["WARC-IP-Address"] = exchange.peer
    protocol, _, status = exchange.status_line.partition(" ")
    # a cut body is shorter than its Content-Length said: masked too, lest a replay tool wait
    # for the rest
    masked = _MASKED_CUT if result.truncated else _MASKED
    headers = [
        (f"X-Crawler-{name}" if name.lower() in masked else name, value)
        for name, value in result.headers
    ]
    response_headers = dict(common)
    http_headers = StatusAndHeaders(status, headers, protocol=protocol)
    if refers is not None:
        response = builder.create_warc_record(
            url, "revisit", http_headers=http_headers,
            warc_headers_dict=response_headers | refers.headers(),
        )  # fmt: skip
    else:
        if result.truncated:
            response_headers["WARC-Truncated"] = "length"
        response = builder.create_warc_record(
            url,
            "response",
            payload=io.BytesIO(exchange.payload),
            length=len(exchange.payload),
            http_headers=http_headers,
            warc_headers_dict=response_headers,
        )
    request = builder.create_warc_record(
        url,
        "request",
        http_headers=StatusAndHeaders(
            exchange.request_line, exchange.request_headers, is_http_request=True
        ),
        warc_headers_dict=common,
    )
    request.rec_headers.add_header(
        "WARC-Concurrent-To", response.rec_headers.get_header("WARC-Record-ID")
    )
    members = _Members()
    first = members.add(response, builder)
    members.add(request, builder)
    return members.data, first


def unrequested_revisit(url: str, refers: RefersTo, date: datetime) -> bytearray:
    """The ``revisit`` record, as one gzip member, of a page taken as unchanged without a
    request (its sitemap's lastmod): there was no exchange, so it has no block (and no type)
    and no request record goes with it."""
    builder = WARCWriter(None, gzip=False, warc_version=WARC_VERSION)
    when = datetime_to_iso_date(date.replace(tzinfo=None), use_micros=True)
    record = builder.create_warc_record(
        url, "revisit", warc_headers_dict={"WARC-Date": when} | refers.headers()
    )
    record.content_type = None
    members = _Members()
    members.add(record, builder)
    return members.data


def warcinfo(filename: str, spec: CrawlSpec, settings: Settings) -> bytearray:
    """The ``warcinfo`` record that opens a file: software, crawl and settings."""
    builder = WARCWriter(None, gzip=False, warc_version=WARC_VERSION)
    info = {
        "software": f"crawlfleet/{metadata.version('crawlfleet')} "
        f"(warcio/{metadata.version('warcio')})",
        "format": f"WARC File Format {WARC_VERSION}",
        "isPartOf": spec.crawl_id,
        "http-header-user-agent": settings.user_agent,
        "robots": "obey" if spec.obey_robots else "ignore",
        "crawlfleet-worker": settings.worker_id,
        "crawlfleet-max-page-bytes": str(spec.max_bytes_per_page or settings.max_page_bytes),
        "crawlfleet-spec": spec.model_dump_json(),
    }
    members = _Members()
    members.add(builder.create_warcinfo_record(filename, info), builder)
    return members.data


class WarcWriters:
    """The WARC files of one worker process: one open file per crawl. A record pair whose
    payload is small is built, compressed and appended in the event loop (it takes less than
    handing it to a thread and back); a larger one in the writers' thread, so that the
    process's other pages go on meanwhile. A lock keeps the two from appending at once.

    A crawl's file is synced and closed once nothing has been appended to it for twice the job
    timeout (``clock``: seconds, ``time.monotonic`` but in tests), as its record log is
    (``workers.record_logs``): a long-lived worker keeps open only the files of the crawls it
    is working on, and a record that comes later starts a new file."""

    def __init__(self, settings: Settings, clock: Callable[[], float] = time.monotonic) -> None:
        self._settings = settings
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="crawlfleet-warc")
        self._lock = threading.Lock()
        self._files: dict[str, AppendFile] = {}
        self._idle: IdleFiles[str] = IdleFiles(settings, clock)  # by crawl id
        self._stem = file_stem(settings.worker_id)

    @property
    def open(self) -> list[str]:
        """The ids of the crawls whose files are open."""
        return list(self._files)

    async def write(
        self,
        layout: CrawlLayout,
        spec: CrawlSpec,
        result: FetchResult,
        refers: RefersTo | None = None,
    ) -> WarcRef:
        """Append the fetch's record pair to the crawl's file (a ``revisit`` that ``refers``
        to an earlier capture, if given, instead of a response); where its response (or
        revisit) record is."""
        exchange = result.exchange
        if exchange is None:
            raise ValueError(f"no exchange kept for {result.url}")  # the caller asks for it
        if len(exchange.payload) <= IN_LOOP_BYTES:
            return self._write(layout, spec, result, exchange, refers)
        context = contextvars.copy_context()  # the job's log fields, in the thread's lines
        return await asyncio.get_running_loop().run_in_executor(
            self._thread, context.run, self._write, layout, spec, result, exchange, refers
        )

    async def write_unrequested(
        self, layout: CrawlLayout, spec: CrawlSpec, url: str, refers: RefersTo
    ) -> WarcRef:
        """Append the revisit record of a page not requested (``unrequested_revisit``) to the
        crawl's file; where it is."""
        record = unrequested_revisit(url, refers, datetime.now(UTC))
        return self._append(layout, spec, record, len(record))

    def _write(
        self,
        layout: CrawlLayout,
        spec: CrawlSpec,
        result: FetchResult,
        exchange: Exchange,
        refers: RefersTo | None,
    ) -> WarcRef:
        records, first = record_pair(result.url, result, exchange, refers)
        return self._append(layout, spec, records, first)

    def _append(
        self, layout: CrawlLayout, spec: CrawlSpec, records: bytearray, first: int
    ) -> WarcRef:
        """Append a response (or revisit) record, the first ``first`` bytes of ``records``,
        and its request record, if any, in one write; where the first is."""
        with self._lock:
            file = self._file_for(layout, spec, len(records))
            try:
                offset = file.append(records)
            except OSError:
                if file.broken:  # the next record starts another file
                    self._files.pop(spec.crawl_id, None)
                    file.close()
                raise
        return WarcRef(filename=file.path.name, offset=offset, length=first)

    def _file_for(self, layout: CrawlLayout, spec: CrawlSpec, adding: int) -> AppendFile:
        """The crawl's open file, a new one if there is none or it would outgrow the limit;
        the files idle too long are closed first."""
        for idle in self._idle.writing(spec.crawl_id):
            stale = self._files.pop(idle, None)  # none if its last file could not be made
            if stale is not None:
                stale.close()
        file = self._files.get(spec.crawl_id)
        seq = 0
        if file is not None:
            if file.size + adding <= self._settings.warc_max_bytes:
                return file
            seq = file.seq + 1
            del self._files[spec.crawl_id]
            file.close()
        file = AppendFile.create(layout, layout.warc_dir, self._stem, seq, WARC_SUFFIX)
        try:
            file.append(warcinfo(file.path.name, spec, self._settings))
        except BaseException:
            file.close()
            layout.remove(file.path)  # it holds nothing (a full disk): no empty files
            raise
        self._files[spec.crawl_id] = file
        return file

    def close(self) -> None:
        """Finish the writes queued, then sync and close every file."""
        self._thread.shutdown(wait=True)
        files, self._files = list(self._files.values()), {}
        self._idle.clear()
        for file in files:
            file.close()

    def __enter__(self) -> WarcWriters:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
