"""What the tests read of a crawl's WARC files, with warcio alone (not the code under test)."""

from __future__ import annotations

import gzip
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from warcio.archiveiterator import ArchiveIterator

from tests.support.testweb import Page, Site, TestWeb

CAP = 2000
HTML = b"<!doctype html><html><body>" + b"<p>compressible words</p>" * 40 + b"</body></html>"


def warc_site(web: TestWeb) -> tuple[str, dict[str, bytes]]:
    """One host, a tree (no page found twice): plain, gzip-coded, chunked, cut, redirected and
    missing pages; the seed and each page's body as served."""
    u = lambda path: web.url(0, path)  # noqa: E731
    served = {
        u("/a"): HTML,
        u("/gz"): gzip.compress(HTML),
        u("/chunked"): HTML,
        u("/big"): b"x" * (CAP * 3),
        u("/file.txt"): b"plain resource\n",
    }
    root = Page(hrefs=["/a", "/gz", "/chunked", "/big", "/moved", "/missing", "/file.txt"])
    web.site = Site(
        {
            u("/"): root,
            u("/a"): Page(body=HTML),
            u("/gz"): Page(body=served[u("/gz")], headers={"Content-Encoding": "gzip"}),
            u("/chunked"): Page(body=HTML, chunked=True),
            u("/big"): Page(content_type="text/plain", body=served[u("/big")]),
            u("/moved"): Page(status=301, redirect_to=u("/a")),
            u("/file.txt"): Page(content_type="text/plain"),
        }
    )
    served[u("/")] = root.render()
    return u("/"), served


@dataclass
class WarcRecord:
    """One record of a WARC file as warcio reads it."""

    file: str
    offset: int
    length: int
    kind: str
    url: str
    record_id: str
    warc_headers: dict[str, str]
    http_status: str | None = None
    http_headers: list[tuple[str, str]] = field(default_factory=list)
    http_line: str | None = None
    payload: bytes = b""


def read_warc(path: Path) -> list[WarcRecord]:
    """Every record of a WARC file, payloads as stored (content coding kept)."""
    records = []
    with path.open("rb") as stream:
        iterator = ArchiveIterator(stream)
        for record in iterator:
            payload = record.raw_stream.read()
            iterator.read_to_end(record)
            http = record.http_headers
            records.append(
                WarcRecord(
                    file=path.name,
                    offset=iterator.get_record_offset(),
                    length=iterator.get_record_length(),
                    kind=record.rec_type,
                    url=record.rec_headers.get_header("WARC-Target-URI") or "",
                    record_id=record.rec_headers.get_header("WARC-Record-ID"),
                    warc_headers=dict(record.rec_headers.headers),
                    http_status=http.get_statuscode()
                    if http and record.rec_type == "response"
                    else None,
                    http_headers=list(http.headers) if http else [],
                    http_line=(f"{http.protocol} {http.statusline}" if http else None),
                    payload=payload,
                )
            )
    return records


def warcio_check(path: Path) -> subprocess.CompletedProcess[str]:
    """`warcio check` (digests and structure) on one file, as a command."""
    return subprocess.run(
        [str(Path(sys.executable).parent / "warcio"), "check", "-v", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
