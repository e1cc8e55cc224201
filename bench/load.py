"""A bounded load generator for the benchmark's own server: keep-alive GETs on raw sockets.

``python -m bench.load URLS_FILE --connections 32 --requests 20000 --seconds 10`` sends at most
``--requests`` requests in at most ``--seconds`` seconds over ``--connections`` keep-alive
connections, cycling through the URLs (all on 127.0.0.0/8), and prints one JSON line:
requests done, seconds, errors, bytes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path
from urllib.parse import urlsplit


def _check_loopback(url: str) -> tuple[str, int, str]:
    parts = urlsplit(url)
    host = parts.hostname or ""
    if not host.startswith("127."):
        raise SystemExit(f"refusing a non-loopback URL: {url}")
    return host, parts.port or 80, parts.path or "/"


async def _connection(
    targets: list[tuple[str, int, str]],
    offset: int,
    budget: dict[str, int],
    deadline: float,
    totals: dict[str, int],
) -> None:
    by_host: dict[tuple[str, int], tuple[asyncio.StreamReader, asyncio.StreamWriter]] = {}
    n = offset
    try:
        while budget["left"] > 0 and time.monotonic() < deadline:
            budget["left"] -= 1
            host, port, path = targets[n % len(targets)]
            n += 1
            conn = by_host.get((host, port))
            if conn is None:
                conn = await asyncio.open_connection(host, port)
                by_host[(host, port)] = conn
            reader, writer = conn
            writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode())
            try:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                await reader.readexactly(length)
            except (asyncio.IncompleteReadError, ConnectionError):
                totals["errors"] += 1
                writer.close()
                del by_host[(host, port)]
                continue
            totals["requests"] += 1
            totals["bytes"] += len(head) + length
    finally:
        for _, writer in by_host.values():
            writer.close()


async def run(urls: list[str], connections: int, requests: int, seconds: float) -> dict[str, float]:
    targets = [_check_loopback(u) for u in urls]
    budget = {"left": requests}
    totals = {"requests": 0, "errors": 0, "bytes": 0}
    started = time.monotonic()
    deadline = started + seconds
    step = max(1, len(targets) // max(1, connections))
    await asyncio.gather(
        *(_connection(targets, c * step, budget, deadline, totals) for c in range(connections))
    )
    elapsed = time.monotonic() - started
    return {**totals, "seconds": round(elapsed, 3)}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.load", description=__doc__)
    parser.add_argument("urls_file", type=Path)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    urls = args.urls_file.read_text().split()
    result = asyncio.run(run(urls, args.connections, args.requests, args.seconds))
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
