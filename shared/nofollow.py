"""Files beneath a folder, reached without following a symbolic link.

Each folder below the base is opened relative to the one above it with ``O_NOFOLLOW``, and a
file is made, renamed, read or removed relative to its folder's descriptor. So a link planted
anywhere under the base (for its name, or swapped in while a write is under way) makes the call
fail with ``LinkRefused`` (``shared.errors``); nothing is ever read, written or removed through
it. The base itself (the data directory) is the user's to choose, and may be a link.
"""

from __future__ import annotations

import errno
import os
import secrets
import stat
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path

from crawlfleet.shared.errors import LinkRefused

TMP_SUFFIX = ".tmp"  # of a file being written (see write_at)

_BASE_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
_DIR_FLAGS = _BASE_FLAGS | os.O_NOFOLLOW
# a new file of its own, never a file another writer has opened, never a link's target
_NEW_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
# O_NONBLOCK: a FIFO planted under a record's name must not hang the reader
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


def _is_link(parent: int, name: str) -> bool:
    try:
        return stat.S_ISLNK(os.stat(name, dir_fd=parent, follow_symlinks=False).st_mode)
    except OSError:
        return False


def _open_dir(parent: int, name: str, base: Path, parts: Sequence[str]) -> int:
    """Open folder ``name`` of ``parent``: ``base/parts...``, named so only in an error (a page's
    write walks three folders, and building their paths costs more than opening them)."""
    try:
        return os.open(name, _DIR_FLAGS, dir_fd=parent)
    except OSError as exc:
        # a link opened with O_NOFOLLOW | O_DIRECTORY fails with ELOOP or ENOTDIR by kernel
        if exc.errno in (errno.ELOOP, errno.ENOTDIR) and _is_link(parent, name):
            raise LinkRefused(
                errno.ELOOP,
                f"{base.joinpath(*parts)} is a symbolic link, which crawlfleet does not follow",
            ) from None
        raise


def _subfolder(parent: int, name: str, base: Path, parts: Sequence[str], create: bool) -> int:
    try:
        return _open_dir(parent, name, base, parts)
    except FileNotFoundError:
        if not create:
            raise
    with suppress(FileExistsError):  # another writer made it meanwhile
        os.mkdir(name, 0o777, dir_fd=parent)
    return _open_dir(parent, name, base, parts)


def open_folder(base: Path, parts: Sequence[str], *, create: bool = False) -> int:
    """A descriptor of the folder ``base/parts...`` that the caller closes, each part opened
    without following a link (and made when missing, with ``create``)."""
    try:
        fd = os.open(base, _BASE_FLAGS)
    except FileNotFoundError:
        if not create:
            raise
        base.mkdir(parents=True, exist_ok=True)
        fd = os.open(base, _BASE_FLAGS)
    for depth, name in enumerate(parts, 1):
        try:
            step = _subfolder(fd, name, base, parts[:depth], create)
        finally:
            os.close(fd)
        fd = step
    return fd


@contextmanager
def folder(base: Path, parts: Sequence[str], *, create: bool = False) -> Iterator[int]:
    """A descriptor of the folder ``base/parts...`` for the ``with`` block (``open_folder``)."""
    fd = open_folder(base, parts, create=create)
    try:
        yield fd
    finally:
        os.close(fd)


def write_at(folder_fd: int, name: str, data: bytes) -> None:
    """Write ``data`` to ``name`` in the folder so that readers see the old file or the whole
    new one: a temporary file is written, then renamed over ``name`` (a link there is replaced,
    its target untouched). A crash in between leaves only a ``.tmp`` file, never a partial one.
    """
    # pid + random: unique across the processes and containers sharing the volume; O_EXCL
    # makes sure of it
    tmp = f".{name}.{os.getpid()}.{secrets.token_hex(4)}{TMP_SUFFIX}"
    fd = os.open(tmp, _NEW_FLAGS, 0o666, dir_fd=folder_fd)  # the umask applies, as for any file
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        finally:
            os.close(fd)
        os.rename(tmp, name, src_dir_fd=folder_fd, dst_dir_fd=folder_fd)
    except BaseException:
        remove_at(folder_fd, tmp)
        raise


def write_chunks_at(folder_fd: int, name: str, chunks: Iterable[bytes]) -> None:
    """Write ``chunks`` one after the other to ``name`` in the folder as ``write_at`` writes
    (the whole new file or none), through a buffer: a file too long to hold in memory is
    made as its chunks are made. An error from ``chunks`` leaves the old file."""
    tmp = f".{name}.{os.getpid()}.{secrets.token_hex(4)}{TMP_SUFFIX}"
    fd = os.open(tmp, _NEW_FLAGS, 0o666, dir_fd=folder_fd)
    try:
        with os.fdopen(fd, "wb") as file:
            for chunk in chunks:
                file.write(chunk)
        os.rename(tmp, name, src_dir_fd=folder_fd, dst_dir_fd=folder_fd)
    except BaseException:
        remove_at(folder_fd, tmp)
        raise


def read_at(folder_fd: int, name: str) -> bytes:
    """The bytes of the regular file ``name`` in the folder (OSError for a link or a FIFO)."""
    fd = os.open(name, _READ_FLAGS, dir_fd=folder_fd)
    with os.fdopen(fd, "rb") as file:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, f"{name} is not a regular file")
        return file.read()


def is_file_at(folder_fd: int, name: str) -> bool:
    """Whether ``name`` in the folder is a regular file (a link is not)."""
    try:
        return stat.S_ISREG(os.stat(name, dir_fd=folder_fd, follow_symlinks=False).st_mode)
    except FileNotFoundError:
        return False


# a file system that makes no hard link here (another device, or none at all): copied instead
_NO_LINK = frozenset({errno.EXDEV, errno.EPERM, errno.EMLINK, errno.EOPNOTSUPP, errno.ENOSYS})


def link_at(src_fd: int, src_name: str, folder_fd: int, name: str) -> None:
    """Make ``name`` in the folder the regular file ``src_name`` of the folder ``src_fd``, so
    that readers see the old file or the whole new one: a hard link made under ``name`` when
    nothing is there yet (a link is the whole file at once), else under a temporary name, then
    renamed over ``name``; a copy (``write_at``) where no link can be made. A link at
    ``src_name`` is refused (``LinkRefused``), never followed."""
    try:
        # linkat without AT_SYMLINK_FOLLOW: a link at src_name is linked, not followed
        os.link(src_name, name, src_dir_fd=src_fd, dst_dir_fd=folder_fd, follow_symlinks=False)
    except OSError:  # a file there already (a job run again), no link possible, no source
        _link_over(src_fd, src_name, folder_fd, name)
        return
    if is_file_at(folder_fd, name):
        return
    linked = _is_link(folder_fd, name)  # else a FIFO, a socket: no file either
    remove_at(folder_fd, name)
    if linked:
        raise LinkRefused(errno.ELOOP, f"{src_name} is a symbolic link, not followed")
    raise FileNotFoundError(errno.ENOENT, f"no file {src_name}")


def _link_over(src_fd: int, src_name: str, folder_fd: int, name: str) -> None:
    """``link_at`` where ``name`` may be taken: the link made under a temporary name, then
    renamed over it; a copy where no link can be made."""
    if not is_file_at(src_fd, src_name):
        if _is_link(src_fd, src_name):
            raise LinkRefused(errno.ELOOP, f"{src_name} is a symbolic link, not followed")
        raise FileNotFoundError(errno.ENOENT, f"no file {src_name}")
    tmp = f".{name}.{os.getpid()}.{secrets.token_hex(4)}{TMP_SUFFIX}"
    try:
        os.link(src_name, tmp, src_dir_fd=src_fd, dst_dir_fd=folder_fd, follow_symlinks=False)
    except OSError as exc:
        if exc.errno not in _NO_LINK:
            raise
        write_at(folder_fd, name, read_at(src_fd, src_name))
        return
    try:
        if not is_file_at(folder_fd, tmp):  # the source was swapped for a link meanwhile
            raise LinkRefused(errno.ELOOP, f"{src_name} is a symbolic link, not followed")
        os.rename(tmp, name, src_dir_fd=folder_fd, dst_dir_fd=folder_fd)
    except BaseException:
        remove_at(folder_fd, tmp)
        raise


def remove_at(folder_fd: int, name: str) -> None:
    """Remove ``name`` from the folder (a link itself, never its target), if it is there."""
    with suppress(FileNotFoundError):
        os.unlink(name, dir_fd=folder_fd)


def entries(folder_fd: int) -> list[os.DirEntry[str]]:
    """What the folder holds (links are not followed by the entries' ``is_dir``/``is_file``
    with ``follow_symlinks=False``)."""
    with os.scandir(folder_fd) as found:
        return list(found)
