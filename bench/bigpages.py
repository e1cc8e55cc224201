"""Scenario ``bigpages``: the site a worker's memory bound is measured on.

8 hosts (127.0.0.2-9, one port) whose home page links to 8 pages of 10 MiB each (the default
``--max-bytes-per-page``), served from memory by threads of the benchmark's process, each
after half a second: at the default 8 requests a host, one worker has all 64 in flight at once,
640 MiB of bodies, which its body budget (``CRAWLFLEET_MAX_BODY_BYTES_IN_FLIGHT``, 256 MiB)
bounds.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

HOSTS = 8
PAGES_PER_HOST = 8
PAGE_BYTES = 10 * 1024 * 1024
LATENCY_S = 0.5
_BODY = b"<html><body><p>" + b"x" * (PAGE_BYTES - 64) + b"</p></body></html>"
_HOME = (
    "<html><body>"
    + "".join(f'<a href="/big/{i}.html">{i}</a>' for i in range(PAGES_PER_HOST))
    + "</body></html>"
).encode()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        if self.path == "/":
            body = _HOME
        elif self.path.startswith("/big/"):
            time.sleep(LATENCY_S)
            body = _BODY
        else:
            body = b""
        self.send_response(200 if body else 404)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        return


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.2", 0))
        return int(s.getsockname()[1])


@contextmanager
def big_pages_site() -> Iterator[tuple[list[str], set[str]]]:
    """Serve the site; yields its seeds (the home pages) and every URL a crawl of depth 1
    should store."""
    port = _free_port()
    with ExitStack() as stack:
        for h in range(HOSTS):
            server = ThreadingHTTPServer((f"127.0.0.{2 + h}", port), _Handler)
            server.daemon_threads = True
            threading.Thread(target=server.serve_forever, daemon=True).start()
            stack.callback(server.server_close)
            stack.callback(server.shutdown)
        seeds = [f"http://127.0.0.{2 + h}:{port}/" for h in range(HOSTS)]
        pages = {f"{seed}big/{i}.html" for seed in seeds for i in range(PAGES_PER_HOST)}
        yield seeds, set(seeds) | pages
