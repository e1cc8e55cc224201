"""The format of a record log: page records appended one after the other, each its JSON line
compressed as one gzip member, so that the file is a ``.jsonl.gz`` that ``zcat`` reads.

A member is appended in one write: a writer killed mid-append leaves at most a partial last
member, which readers leave out (``shared.gzip_members``), so a log reads whole up to its last
whole record. One member per record, rather than one stream per file, is what lets a reader
take one record at its offset (``gzip_members.read_member``) and a writer never leave a member
that later ones depend on.
"""

from __future__ import annotations

from zlib_ng import zlib_ng

from crawlfleet.shared.gzip_members import GZIP

# zlib's default level, as the WARC records' (workers/warc.py)
LEVEL = 6


def member(line: bytes) -> bytes:
    """``line`` as one gzip member."""
    compressor = zlib_ng.compressobj(LEVEL, zlib_ng.DEFLATED, GZIP)
    return compressor.compress(line) + compressor.flush()
