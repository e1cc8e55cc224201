"""A file of one worker process that it only appends to: a WARC file or a record log.

Each is made new (``O_EXCL``) under a name of its own, ``<stem>-<seq><suffix>``, so that no two
processes ever append to one file, and each append is one write that a failure cuts off again:
the file never holds a partial piece before a whole one, and only a process killed mid-write
leaves a partial last one.
"""

from __future__ import annotations

import contextlib
import os
import re
from datetime import UTC, datetime
from pathlib import Path

from crawlfleet.shared.storage import CrawlLayout

_APPEND_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | os.O_CLOEXEC
_UNSAFE_IN_NAMES = re.compile(r"[^A-Za-z0-9_.-]")


def file_stem(worker_id: str) -> str:
    """``<worker>-<time>``: the start of the names of a process's files, from its worker id
    (what a name may not hold replaced) and its start time, never from URL text."""
    worker = _UNSAFE_IN_NAMES.sub("_", worker_id)[:64] or "worker"
    return f"{worker}-{datetime.now(UTC):%Y%m%d%H%M%S}"


class AppendFile:
    """One open file, appended to by one thread of one process."""

    def __init__(self, path: Path, fd: int, suffix: str) -> None:
        self.path = path
        self._fd = fd
        self._suffix = suffix
        self.size = 0
        self.broken = False

    @classmethod
    def create(
        cls, layout: CrawlLayout, folder: Path, stem: str, seq: int, suffix: str
    ) -> AppendFile:
        """A new file ``<stem>-<seq><suffix>`` in ``folder`` of the crawl, reached without
        following a link (the next free ``seq``: a restarted worker with the same id and clock
        second never appends to another process's file)."""
        while True:
            path = folder / f"{stem}-{seq:05d}{suffix}"
            try:
                return cls(path, layout.open_fd(path, _APPEND_FLAGS), suffix)
            except FileExistsError:
                seq += 1

    @property
    def seq(self) -> int:
        return int(self.path.name.removesuffix(self._suffix).rsplit("-", 1)[1])

    @property
    def unlinked(self) -> bool:
        """Whether the file was removed from its folder (what is appended then is lost)."""
        return os.fstat(self._fd).st_nlink == 0

    def append(self, data: bytes | bytearray) -> int:
        """Append ``data`` in one write (more only if the kernel takes part of it); returns
        the offset it starts at. A failed write is cut off again, so the file never holds a
        partial piece before a whole one."""
        start = os.lseek(self._fd, 0, os.SEEK_END)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(self._fd, view) :]
        except BaseException:
            try:
                os.ftruncate(self._fd, start)
            except OSError:
                self.broken = True  # what it holds past ``start`` is not ours to vouch for
            raise
        self.size = start + len(data)
        return start

    def close(self) -> None:
        """Sync the file to disk and close it (a file that cannot be synced is closed all the
        same: what it holds is in the kernel's hands)."""
        try:
            with contextlib.suppress(OSError):
                os.fsync(self._fd)
        finally:
            os.close(self._fd)
