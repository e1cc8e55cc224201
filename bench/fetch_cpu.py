"""CPU per fetch of ``workers.fetch`` at two revisions, side by side, on loopback.

    python -m bench.fetch_cpu [--before main] [-n 3000] [--concurrency 16]

The benchmark web server (``bench.server``, static mode, 127.0.0.2) serves an 8 KB and a 100 KB
HTML page in its own process; for each revision a child process (the revision's ``shared`` and
``workers``, exported with ``git archive``; ``after`` is this work tree) makes ``-n`` fetches of
each page at ``--concurrency`` through ``fetch(make_client(settings), url, settings)`` and
reports ``time.process_time()`` per fetch (its own CPU only, the server's is not counted).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import sysconfig
import tarfile
import tempfile
import time
from io import BytesIO
from pathlib import Path

from bench.server import ServerProcess

ROOT = Path(__file__).resolve().parent.parent
PAGES = {"8k": 8 * 1024, "100k": 100 * 1024}
WARMUP = 200


def _page(size: int) -> bytes:
    head = b"<!doctype html><html><head><title>p</title></head><body>\n"
    line = b'<p>some text <a href="/next.html">a link</a> and more text, padding.</p>\n'
    body = head + line * ((size - len(head)) // len(line) + 1)
    return body[:size]


async def _measure(urls: dict[str, str], n: int, concurrency: int) -> dict[str, object]:
    from crawlfleet.shared.settings import Settings
    from crawlfleet.workers import fetch as fetch_module
    from crawlfleet.workers.fetch import fetch, make_client

    settings = Settings(concurrency=concurrency, total_timeout=30)
    out: dict[str, object] = {"module": fetch_module.__file__}
    async with make_client(settings) as client:
        for name, url in urls.items():

            async def run(count: int, url: str = url, size: int = PAGES[name]) -> int:
                left = count
                bad = 0

                async def one() -> None:
                    nonlocal left, bad
                    while left > 0:
                        left -= 1
                        r = await fetch(client, url, settings)
                        if r.status != 200 or len(r.body) != size:
                            bad += 1

                await asyncio.gather(*(one() for _ in range(concurrency)))
                return bad

            await run(WARMUP)
            cpu, wall = time.process_time(), time.perf_counter()
            bad = await run(n)
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
            out[name] = {
                "cpu_ms_per_fetch": round(cpu / n * 1000, 3),
                "fetches_per_s": round(n / wall),
                "failed": bad,
            }
    return out


def _export(rev: str, into: Path) -> Path:
    """The revision's ``shared`` and ``workers`` packages in ``into``."""
    data = subprocess.run(
        ["git", "-C", str(ROOT), "archive", rev, "shared", "workers"],
        check=True,
        capture_output=True,
    ).stdout
    with tarfile.open(fileobj=BytesIO(data)) as tar:
        tar.extractall(into, filter="data")
    return into


def _importable(code: Path, into: Path) -> Path:
    """A folder from which ``code``'s packages import as ``crawlfleet.*``, their installed
    names (``into/crawlfleet/shared`` links to ``code/shared``, and so on)."""
    names = into / "crawlfleet"
    names.mkdir(parents=True)
    for package in ("shared", "workers"):
        (names / package).symlink_to(code / package, target_is_directory=True)
    return into


def _child(
    code_root: Path, urls: dict[str, str], n: int, concurrency: int, extra: list[str]
) -> dict[str, object]:
    # -S: no site module, so the editable install of this work tree cannot shadow code_root
    paths = [
        str(code_root),
        str(ROOT),
        *extra,
        sysconfig.get_path("purelib"),
        sysconfig.get_path("platlib"),
    ]
    boot = f"import sys; sys.path[:0] = {paths!r}; from bench.fetch_cpu import main; main()"
    args = [sys.executable, "-S", "-c", boot, "--child", json.dumps(urls)]
    args += ["-n", str(n), "--concurrency", str(concurrency)]
    done = subprocess.run(args, cwd=ROOT, check=True, capture_output=True, text=True, timeout=900)
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--before", default="main", help="git revision to compare with")
    parser.add_argument("-n", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument(
        "--before-also-with",
        metavar="DIR",
        help="measure the before revision a second time with DIR on its path (e.g. a folder "
        "holding sniffio, whose absence makes httpcore try to import it on every lock)",
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        result = asyncio.run(_measure(json.loads(args.child), args.n, args.concurrency))
        print(json.dumps(result))
        return
    with tempfile.TemporaryDirectory() as tmp:
        site = Path(tmp) / "site"
        site.mkdir()
        for name, size in PAGES.items():
            (site / f"{name}.html").write_bytes(_page(size))
        server = ServerProcess.static(site, max_seconds=900).start()
        try:
            urls = {name: f"http://127.0.0.2:{server.port}/{name}.html" for name in PAGES}
            old = _importable(_export(args.before, Path(tmp) / "before"), Path(tmp) / "old")
            runs = {"before": _child(old, urls, args.n, args.concurrency, [])}
            if args.before_also_with:
                extra = [args.before_also_with]
                runs["before+path"] = _child(old, urls, args.n, args.concurrency, extra)
            new = _importable(ROOT, Path(tmp) / "new")
            runs["after"] = _child(new, urls, args.n, args.concurrency, [])
        finally:
            server.stop()
    print(json.dumps({"before_rev": args.before, **runs}, indent=2))
    for name in PAGES:
        figures = {label: run[name] for label, run in runs.items()}
        base = figures["before"]
        assert all(isinstance(f, dict) for f in figures.values()) and isinstance(base, dict)
        print(
            f"{name}: "
            + ", ".join(
                f"{label} {f['cpu_ms_per_fetch']} ms"  # type: ignore[index]
                f" ({f['cpu_ms_per_fetch'] / base['cpu_ms_per_fetch']:.2f}x)"  # type: ignore[index]
                for label, f in figures.items()
            )
            + " CPU per fetch"
        )


if __name__ == "__main__":
    main()
