"""The benchmark's web server: HTTP/1.1 with keep-alive on asyncio, in its own process.

Two modes, on loopback only:

- ``synthetic``: the :class:`~tests.support.synthetic.SyntheticSite` of a ``SiteConfig``,
  one listening socket per host (127.0.0.2, 127.0.0.3, ...), all on one port, every response
  delayed by the config's latency (without holding anything else up);
- ``static``: the files of a folder on 127.0.0.2 (``/`` and folders serve ``index.html``).

``synthetic ... --endless-links K`` also serves an endless host (:mod:`bench.trap`) on the
host after the site's, every page linking to K new ones; ``--slow-hosts N --slow-pages K
--slow-after S`` serves N hosts after those (:mod:`bench.slow`), each answering its K pages S
seconds after each request, and ``/_stats`` (how many requests the slow hosts had, how many
pages went out with their body and how many as a 304). ``--validators`` (either mode) gives
each page an ETag (of its body) and answers a request that sends it back with a 304
(:mod:`bench.recrawl`).

Run as ``python -m bench.server synthetic '<config json>'`` or ``... static <folder>``: it
prints ``PORT <n>`` once listening and serves until killed, or until ``--max-seconds``.
:class:`ServerProcess` does that from the benchmark and kills it in any case.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import mimetypes
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType
from urllib.parse import unquote, urlsplit

from bench.slow import SLOW_BODY, STATS_PATH, SlowHosts
from bench.trap import EndlessHost
from tests.support.synthetic import FIRST_HOST, SiteConfig, SyntheticSite

MAX_HEADER_BYTES = 16 * 1024
_NOT_FOUND = b"not found\n"


class Content:
    """What the server answers for a (host, path): status, content type and body."""

    latency_s = 0.0
    # with validators, a 200 carries an ETag of its body and a request that sends it back in
    # If-None-Match gets a 304; the pages answered with their body, and with a 304
    validators = False
    pages_sent = 0
    not_modified = 0

    def get(self, host: str, path: str) -> tuple[int, bytes, bytes]:
        raise NotImplementedError

    def etag(self, status: int, body: bytes) -> bytes | None:
        """The ETag a response carries (None: none, and no request gets a 304)."""
        if not self.validators or status != 200:
            return None
        return b'"%s"' % hashlib.sha1(body, usedforsecurity=False).hexdigest()[:16].encode()

    def latency_for(self, host: str) -> float:
        """How long the answers of ``host`` take."""
        return self.latency_s


class SyntheticContent(Content):
    def __init__(
        self, site: SyntheticSite, trap: EndlessHost | None = None, slow: SlowHosts | None = None,
        validators: bool = False,
    ) -> None:  # fmt: skip
        self.site = site
        self.trap = trap
        self.slow = slow
        self.validators = validators
        self.slow_hosts = frozenset(slow.names()) if slow is not None else frozenset()
        self.slow_requests = 0
        self.latency_s = site.config.latency_s

    def latency_for(self, host: str) -> float:
        if host in self.slow_hosts:
            assert self.slow is not None
            return self.slow.after_s
        return self.latency_s

    def get(self, host: str, path: str) -> tuple[int, bytes, bytes]:
        if path == STATS_PATH:
            stats = {
                "slow_requests": self.slow_requests,
                "pages_sent": self.pages_sent,
                "not_modified": self.not_modified,
            }
            return 200, b"application/json", json.dumps(stats).encode()
        if host in self.slow_hosts:
            assert self.slow is not None
            self.slow_requests += 1
            if not self.slow.is_page(path):
                return 404, b"text/plain", _NOT_FOUND
            return 200, b"text/html; charset=utf-8", SLOW_BODY
        if self.trap is not None and host == self.trap.host:
            n = self.trap.page_index(path)
            if n is None:
                return 404, b"text/plain", _NOT_FOUND
            return 200, b"text/html; charset=utf-8", self.trap.render(n)
        h = self.site.host_index(host)
        i = self.site.page_index(path)
        if h is None or i is None:
            return 404, b"text/plain", _NOT_FOUND
        return 200, b"text/html; charset=utf-8", self.site.render(h, i)


class StaticContent(Content):
    """Files of one folder; symbolic links are followed (Debian links shared JavaScript)."""

    def __init__(self, root: Path, validators: bool = False) -> None:
        self.root = root
        self.validators = validators
        self._cache: dict[str, tuple[int, bytes, bytes]] = {}

    def get(self, host: str, path: str) -> tuple[int, bytes, bytes]:
        if path == STATS_PATH:
            stats = {"pages_sent": self.pages_sent, "not_modified": self.not_modified}
            return 200, b"application/json", json.dumps(stats).encode()
        found = self._cache.get(path)
        if found is None:
            found = self._read(path)
            self._cache[path] = found
        return found

    def _read(self, path: str) -> tuple[int, bytes, bytes]:
        rel = os.path.normpath(unquote(path)).lstrip("/")
        if rel.startswith(".."):
            return 404, b"text/plain", _NOT_FOUND
        target = self.root / rel if rel not in ("", ".") else self.root
        if target.is_dir():
            target = target / "index.html"
        if not target.is_file():
            return 404, b"text/plain", _NOT_FOUND
        mime, _ = mimetypes.guess_type(target.name)
        mime = mime or "application/octet-stream"
        if mime.startswith("text/"):
            mime += "; charset=utf-8"
        return 200, mime.encode(), target.read_bytes()


_REASONS = {200: b"OK", 304: b"Not Modified", 404: b"Not Found", 400: b"Bad Request"}


class HttpProtocol(asyncio.Protocol):
    """One connection: requests answered in order, one at a time, kept alive."""

    def __init__(self, content: Content, stats: dict[str, int]) -> None:
        self.content = content
        self.stats = stats
        self.buffer = b""
        self.busy = False
        self.transport: asyncio.Transport | None = None
        self.loop = asyncio.get_running_loop()
        self.local_host = ""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        sockname = transport.get_extra_info("sockname")
        self.local_host = sockname[0] if sockname else ""

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if len(self.buffer) > MAX_HEADER_BYTES and b"\r\n\r\n" not in self.buffer:
            self._close()
            return
        self._next()

    def _close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def _next(self) -> None:
        if self.busy or self.transport is None:
            return
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        head, self.buffer = self.buffer[:end], self.buffer[end + 4 :]
        lines = head.split(b"\r\n")
        parts = lines[0].split(b" ")
        if len(parts) != 3:
            self._respond(400, b"text/plain", b"bad request\n", keep_alive=False)
            return
        _method, target, version = parts
        keep_alive = version == b"HTTP/1.1"
        host = self.local_host
        if_none_match = None
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            lname = name.strip().lower()
            if lname == b"connection":
                token = value.strip().lower()
                keep_alive = token != b"close" and (keep_alive or token == b"keep-alive")
            elif lname == b"host":
                host = value.strip().decode("latin-1").rsplit(":", 1)[0]
            elif lname == b"if-none-match":
                if_none_match = value.strip()
        path = urlsplit(target.decode("latin-1")).path or "/"
        status, ctype, body = self.content.get(host, path)
        etag = self.content.etag(status, body)
        if etag is not None and etag == if_none_match:
            status, body = 304, b""
            self.content.not_modified += 1
        elif status == 200 and path != STATS_PATH:
            self.content.pages_sent += 1
        self.busy = True
        latency = self.content.latency_for(host) if path != STATS_PATH else 0.0
        if latency > 0:
            self.loop.call_later(latency, self._respond, status, ctype, body, keep_alive, etag)
        else:
            self._respond(status, ctype, body, keep_alive, etag)

    def _respond(
        self, status: int, ctype: bytes, body: bytes, keep_alive: bool, etag: bytes | None = None
    ) -> None:
        self.busy = False
        if self.transport is None:
            return
        self.stats["requests"] += 1
        validator = b"ETag: %s\r\n" % etag if etag is not None else b""
        # a 304 has no body, so no Content-Length or Content-Type describes one
        framing = (
            b""
            if status == 304
            else b"Content-Type: %s\r\nContent-Length: %d\r\n"
            % (
                ctype,
                len(body),
            )
        )
        head = b"HTTP/1.1 %d %s\r\n%s%s%s\r\n" % (
            status,
            _REASONS.get(status, b"Other"),
            framing,
            validator,
            b"" if keep_alive else b"Connection: close\r\n",
        )
        self.transport.write(head + body)
        if not keep_alive:
            self.transport.close()
            return
        if self.buffer:
            self._next()


async def serve(content: Content, hosts: list[str], max_seconds: float) -> None:
    """Listen on every host on one port, print it, serve until ``max_seconds`` or a signal."""
    loop = asyncio.get_running_loop()
    stats = {"requests": 0}
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    servers: list[asyncio.Server] = []
    for _ in range(50):
        try:
            first = await loop.create_server(
                lambda: HttpProtocol(content, stats), hosts[0], 0, backlog=1024
            )
            servers = [first]
            port = first.sockets[0].getsockname()[1]
            for host in hosts[1:]:
                servers.append(
                    await loop.create_server(
                        lambda: HttpProtocol(content, stats), host, port, backlog=1024
                    )
                )
            break
        except OSError:
            for s in servers:
                s.close()
            servers = []
    if not servers:
        raise RuntimeError("no port free on every loopback host")
    if isinstance(content, SyntheticContent):
        content.site.port = port
    print(f"PORT {port}", flush=True)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), max_seconds)
    for s in servers:
        s.close()
    print(f"REQUESTS {stats['requests']}", flush=True)


class ServerProcess:
    """The server in a child process; ``port`` once started; killed on exit whatever happens."""

    def __init__(self, args: list[str], max_seconds: float = 1800) -> None:
        self.args = args
        self.max_seconds = max_seconds
        self.proc: subprocess.Popen[str] | None = None
        self.port = 0

    @classmethod
    def synthetic(
        cls, config: SiteConfig, max_seconds: float = 1800, endless_links: int = 0,
        slow: SlowHosts | None = None, validators: bool = False,
    ) -> ServerProcess:  # fmt: skip
        """The site of ``config``, and an endless host after it if ``endless_links``, and
        ``slow`` hosts after those; with ``validators``, pages carry an ETag and a request
        that sends it back gets a 304."""
        args = ["synthetic", json.dumps(config.to_dict())]
        if validators:
            args.append("--validators")
        if endless_links:
            args += ["--endless-links", str(endless_links)]
        if slow is not None:
            args += ["--slow-hosts", str(slow.hosts), "--slow-pages", str(slow.pages),
                     "--slow-after", str(slow.after_s)]  # fmt: skip
        return cls(args, max_seconds)

    @classmethod
    def static(
        cls, root: Path, max_seconds: float = 1800, validators: bool = False
    ) -> ServerProcess:
        """The files of ``root`` (with ``validators``, as ``synthetic``'s)."""
        return cls(["static", str(root), *(["--validators"] if validators else [])], max_seconds)

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self, timeout: float = 30) -> ServerProcess:
        cmd = [sys.executable, "-m", "bench.server", *self.args]
        cmd += ["--max-seconds", str(self.max_seconds)]
        self.proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True
        )
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if line.startswith("PORT "):
                self.port = int(line.split()[1])
                return self
            if not line and self.proc.poll() is not None:
                break
        self.stop()
        raise RuntimeError("the benchmark web server did not start")

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self.proc = None

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.server", description=__doc__)
    parser.add_argument("mode", choices=["synthetic", "static"])
    parser.add_argument("what", help="the SiteConfig as JSON, or the folder to serve")
    parser.add_argument("--max-seconds", type=float, default=3600)
    parser.add_argument(
        "--endless-links", type=int, default=0, help="also serve an endless host (bench.trap)"
    )
    parser.add_argument("--slow-hosts", type=int, default=0, help="slow hosts (bench.slow)")
    parser.add_argument("--slow-pages", type=int, default=0, help="URLs of each slow host")
    parser.add_argument("--slow-after", type=float, default=0.0, help="their answers' delay")
    parser.add_argument("--validators", action="store_true", help="pages carry an ETag; 304 to it")
    args = parser.parse_args()
    content: Content
    if args.mode == "synthetic":
        config = SiteConfig.from_dict(json.loads(args.what))
        trap = None
        if args.endless_links:
            trap = EndlessHost(config.hosts, args.endless_links, config.page_bytes)
        before_slow = config.hosts + (trap is not None)
        slow = None
        if args.slow_hosts:
            slow = SlowHosts(before_slow, args.slow_hosts, args.slow_pages, args.slow_after)
        content = SyntheticContent(SyntheticSite(config, 0), trap, slow, args.validators)
        hosts = [f"127.0.0.{FIRST_HOST + h}" for h in range(before_slow + args.slow_hosts)]
    else:
        content = StaticContent(Path(args.what), args.validators)
        hosts = [f"127.0.0.{FIRST_HOST}"]
    asyncio.run(serve(content, hosts, args.max_seconds))


if __name__ == "__main__":
    main()
