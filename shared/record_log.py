"""The format of a record log: page records appended one after the other, each its JSON line
compressed as one gzip member, so that the file is a ``.jsonl.gz`` that ``zcat`` reads.

A member is appended in one write: a writer killed mid-append leaves at most a partial last
member, which readers leave out (``members``), so a log reads whole up to its last whole record.
One member per record, rather than one stream per file, is what lets a reader take one record
at its offset (``read_member``) and a writer never leave a member that later ones depend on.
"""

from __future__ import annotations

import mmap
import os
import stat
from dataclasses import dataclass
from typing import cast

from zlib_ng import zlib_ng

# zlib's default level, as the WARC records' (workers/warc.py): JSON of links compresses
# about five-fold at it
LEVEL = 6
_GZIP = zlib_ng.MAX_WBITS | 16
# bytes handed to the decompressor at a time: what it keeps past a member's end is copied, so
# a whole file at once would copy the rest of the file once per member
_CHUNK = 16 * 1024
# an exception class (its stub says an instance of one)
_INFLATE_ERROR = cast("type[Exception]", zlib_ng.error)


@dataclass(frozen=True, slots=True)
class Member:
    """One whole member of a log: where it starts, its compressed length and what it holds."""

    offset: int
    length: int
    data: bytes


def member(line: bytes) -> bytes:
    """``line`` as one gzip member."""
    compressor = zlib_ng.compressobj(LEVEL, zlib_ng.DEFLATED, _GZIP)
    return compressor.compress(line) + compressor.flush()


def _decompress(view: memoryview) -> tuple[bytes, int] | None:
    """The data of the member at the start of ``view`` and its length; None if none whole
    starts there (a cut or damaged tail)."""
    inflater = zlib_ng.decompressobj(_GZIP)
    out: list[bytes] = []
    at = 0
    try:
        while not inflater.eof and at < len(view):
            chunk = view[at : at + _CHUNK]
            out.append(inflater.decompress(chunk))
            at += len(chunk)
    except _INFLATE_ERROR:
        return None
    if not inflater.eof:
        return None
    return b"".join(out), at - len(inflater.unused_data)


def members(fd: int) -> tuple[list[Member], int]:
    """The whole members of the log open at ``fd`` (a regular file, else OSError), in order,
    and how many bytes past the last one are left out (a member cut by a killed writer)."""
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        raise OSError(f"not a regular file (mode {info.st_mode:o})")
    if info.st_size == 0:
        return [], 0
    found: list[Member] = []
    with mmap.mmap(fd, info.st_size, prot=mmap.PROT_READ) as mapped, memoryview(mapped) as view:
        at = 0
        while at < len(view):
            whole = _decompress(view[at:])
            if whole is None:
                break
            data, length = whole
            found.append(Member(at, length, data))
            at += length
    return found, info.st_size - at


def read_member(fd: int, offset: int, length: int) -> bytes:
    """The data of the member at ``offset`` of the log open at ``fd``, ``length`` bytes long;
    ValueError if no whole member of that length is there."""
    raw = os.pread(fd, length, offset)
    whole = _decompress(memoryview(raw))
    if whole is None or whole[1] != length:
        raise ValueError(f"no record of {length} bytes at offset {offset}")
    return whole[0]
