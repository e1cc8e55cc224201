"""Reading a finished crawl back from its data directory, without Redis: the pages it stored,
one page's body, and one file with everything (JSON lines or WARC).

Everything comes from the crawl's folder: the manifest (written when the crawl ended) lists
its pages; a body is read from the page's body file or, for a crawl that wrote WARC, from the
response record its page record points at (the same place index.cdxj names), or, for an
unchanged page of a crawl --since another that wrote WARC, the earlier crawl's response record
its record refers to (``body_in``).
"""

from __future__ import annotations

import base64
import io
import json
import shutil
from collections.abc import Iterator
from http import HTTPStatus
from importlib import metadata
from pathlib import Path
from typing import BinaryIO

from pydantic import ValidationError
from warcio.statusandheaders import StatusAndHeaders
from warcio.timeutils import datetime_to_iso_date
from warcio.warcwriter import WARCWriter

from crawlfleet.shared.errors import NotStored, UnknownCrawl, UnreadableCrawl
from crawlfleet.shared.storage import MANIFEST_EXCLUDES, CrawlLayout, PageRecord
from crawlfleet.shared.urls import canonicalize
from crawlfleet.shared.warc_index import read_body

NOT_MODIFIED = 304
# headers that describe the body as it was sent, not as a page file keeps it (decoded, whole)
_MASKED = frozenset({"content-encoding", "content-length", "transfer-encoding"})


class FinishedCrawl:
    """A crawl whose manifest has been written, read from ``data_dir``."""

    def __init__(self, data_dir: Path, crawl_id: str) -> None:
        self.layout = CrawlLayout(data_dir, crawl_id)
        self.crawl_id = crawl_id
        if not self.layout.manifest.is_file():
            raise UnknownCrawl(
                f"no finished crawl {crawl_id!r} in {data_dir} (no {self.layout.manifest.name}: "
                "it is still running, or was never written there)"
            )

    def pages(self, status: int | None = None) -> Iterator[PageRecord]:
        """The crawl's page records, by URL; only those with ``status`` if given."""
        with self.layout.manifest.open("rb") as lines:
            for number, line in enumerate(lines, 1):
                try:
                    record = PageRecord.model_validate_json(line)
                except ValidationError as exc:
                    raise UnreadableCrawl(
                        f"{self.layout.manifest}: line {number} is not a page record "
                        f"({exc.errors()[0]['msg']})"
                    ) from None
                if status is None or record.status == status:
                    yield record

    def page(self, url: str) -> PageRecord:
        """The record of ``url`` (as given, or in its canonical form); NotStored if none."""
        wanted = {url, canonicalize(url) or url}
        for record in self.pages():
            if record.url in wanted:
                return record
        raise NotStored(f"{url} is not a page of crawl {self.crawl_id}")

    def body(self, record: PageRecord) -> bytes:
        """The stored body of a page, its content coding undone; NotStored if it has none
        (a redirect's is never kept as the page's: its WARC record has it)."""
        if record.redirect is not None:
            raise NotStored(f"no body stored for {record.url}: a redirect to {record.redirect}")
        body_file = self.layout.stored_body(record)
        if body_file is not None:
            return body_file.read_bytes()
        if record.body_in is not None:  # an unchanged page's, in the earlier crawl's WARC
            holder = CrawlLayout(self.layout.data_dir, record.body_in.crawl_id)
            return read_body(holder, record.body_in.warc)
        if record.warc is not None:
            return read_body(self.layout, record.warc)
        why = record.error or "its content type was not kept"
        raise NotStored(f"no body stored for {record.url}: {why}")

    def export_jsonl(self, out: BinaryIO) -> int:
        """Write each page record with its body (base64, null if none) as one JSON line;
        returns the number of pages."""
        count = 0
        for record in self.pages():
            body = self._body_or_none(record)
            line = record.model_dump(mode="json", exclude=set(MANIFEST_EXCLUDES))
            line["body_base64"] = None if body is None else base64.b64encode(body).decode()
            out.write(json.dumps(line, ensure_ascii=False).encode() + b"\n")
            count += 1
        return count

    def export_warc(self, out: BinaryIO) -> int:
        """Write the crawl as one WARC file; returns the number of records of pages.

        A crawl that wrote WARC: its files one after the other (gzip members chain), as they
        are. Else one response record per page that got a response, built from its record and
        body file: the body is stored decoded, so the headers that described it as sent
        (Content-Encoding, Content-Length, Transfer-Encoding) are masked as X-Crawler-...,
        as wget and StormCrawler do, and replay tools do not decode it twice.
        """
        files = self.layout.warc_files()
        if files:
            for path in files:
                with path.open("rb") as src:
                    shutil.copyfileobj(src, out)
            return sum(1 for r in self.pages() if r.warc is not None)
        writer = WARCWriter(out, gzip=True, warc_version="1.1")
        writer.write_record(
            writer.create_warcinfo_record(
                "",
                {
                    "software": f"crawlfleet/{metadata.version('crawlfleet')} "
                    f"(warcio/{metadata.version('warcio')})",
                    "format": "WARC File Format 1.1",
                    "isPartOf": self.crawl_id,
                    "description": "exported from page files: bodies decoded, their "
                    "Content-Encoding and Content-Length masked as X-Crawler-*",
                },
            )
        )
        count = 0
        for record in self.pages():
            if record.status is None:
                continue  # no response: nothing to record
            # a 304 came without one (its page's body was the earlier crawl's)
            body = b"" if record.status == NOT_MODIFIED else self._body_or_none(record) or b""
            headers = [
                (f"X-Crawler-{name}" if name.lower() in _MASKED else name, value)
                for name, value in (record.headers or _headers_of(record))
            ]
            headers.append(("Content-Length", str(len(body))))
            date = datetime_to_iso_date(record.fetched_at.replace(tzinfo=None), use_micros=True)
            writer.write_record(
                writer.create_warc_record(
                    record.url,
                    "response",
                    payload=io.BytesIO(body),
                    length=len(body),
                    http_headers=StatusAndHeaders(
                        _status_line(record.status), headers, protocol="HTTP/1.1"
                    ),
                    warc_headers_dict={"WARC-Date": date},
                )
            )
            count += 1
        return count

    def _body_or_none(self, record: PageRecord) -> bytes | None:
        try:
            return self.body(record)
        except NotStored:
            return None


def _headers_of(record: PageRecord) -> list[tuple[str, str]]:
    """Headers for a record written before records kept them: its content type."""
    return [("Content-Type", record.content_type)] if record.content_type else []


def _status_line(status: int) -> str:
    """``200 OK``: the status with its reason phrase (the page record keeps no phrase)."""
    try:
        return f"{status} {HTTPStatus(status).phrase}"
    except ValueError:
        return f"{status} "
