"""Reading a crawl's WARC files back: their whole records, the crawl's CDXJ index, one
record's body.

The index is pywb's CDXJ: one line per response (or revisit) record, ``<SURT key> <14-digit
date> {json}`` with the url, mime, status, digest, length, offset and filename pywb's own
indexer writes, sorted as pywb expects (byte order). It is built from the files themselves, so
a worker killed mid-record changes nothing: its cut last member is left out of the index and
cut off its file (``repair``), which then reads whole again. Of what workers said they wrote
only the lengths of response records that page records name are taken (a page record is
appended only once its WARC records were written whole), to read no more of those than their
headers.
"""

from __future__ import annotations

import io
import json
import os
import re
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from warcio.archiveiterator import ArchiveIterator
from warcio.exceptions import ArchiveLoadFailed
from warcio.recordloader import ArcWarcRecord, ArcWarcRecordLoader

from crawlfleet.shared.gzip_members import read_member, whole_members
from crawlfleet.shared.mime import media_type
from crawlfleet.shared.storage import CrawlLayout, WarcRef

_WWW = re.compile(r"www\d*\.")
# the records the index lists, as pywb's indexer does
_INDEXED = ("response", "revisit")
# what warcio raises on bytes that are no WARC record (a member cut in its gzip header...)
_UNREADABLE = (ArchiveLoadFailed, zlib.error, EOFError, ValueError, OSError)
# how much of each record the index reads: its WARC and HTTP headers fit (a record whose headers
# do not is inflated whole)
_HEAD_BYTES = 8 * 1024
_LOADER = ArcWarcRecordLoader()


@dataclass(frozen=True, slots=True)
class Record:
    """One whole record of a WARC file: where it is and what it says (headers only)."""

    offset: int
    length: int
    kind: str  # WARC-Type
    url: str
    date: str  # WARC-Date
    status: str | None  # the HTTP status of a response
    mime: str | None  # its Content-Type, without parameters
    digest: str | None  # its WARC-Payload-Digest


def surt_key(url: str) -> str:
    """The SURT sort key of a canonical URL, as pywb's indexer writes it: no scheme, the host's
    labels reversed (an IPv4 address's too) without a leading ``www``, the port if not the
    default, then path and query lower-cased, a trailing slash dropped but the root's.

    URLs here are already canonical (``shared.urls``: host lower-cased, default port dropped,
    query sorted), so the session-id stripping of the Java original is all that is left out.
    """
    parts = urlsplit(url)
    host = _WWW.sub("", parts.hostname or "", count=1)
    key = ",".join(reversed(host.split(".")))
    if parts.port is not None and parts.port != {"http": 80, "https": 443}.get(parts.scheme):
        key += f":{parts.port}"
    path = parts.path.lower() or "/"
    if len(path) > 1 and path.endswith("/"):
        path = path[:-1]
    query = f"?{parts.query.lower()}" if parts.query else ""
    return f"{key}){path}{query}"


def whole_records(
    layout: CrawlLayout, path: Path, known: Mapping[int, int] | None = None
) -> tuple[list[Record], int]:
    """The whole records of a WARC file, in order, and the offset where the last one ends.

    Each gzip member is inflated once, by zlib-ng, and only its head is parsed (by warcio):
    the WARC and HTTP headers, all an index line needs. A member cut short (its trailer
    missing) or one that holds no WARC record ends the records. ``known`` gives the lengths of
    members by offset that were written whole (response records that page records name): of
    those only the head is inflated.
    """
    records: list[Record] = []
    fd = layout.open_fd(path)
    try:
        for member in whole_members(fd, _HEAD_BYTES, known):
            data = member.data
            cut = member.size is None or member.size > len(data)
            try:
                if cut and data.count(b"\r\n\r\n") < 2:  # headers past the head
                    data = read_member(fd, member.offset, member.length)
                record = _LOADER.parse_record_stream(io.BytesIO(data))
            except _UNREADABLE:
                break  # what follows the last whole record is cut off by ``repair``
            records.append(_described(record, member.offset, member.length))
    finally:
        os.close(fd)
    end = records[-1].offset + records[-1].length if records else 0
    return records, end


def _described(record: ArcWarcRecord, offset: int, length: int) -> Record:
    headers, http = record.rec_headers, record.http_headers
    kind = headers.get_header("WARC-Type") or ""
    status = mime = None
    if http is not None and kind in ("response", "revisit"):
        status = http.get_statuscode()
        mime = media_type(http.get_header("Content-Type")) or None
    return Record(
        offset=offset,
        length=length,
        kind=kind,
        url=headers.get_header("WARC-Target-URI") or "",
        date=headers.get_header("WARC-Date") or "",
        status=status,
        mime=mime,
        digest=headers.get_header("WARC-Payload-Digest"),
    )


def repair(layout: CrawlLayout, path: Path) -> int:
    """Cut off what follows the last whole record of a file (a writer killed mid-record);
    returns how many bytes. Only for a crawl that has ended: no writer appends to it then."""
    _, end = whole_records(layout, path)
    return _cut_at(layout, path, end)


def _cut_at(layout: CrawlLayout, path: Path, end: int) -> int:
    """Cut the file off at ``end`` (where its last whole record ends); how many bytes."""
    fd = layout.open_fd(path, os.O_WRONLY)
    try:
        cut = os.fstat(fd).st_size - end
        if cut > 0:
            os.ftruncate(fd, end)
    finally:
        os.close(fd)
    return max(cut, 0)


def _date14(warc_date: str) -> str:
    """``2026-12-07T02:00:23.132263Z`` as ``20261207020023``."""
    return re.sub(r"\D", "", warc_date)[:14]


def cdxj_line(record: Record, filename: str) -> str:
    """The index line of a response or revisit record (a revisit as pywb writes one: mime
    ``warc/revisit``, no status)."""
    fields = {"url": record.url}
    if record.kind == "revisit":
        fields["mime"] = "warc/revisit"
    else:
        fields |= {"mime": record.mime or "unk", "status": record.status or "-"}
    fields |= {
        "digest": (record.digest or "-").removeprefix("sha1:"),
        "length": str(record.length),
        "offset": str(record.offset),
        "filename": filename,
    }
    return f"{surt_key(record.url)} {_date14(record.date)} {json.dumps(fields)}"


def write_index(
    layout: CrawlLayout, known: Mapping[str, Mapping[int, int]] | None = None
) -> tuple[int, int]:
    """Repair the crawl's WARC files and write ``index.cdxj`` (if it has any WARC file);
    returns the lines written and the bytes cut off. ``known``: the lengths of members
    written whole, by file name and offset (``whole_records``)."""
    lines: list[str] = []
    cut = 0
    files = layout.warc_files()
    if not files:
        return 0, 0
    for path in files:
        # read once: the records before the cut are the same after it
        records, end = whole_records(layout, path, (known or {}).get(path.name))
        cut += _cut_at(layout, path, end)
        lines.extend(cdxj_line(r, path.name) for r in records if r.kind in _INDEXED)
    lines.sort(key=lambda line: line.encode())
    layout.write(layout.index, "".join(f"{line}\n" for line in lines).encode())
    return len(lines), cut


def read_index(layout: CrawlLayout) -> Iterator[tuple[str, str, dict[str, str]]]:
    """The lines of the crawl's index: SURT key, date, fields."""
    with os.fdopen(layout.open_fd(layout.index), encoding="utf-8") as lines:
        for line in lines:
            key, date, fields = line.rstrip("\n").split(" ", 2)
            yield key, date, json.loads(fields)


@dataclass(frozen=True, slots=True)
class ResponseHead:
    """What a later ``revisit`` record names of a response record."""

    url: str  # WARC-Target-URI
    date: str  # WARC-Date
    record_id: str  # WARC-Record-ID
    digest: str | None  # WARC-Payload-Digest


def response_head(layout: CrawlLayout, ref: WarcRef) -> ResponseHead:
    """The WARC headers of the record at ``ref`` (its body is not read); ValueError if it is no
    response record, OSError if it cannot be read."""
    path = layout.warc_path(ref.filename)
    with os.fdopen(layout.open_fd(path), "rb") as stream:
        stream.seek(ref.offset)
        try:
            record = next(iter(ArchiveIterator(stream)))
        except (StopIteration, *_UNREADABLE) as exc:
            raise ValueError(f"no WARC record at {ref.filename}:{ref.offset}") from exc
        headers = record.rec_headers
        if headers.get_header("WARC-Type") != "response":
            raise ValueError(f"no response record at {ref.filename}:{ref.offset}")
        return ResponseHead(
            url=headers.get_header("WARC-Target-URI") or "",
            date=headers.get_header("WARC-Date") or "",
            record_id=headers.get_header("WARC-Record-ID") or "",
            digest=headers.get_header("WARC-Payload-Digest"),
        )


def read_body(layout: CrawlLayout, ref: WarcRef) -> bytes:
    """The body of the response record at ``ref``, its content coding undone (as received,
    if it cannot be: a body cut by the size cap in mid-stream)."""
    path = layout.warc_path(ref.filename)
    with os.fdopen(layout.open_fd(path), "rb") as stream:
        stream.seek(ref.offset)
        member = stream.read(ref.length)
    record = next(iter(ArchiveIterator(io.BytesIO(member))))
    try:
        return bytes(record.content_stream().read())
    except (zlib.error, OSError, EOFError):
        record = next(iter(ArchiveIterator(io.BytesIO(member))))
        return bytes(record.raw_stream.read())
