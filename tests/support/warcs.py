"""What the tests read of a crawl's WARC files, with warcio alone (not the code under test)."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from warcio.archiveiterator import ArchiveIterator


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
