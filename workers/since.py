"""A crawl ``--since`` an earlier one: what the earlier crawl had of a URL, the validators sent
for it, what the page is against it, and an unchanged page's body and links taken from it.

Everything a worker needs of the earlier crawl is on the data volume the workers share; Redis
holds only its id, in the crawl's spec. ``pages.idx`` (``shared.page_index``, written when the
earlier crawl was finalized) gives where a URL's record is in one lookup (its record log,
offset and length, or, for a crawl written before the logs, its depth and so its file), so the
worker reads that one record: its validators (``etag``, ``last_modified``), its body's SHA-256,
where its body is (a file, a WARC response record, or an earlier crawl's record it refers to)
and its links. A 304 takes all of these from it, so an unchanged page costs no body and no
parse; its body file is hard-linked into the new crawl (copied where the file system makes no
link, extracted from the WARC record of an earlier crawl that wrote WARC), or, with ``--warc``,
recorded as a ``revisit`` that refers to the earlier response record (``PageRecord.body_in``).

Validators are sent only for a 2xx page whose record kept its links and whose body can still
be had, so that a 304 never leaves the new crawl without either. Such a page that a sitemap of
the crawl lists with a ``<lastmod>`` no later than the earlier crawl fetched it is not requested
at all: it is recorded as a 304 would be (``not_requested``), the record saying by which
lastmod (``PageRecord.sitemap_lastmod``).
"""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import structlog
from warcio.timeutils import datetime_to_iso_date

from crawlfleet.shared.crawl import CrawlSpec
from crawlfleet.shared.errors import EarlierMissing, InvalidCrawlId, UnreadableCrawl
from crawlfleet.shared.gzip_members import read_member
from crawlfleet.shared.nofollow import is_file_at, read_at
from crawlfleet.shared.page_index import Indexed, PageIndex, index_from_manifest
from crawlfleet.shared.storage import (
    BodyRef,
    Change,
    CrawlLayout,
    PageRecord,
    body_name,
    record_name,
)
from crawlfleet.shared.urls import fingerprint
from crawlfleet.shared.warc_index import ResponseHead, read_body, response_head
from crawlfleet.workers.fetch import FetchResult
from crawlfleet.workers.store import LinkedBody, Revalidated
from crawlfleet.workers.warc import IDENTICAL_PAYLOAD, SERVER_NOT_MODIFIED, RefersTo, payload_digest

log = structlog.get_logger()

NOT_MODIFIED = 304
GONE_STATUSES = frozenset({404, 410})


@dataclass(frozen=True, slots=True)
class EarlierPage:
    """The earlier crawl's record of one URL."""

    source: EarlierCrawl
    record: PageRecord

    @property
    def crawl(self) -> CrawlLayout:
        return self.source.layout

    @property
    def had(self) -> bool:
        """Whether the earlier crawl had the URL: a response below 400 (a page or a redirect)."""
        status = self.record.status
        return status is not None and status < 400

    @property
    def response(self) -> BodyRef | None:
        """The WARC response record holding the page's body, if one does: the record's own, or
        the one an unchanged page's record refers to."""
        if self.record.body_in is not None:
            return self.record.body_in
        if self.record.warc is not None and self.record.redirect is None:
            return BodyRef(crawl_id=self.crawl.root.name, warc=self.record.warc)
        return None


class EarlierCrawl:
    """The earlier crawl of a crawl --since one, as one worker process reads it; raises
    EarlierMissing if it has no manifest and index in ``data_dir`` (it is not a finished
    crawl there).

    Its folders and record logs are opened once each (without following a link) and kept
    open, so reading a record, looking for a body or linking one costs one call on a
    descriptor: the crawl is finished, nothing renames its files.
    """

    def __init__(self, data_dir: Path, crawl_id: str) -> None:
        self.layout = CrawlLayout(data_dir, crawl_id)
        try:
            if not self.layout.has_file(self.layout.page_index):
                index_from_manifest(self.layout)  # finalized before indexes were written
            self._index = PageIndex(self.layout)
        except (OSError, UnreadableCrawl) as exc:
            why = str(exc)
            if isinstance(exc, OSError) and exc.filename:
                why = f"{Path(str(exc.filename)).name}: {exc.strerror or exc}"
            raise EarlierMissing(
                f"--since {crawl_id}: no finished crawl {crawl_id!r} in {data_dir} ({why})"
            ) from exc
        self._buckets: dict[str, int] = {}
        self._logs: dict[str, int] = {}
        self._warc_files: dict[tuple[str, str], bool] = {}

    def bucket(self, fp: str) -> int:
        """The descriptor of the folder of ``fp``'s files (opened on first use); OSError if
        it cannot be opened."""
        fd = self._buckets.get(fp[:2])
        if fd is None:
            fd = self.layout.open_folder(self.layout.pages / fp[:2])
            self._buckets[fp[:2]] = fd
        return fd

    def log(self, name: str) -> int:
        """The descriptor of the record log ``name`` (opened on first use); OSError if it
        cannot be opened, ValueError if ``name`` is not a log's."""
        fd = self._logs.get(name)
        if fd is None:
            fd = self.layout.open_fd(self.layout.record_log_path(name))
            self._logs[name] = fd
        return fd

    @property
    def index(self) -> PageIndex:
        """The crawl's page index (``pages.idx``), open while this is."""
        return self._index

    def page(self, url: str) -> EarlierPage | None:
        """The earlier record of ``url`` (canonical), None if the earlier crawl had none (or
        its record cannot be read: the page is then fetched as a new one)."""
        fp = fingerprint(url)
        try:
            found = self._index.find(fp)
        except ValueError as exc:
            log.warning("earlier record unreadable", record=fp, reason=type(exc).__name__)
            return None
        if found is None:
            return None
        record = self.record(fp, found)
        if record is None or record.url != url:
            return None
        return EarlierPage(self, record)

    def record(self, fp: str, found: Indexed) -> PageRecord | None:
        """The record the index has for ``fp`` where ``found`` says it is; None (and a warning)
        if it cannot be read or is another fingerprint's or depth's."""
        where = fp
        try:
            if found.at.log is None:  # a crawl written before the record logs
                where = record_name(fp, found.depth)
                data = read_at(self.bucket(fp), where)
            else:
                where = f"{found.at.log}@{found.at.offset}"
                data = read_member(self.log(found.at.log), found.at.offset, found.at.length)
            record = PageRecord.model_validate_json(data)
        except (OSError, ValueError) as exc:  # pydantic's ValidationError is a ValueError
            log.warning("earlier record unreadable", record=where, reason=type(exc).__name__)
            return None
        if (record.fingerprint, record.depth) != (fp, found.depth):
            return None
        return record

    def body_name(self, earlier: EarlierPage) -> str | None:
        """The name of the page's body file in its bucket, if it has one."""
        record = earlier.record
        if record.path is None:
            return None
        return body_name(record.fingerprint, record.depth, record.content_type)

    def body_reachable(self, earlier: EarlierPage) -> bool:
        """Whether the page's body can still be had from the earlier crawl's files."""
        name = self.body_name(earlier)
        if name is not None:
            try:
                return is_file_at(self.bucket(earlier.record.fingerprint), name)
            except OSError:
                return False
        response = earlier.response
        if response is None:
            return False
        key = (response.crawl_id, response.warc.filename)
        found = self._warc_files.get(key)
        if found is None:
            try:
                layout = self.crawl_of(response)
                found = layout.has_file(layout.warc_path(response.warc.filename))
            except ValueError:  # not a crawl id or a WARC file name crawlfleet writes
                found = False
            self._warc_files[key] = found
        return found

    def crawl_of(self, ref: BodyRef) -> CrawlLayout:
        """The layout of the crawl a body reference names (ValueError for a bad id)."""
        if ref.crawl_id == self.layout.root.name:
            return self.layout
        try:
            return CrawlLayout(self.layout.data_dir, ref.crawl_id)
        except InvalidCrawlId as exc:  # a record changed by hand
            raise ValueError(str(exc)) from None

    def servable(self, earlier: EarlierPage, spec: CrawlSpec) -> bool:
        """Whether the page can be recorded as unchanged from the earlier record alone (a 304
        leaves nothing else): the earlier crawl had it as a 2xx, or as unchanged itself (a
        304 record keeps what the crawl before it had: validators, digest, links, where the
        body is), kept its links and, if the crawl stores its type, a body that can still be
        had. So a recrawl of a recrawl revalidates too, instead of fetching in full every
        other time."""
        record = earlier.record
        status = record.status
        answered = status is not None and (200 <= status < 300 or status == NOT_MODIFIED)
        if not answered or record.links is None:
            return False
        return not spec.stores(record.content_type) or self.body_reachable(earlier)

    def validators(self, earlier: EarlierPage | None, spec: CrawlSpec) -> dict[str, str]:
        """The conditional request headers for the page (none unless it is ``servable`` and
        its record has an ETag or Last-Modified)."""
        if earlier is None:
            return {}
        record = earlier.record
        if record.etag is None and record.last_modified is None:
            return {}
        if not self.servable(earlier, spec):
            return {}
        headers: dict[str, str] = {}
        if record.etag is not None:
            headers["If-None-Match"] = record.etag
        if record.last_modified is not None:
            headers["If-Modified-Since"] = record.last_modified
        return headers

    def unchanged_by(
        self, earlier: EarlierPage | None, lastmod_s: int | None, spec: CrawlSpec
    ) -> datetime | None:
        """The sitemap lastmod (``lastmod_s``, Unix seconds) by which the page is taken as
        unchanged without a request: one no later than the earlier crawl fetched a
        ``servable`` page; None if there is none such."""
        if earlier is None or lastmod_s is None:
            return None
        lastmod = datetime.fromtimestamp(lastmod_s, UTC)
        if lastmod > earlier.record.fetched_at or not self.servable(earlier, spec):
            return None
        return lastmod

    def close(self) -> None:
        self._index.close()
        opened = [*self._buckets.values(), *self._logs.values()]
        self._buckets, self._logs = {}, {}
        for fd in opened:
            os.close(fd)


class EarlierCrawls:
    """The earlier crawls one worker process reads, each opened once (off the event loop: the
    index of a crawl finalized before indexes were written is made from its manifest first),
    and closed once no job has asked for it for ``idle_s``: longer than a job may take, so no
    job still holds its folders then, and a long-lived worker keeps only the crawls it is
    recrawling open."""

    def __init__(self, data_dir: Path, idle_s: float) -> None:
        self._data_dir = data_dir
        self._idle_s = idle_s
        self._open: dict[str, tuple[EarlierCrawl, float]] = {}

    async def get(self, crawl_id: str, now: float | None = None) -> EarlierCrawl:
        """The finished crawl ``crawl_id`` (``now``: ``time.monotonic()``); EarlierMissing if
        it is not one in the data directory."""
        now = time.monotonic() if now is None else now
        for idle in [c for c, (_, used) in self._open.items() if now - used > self._idle_s]:
            self._open.pop(idle)[0].close()
        entry = self._open.get(crawl_id)
        if entry is None:
            opened = await asyncio.to_thread(EarlierCrawl, self._data_dir, crawl_id)
            entry = self._open.setdefault(crawl_id, (opened, now))
            if entry[0] is not opened:  # another job of the process opened it meanwhile
                opened.close()
        self._open[crawl_id] = (entry[0], now)
        return entry[0]

    @property
    def open(self) -> list[str]:
        """The ids of the crawls open now."""
        return list(self._open)

    def close(self) -> None:
        crawls, self._open = [c for c, _ in self._open.values()], {}
        for crawl in crawls:
            crawl.close()


@dataclass(frozen=True, slots=True)
class Against:
    """What a fetched page is against the earlier crawl: its ``change`` (None for a failure, a
    URL robots.txt excludes, an error status the earlier crawl did not have below 400), the
    earlier record, and whether the answer was a 304 to the validators sent, or, for a page
    not requested, the sitemap lastmod that said it is not modified (``lastmod``)."""

    change: Change | None
    earlier: EarlierPage | None
    not_modified: bool = False
    lastmod: datetime | None = None


# a page of a crawl that is not --since another
NOT_COMPARED = Against(None, None)


def not_requested(url: str, earlier: EarlierPage, lastmod: datetime) -> tuple[FetchResult, Against]:
    """A page its sitemap's ``lastmod`` says has not changed since the earlier crawl fetched
    it: the result a 304 without headers would be, no request made (no time taken, no
    exchange), and the page as unchanged, its body and links the earlier record's."""
    result = FetchResult(
        url=url, final_url=None, status=NOT_MODIFIED, content_type=None, body=b"",
        truncated=False, error=None, duration_ms=0,
    )  # fmt: skip
    return result, Against("unchanged", earlier, not_modified=True, lastmod=lastmod)


def against(
    result: FetchResult, earlier: EarlierPage | None, validated: bool, sha256: str | None
) -> Against:
    """Compare a fetch with the earlier crawl's record of its URL (``validated``: validators
    were sent; ``sha256``: of the body received)."""
    status = result.status
    if status is None:
        return Against(None, earlier)
    had = earlier is not None and earlier.had
    if status in GONE_STATUSES:
        return Against("gone" if had else None, earlier)
    if status == NOT_MODIFIED and validated:
        return Against("unchanged", earlier, not_modified=True)
    if status >= 400:
        return Against(None, earlier)
    if earlier is None or not had:
        return Against("new", earlier)
    before = earlier.record
    if result.redirect is not None or before.redirect is not None:
        same = result.redirect == before.redirect
    else:
        same = 200 <= status < 300 and before.sha256 is not None and before.sha256 == sha256
    return Against("unchanged" if same else "changed", earlier)


async def carry_body(earlier: EarlierPage, spec: CrawlSpec) -> Revalidated:
    """How a page the server says is not modified keeps the earlier crawl's body: none if the
    crawl does not store its type; the earlier response record's reference with ``--warc``;
    else a hard link of its file, or the body read from its WARC record (``store_page`` writes
    them). OSError if that record cannot be read."""
    record, earlier_crawl = earlier.record, earlier.source
    if not spec.stores(record.content_type):
        return Revalidated(record, None, None)
    response = earlier.response
    if spec.warc and response is not None:
        return Revalidated(record, None, response)
    source = earlier_crawl.body_name(earlier)
    if source is not None:
        return Revalidated(
            record, LinkedBody(earlier_crawl.bucket(record.fingerprint), source), None
        )
    if response is not None:
        holder = earlier_crawl.crawl_of(response)
        return Revalidated(record, await asyncio.to_thread(read_body, holder, response.warc), None)
    return Revalidated(record, None, None)


async def revisit_of(page: Against, result: FetchResult) -> RefersTo | None:
    """What the WARC record of an unchanged page refers to, if it is to be a ``revisit``: a
    304 always is (server-not-modified); a 200 with the same body is, when its payload as
    received has the earlier response record's digest too (identical-payload-digest), else it
    is recorded in full. None for any other page."""
    earlier = page.earlier
    if page.change != "unchanged" or earlier is None:
        return None
    response = earlier.response
    head: ResponseHead | None = None
    if response is not None:
        try:
            holder = earlier.source.crawl_of(response)
            head = await asyncio.to_thread(response_head, holder, response.warc)
        except (OSError, ValueError) as exc:
            log.warning("earlier warc record unreadable", reason=f"{type(exc).__name__}: {exc}")
    if page.not_modified:
        if head is None:  # the earlier crawl kept a body file: the capture by its date
            date = _warc_date(earlier.record.fetched_at)
            return RefersTo(SERVER_NOT_MODIFIED, earlier.record.url, date, None, None)
        return RefersTo(SERVER_NOT_MODIFIED, head.url, head.date, head.record_id, head.digest)
    exchange = result.exchange
    if head is None or exchange is None or head.digest != payload_digest(exchange.payload):
        return None
    return RefersTo(IDENTICAL_PAYLOAD, head.url, head.date, head.record_id, head.digest)


def _warc_date(when: datetime) -> str:
    return str(datetime_to_iso_date(when.replace(tzinfo=None), use_micros=True))


def refers_body(page: Against, refers: RefersTo | None) -> BodyRef | None:
    """Where the body of a page written as a revisit of a response record is."""
    if refers is None or refers.record_id is None or page.earlier is None:
        return None
    return page.earlier.response
