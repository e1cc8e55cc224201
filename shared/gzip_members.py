"""Reading a file of gzip members one after the other (a record log, a WARC file): where each
whole member starts, its length and what it holds, up to the first member that is not whole.

A member is whole only if its trailer is there and its CRC matches: a writer killed mid-append
leaves a cut last member, which readers leave out. Members are inflated by zlib-ng, a piece at a
time, so a file of any size is read in bounded memory when only each member's head is kept; a
member whose length the caller knows (its writer said so once it had written it whole) is
inflated only as far as its head, and the next one is read at its end.
"""

from __future__ import annotations

import mmap
import os
import stat
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import cast

from zlib_ng import zlib_ng

GZIP = zlib_ng.MAX_WBITS | 16
# bytes handed to the decompressor at a time: what it keeps past a member's end is copied, so
# a whole file at once would copy the rest of the file once per member
_CHUNK = 16 * 1024
# an exception class (its stub says an instance of one)
_INFLATE_ERROR = cast("type[Exception]", zlib_ng.error)
# how every member starts: ID1, ID2, CM (deflate)
_MAGIC = b"\x1f\x8b\x08"


@dataclass(frozen=True, slots=True)
class Member:
    """One whole member of a file: where it starts, its compressed length, what it holds (its
    first ``keep`` bytes, if a limit was given) and how many bytes it holds in all."""

    offset: int
    length: int
    data: bytes
    size: int | None  # None: only its head was inflated


def inflate(view: memoryview, keep: int | None = None) -> tuple[bytes, int, int] | None:
    """The data of the member at the start of ``view`` (its first ``keep`` bytes, if given),
    how many bytes it holds and its compressed length; None if no whole member starts there (a
    cut or damaged tail)."""
    inflater = zlib_ng.decompressobj(GZIP)
    out: list[bytes] = []
    kept = size = at = 0
    try:
        while not inflater.eof and at < len(view):
            chunk = view[at : at + _CHUNK]
            piece = inflater.decompress(chunk)
            size += len(piece)
            if keep is None or kept < keep:
                out.append(piece)
                kept += len(piece)
            at += len(chunk)
    except _INFLATE_ERROR:
        return None
    if not inflater.eof:
        return None
    data = b"".join(out)
    return (data if keep is None else data[:keep]), size, at - len(inflater.unused_data)


def inflate_head(view: memoryview, keep: int) -> bytes | None:
    """The first ``keep`` bytes of the data of the member at the start of ``view`` (all of it,
    if it holds fewer), inflating no more than that takes; None if the bytes there do not
    start a member. Its end is not checked."""
    inflater = zlib_ng.decompressobj(GZIP)
    out: list[bytes] = []
    kept = at = 0
    try:
        while kept < keep and not inflater.eof and at < len(view):
            chunk = view[at : at + _CHUNK]
            piece = inflater.decompress(chunk, keep - kept)
            out.append(piece)
            kept += len(piece)
            at += len(chunk) - len(inflater.unconsumed_tail)
    except _INFLATE_ERROR:
        return None
    return b"".join(out)


def whole_members(
    fd: int, keep: int | None = None, known: Mapping[int, int] | None = None
) -> Iterator[Member]:
    """The whole members of the file open at ``fd`` (a regular file, else OSError), in order,
    each with its data (its first ``keep`` bytes, if given); the first one that is not whole
    ends them. A member at an offset of ``known`` is taken to be as long as it says, and only
    its head is inflated (with ``keep``)."""
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        raise OSError(f"not a regular file (mode {info.st_mode:o})")
    if info.st_size == 0:
        return
    with mmap.mmap(fd, info.st_size, prot=mmap.PROT_READ) as mapped, memoryview(mapped) as view:
        at = 0
        while at < len(view):
            length = (known or {}).get(at)
            if keep is not None and length is not None and _ends_there(view, at, length):
                with view[at : at + length] as said:
                    head = inflate_head(said, keep)
                if head is not None:
                    yield Member(at, length, head, None)
                    at += length
                    continue
            with view[at:] as rest:
                whole = inflate(rest, keep)
            if whole is None:
                return
            data, size, length = whole
            yield Member(at, length, data, size)
            at += length


def _ends_there(view: memoryview, at: int, length: int) -> bool:
    """Whether the member at ``at`` may be ``length`` bytes long: it ends at the file's end, or
    where another one starts (a length said wrongly is not trusted to skip to a place where no
    member starts)."""
    end = at + length
    return at < end <= len(view) and (end == len(view) or view[end : end + 3] == _MAGIC)


def read_member(fd: int, offset: int, length: int) -> bytes:
    """The data of the member at ``offset`` of the file open at ``fd``, ``length`` bytes long;
    ValueError if no whole member of that length is there."""
    raw = os.pread(fd, length, offset)
    whole = inflate(memoryview(raw))
    if whole is None or whole[2] != length:
        raise ValueError(f"no gzip member of {length} bytes at offset {offset}")
    return whole[0]
