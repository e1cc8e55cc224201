"""Scenario ``start``: what a one-page crawl costs, start-up and shutdown included.

``crawlfleet run URL --depth 0`` as a user types it (embedded Redis, 2 workers, defaults)
against one page served on loopback: the wall time from the command to its exit, and the CPU of
its whole process tree (the CLI, its workers and its redis-server, all reaped by it, so
``RUSAGE_CHILDREN`` holds them). A new data directory each round, as a first crawl has.
"""

from __future__ import annotations

import os
import resource
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

_PAGE = b"<html><head><title>one</title></head><body><a href='/next'>next</a></body></html>"


class _OnePage(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        found = self.path == "/"
        self.send_response(200 if found else 404)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(_PAGE) if found else 0))
        self.end_headers()
        if found:
            self.wfile.write(_PAGE)

    def log_message(self, format: str, *args: Any) -> None:
        return


@contextmanager
def one_page_site() -> Iterator[str]:
    """A server of one page on loopback, in a thread; yields its URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _OnePage)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


@dataclass
class StartupResult:
    """Each round's wall and process-tree CPU seconds; ``error`` if a round failed."""

    wall_s: list[float] = field(default_factory=list)
    cpu_s: list[float] = field(default_factory=list)
    error: str | None = None

    def line(self) -> str:
        if self.error or not self.wall_s:
            return f"start: error: {self.error}"
        return (
            f"start: `crawlfleet run URL --depth 0` (embedded Redis, 2 workers, defaults): "
            f"wall {_spread(self.wall_s)} s, CPU of its process tree {_spread(self.cpu_s)} s "
            f"({len(self.wall_s)} runs)"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "wall_s": [round(s, 3) for s in self.wall_s],
            "cpu_s": [round(s, 3) for s in self.cpu_s],
            "wall_median_s": round(statistics.median(self.wall_s), 3) if self.wall_s else None,
            "cpu_median_s": round(statistics.median(self.cpu_s), 3) if self.cpu_s else None,
            "error": self.error,
        }


def _spread(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} ({min(values):.2f}-{max(values):.2f})"


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_startup(work_dir: Path, rounds: int, timeout_s: float) -> StartupResult:
    """``rounds`` one-page crawls, each in a data directory of its own under ``work_dir``."""
    result = StartupResult()
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    with one_page_site() as url:
        for round_ in range(rounds):
            data = work_dir / f"data-{round_}"
            cpu_before, began = _children_cpu(), time.monotonic()
            done = subprocess.run(
                [sys.executable, "-m", "crawlfleet.scheduler", "run", url, "--depth", "0",
                 "--data-dir", str(data)],
                env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                timeout=timeout_s, check=False,
            )  # fmt: skip
            wall = time.monotonic() - began
            if done.returncode != 0:
                result.error = f"exit {done.returncode}: {done.stderr.strip()[-300:]}"
                return result
            result.wall_s.append(wall)
            result.cpu_s.append(_children_cpu() - cpu_before)
    return result
