"""A hostile web server on loopback: slow, endless, lying, compressed-bomb and trap pages.

The slow ones, each until the server stops: ``/silent/...`` (and ``/robots.txt`` when the
server is made with ``silent_robots``) reads the request and answers nothing,
``/head-only/...`` sends a response head and then nothing, ``/slowloris/...`` trickles its body
a byte every 0.2 s. The server notes when each request came (``arrivals``).
"""

from __future__ import annotations

import gzip
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType

HOST = "127.0.0.5"
BOMB_SIZE = 64 * 1024 * 1024  # what the gzip bomb inflates to
_BOMB = gzip.compress(b"\0" * BOMB_SIZE, compresslevel=9)
DEEP_LEVELS = 100_000
MANY_LINKS = 100_000


def _deep_page() -> bytes:
    return b"<html><body>" + b"<div>" * DEEP_LEVELS + b'<a href="/deep-link">x</a></body></html>'


def _many_links_page() -> bytes:
    links = "".join(f'<a href="/m/{i}">{i}</a>' for i in range(MANY_LINKS))
    return f"<html><body>{links}</body></html>".encode()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def do_GET(self) -> None:
        with self.server.lock:
            self.server.arrivals.append((self.path, time.monotonic()))
        self._answer(self.path)

    def _answer(self, path: str) -> None:
        if path.startswith("/silent") or (path == "/robots.txt" and self.server.silent_robots):
            self.server.stopping.wait()
        elif path.startswith("/head-only"):
            self._head(200, "text/html", length=1000)
            self.wfile.flush()
            self.server.stopping.wait()
        elif path.startswith("/slowloris"):
            self._head(200, "text/html", chunked=True)
            while not self.server.stopping.is_set():
                self._chunk(b"<")
                time.sleep(0.2)
        elif path == "/endless":
            self._head(200, "text/html", chunked=True)
            block = b"<p>" + b"x" * 65_536
            while not self.server.stopping.is_set():
                self._chunk(block)
        elif path == "/huge-length":
            self._head(200, "text/html", length=2 * 1024**3)
            block = b"y" * 65_536
            while not self.server.stopping.is_set():
                self.wfile.write(block)
        elif path == "/gzip-bomb":
            self._head(200, "text/html", length=len(_BOMB), extra={"Content-Encoding": "gzip"})
            self.wfile.write(_BOMB)
        elif path == "/bad-gzip":
            body = b"this is not gzip at all"
            self._head(200, "text/html", length=len(body), extra={"Content-Encoding": "gzip"})
            self.wfile.write(body)
        elif path in ("/to-ftp", "/to-js"):
            target = "ftp://127.0.0.1/x" if path == "/to-ftp" else "javascript:alert(1)"
            self._head(302, "text/html", length=0, extra={"Location": target})
        elif path == "/redirect-endless":
            self._head(302, "text/html", chunked=True, extra={"Location": "/dots"})
            block = b"<p>" + b"r" * 65_536
            while not self.server.stopping.is_set():
                self._chunk(block)
        elif path == "/deep":
            self._page(self.server.deep)
        elif path == "/many-links":
            self._page(self.server.many)
        elif path.startswith("/calendar/"):
            month = int(path.rsplit("/", 1)[1])
            self._page(f'<a href="/calendar/{month + 1}">next month</a>'.encode())
        elif path == "/tricky":
            long = "/" + "a" * 10_000
            self._page(
                f'<a href="{long}">long</a><a href="/x/%2e%2e/dots">dots</a>'
                f'<a href="/nul\x00byte">nul</a><a href="http://b\u00fccher.example/">idna</a>'
                '<a href="HTTP://127.0.0.5:{port}/calendar/0#frag">case</a>'.replace(
                    "{port}", str(self.server.server_address[1])
                ).encode()
            )
        elif path == "/dots":
            self._page(b"arrived")
        else:
            self._head(404, "text/plain", length=0)

    def _page(self, body: bytes) -> None:
        self._head(200, "text/html; charset=utf-8", length=len(body))
        self.wfile.write(body)

    def _head(
        self,
        status: int,
        ctype: str,
        *,
        length: int | None = None,
        chunked: bool = False,
        extra: dict[str, str] | None = None,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
        elif length is not None:
            self.send_header("Content-Length", str(length))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def log_message(self, format: str, *args: object) -> None:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, silent_robots: bool) -> None:
        self.silent_robots = silent_robots
        self.stopping = threading.Event()
        self.lock = threading.Lock()
        self.arrivals: list[tuple[str, float]] = []
        self.deep = _deep_page()
        self.many = _many_links_page()
        super().__init__((HOST, 0), _Handler)

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # clients hang up on endless pages: that is the point


class HostileWeb:
    """The hostile server, started and stopped as a context manager; ``silent_robots``: its
    robots.txt never answers."""

    def __init__(self, silent_robots: bool = False) -> None:
        self._server = _Server(silent_robots)
        self.port = self._server.server_address[1]

    def url(self, path: str) -> str:
        return f"http://{HOST}:{self.port}{path}"

    def arrivals(self) -> list[tuple[str, float]]:
        """(path, when it came: ``time.monotonic``) of every request so far."""
        with self._server.lock:
            return list(self._server.arrivals)

    def __enter__(self) -> HostileWeb:
        threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._server.stopping.set()
        self._server.shutdown()
        self._server.server_close()
