"""Where a crawlfleet worker's CPU goes per page: ``python -m bench.profile [--workers N]``.

Crawls the synthetic web of scenario (a) (or (b) with ``--latency``, or the docs site with
``--docs``) like the benchmark does, with ``py-spy record`` attached to every worker (sampling
CPU, not idle time), and sorts the samples into the steps of a page: fetch, parse, canonicalize,
Redis, write, WARC, logging, arq, the event loop. ``--warc`` crawls with ``--warc``, at the
crawl's default per-host concurrency as the warc scenario does. ``--recrawl`` profiles a crawl
``--since`` a first crawl of the same site (its pages with ETags: every page a 304). Needs py-spy
(``.venv/bin/pip install py-spy``) and the right to ptrace the workers (root, or
``kernel.yama.ptrace_scope=0``).
"""

from __future__ import annotations

import argparse
import shutil
import signal
import subprocess
import tempfile
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from bench.docs import docs_ground_truth, ensure_docs
from bench.fleet import FleetRun, run_fleet
from bench.recrawl import AGAIN, FIRST
from bench.result import RunResult
from bench.scenarios import FULL, default_work_dir, make_work_root
from bench.server import ServerProcess
from tests.support.docsite import DOCS_HOST
from tests.support.synthetic import SyntheticSite


def _in(*prefixes: str) -> Callable[[str, str], bool]:
    return lambda func, file: file.startswith(prefixes)


def _calls(*names: str) -> Callable[[str, str], bool]:
    return lambda func, file: func in names


def _either(*tests: Callable[[str, str], bool]) -> Callable[[str, str], bool]:
    return lambda func, file: any(t(func, file) for t in tests)


# (category, test on one frame's function and file), tried from the innermost frame outwards:
# the first frame that matches a rule names the category of the sample
RULES: list[tuple[str, Callable[[str, str], bool]]] = [
    ("logging (structlog)", _in("structlog/", "logging/")),
    ("redis-py client", _in("redis/", "hiredis")),
    (
        "fetch (httpx, aiohttp)",
        _in(
            "httpx/",
            "aiohttp/",
            "yarl/",
            "multidict/",
            "aiohappyeyeballs/",
            "workers/fetch.py",
            "workers/transport.py",
            "workers/guard.py",
        ),
    ),
    ("urljoin", _calls("urljoin")),
    ("parse (bs4 + lxml)", _either(_in("bs4/", "lxml/"), _calls("extract_hrefs"))),
    (
        "job ids + payloads (sha1, msgpack)",
        _either(_in("shared/jobs.py", "msgpack/"), _calls("fingerprint", "PageJob.fingerprint")),
    ),
    (
        "canonicalize + filter links",
        _either(_in("w3lib/", "shared/urls.py"), _calls("followable_links")),
    ),
    (
        "WARC records (warcio, gzip, index)",
        _in("workers/warc.py", "warcio/", "shared/warc_index.py", "workers/append_file.py"),
    ),
    (
        "write page + record",
        _either(
            _in("shared/storage.py", "shared/record_log.py", "workers/record_logs.py"),
            _calls("store_page"),
        ),
    ),
    ("earlier crawl (--since)", _in("workers/since.py", "shared/page_index.py")),
    ("finalize (manifest)", _in("workers/finalize.py")),
    (
        "crawlfleet Redis calls (args, scripts)",
        _in("workers/frontier.py", "workers/politeness.py", "shared/scripts.py"),
    ),
    # not workers/worker.py: it is at the root of every stack
    ("crawlfleet job code", _in("workers/jobs/", "workers/context.py", "workers/robots.py")),
    ("arq (queue polling, job start/finish)", _in("arq/")),
]
# asyncio's frames sit under every callback: a sample is the event loop's own only when no
# frame of a library or of crawlfleet is on its stack (a socket write for redis-py is Redis's)
EVENT_LOOP = ("event loop (asyncio)", _in("asyncio/", "selectors.py"))


def _split(frame: str) -> tuple[str, str]:
    """``"func (file:line)"`` -> (func, file)."""
    func, _, rest = frame.partition(" (")
    return func, rest.rpartition(":")[0]


def categorize(stack: list[str]) -> str:
    """The category of one sample, from its frames (outermost first)."""
    frames = [_split(frame) for frame in reversed(stack)]
    for func, file in frames:
        for name, test in RULES:
            if test(func, file):
                return name
    if any(EVENT_LOOP[1](func, file) for func, file in frames):
        return EVENT_LOOP[0]
    return "other (no Python frame: native code, GC)" if not stack else "other"


def read_samples(path: Path) -> tuple[Counter[str], Counter[str]]:
    """Samples per category and per innermost function, from py-spy's ``--format raw``."""
    categories: Counter[str] = Counter()
    leaves: Counter[str] = Counter()
    for line in path.read_text().splitlines():
        stack_text, _, count = line.rpartition(" ")
        if not stack_text or not count.isdigit():
            continue
        frames = [f for f in stack_text.split(";") if not f.startswith(("process ", "thread "))]
        categories[categorize(frames)] += int(count)
        if frames:
            leaves[frames[-1]] += int(count)
    return categories, leaves


class Profiler:
    """py-spy on every worker from start to done."""

    def __init__(self, out_dir: Path, rate: int) -> None:
        self.out_dir = out_dir
        self.rate = rate
        self.procs: list[subprocess.Popen[bytes]] = []
        self.files: list[Path] = []

    def __call__(self, pids: list[int]) -> Callable[[], None]:
        spy = shutil.which("py-spy") or str(Path(__import__("sys").executable).parent / "py-spy")
        for pid in pids:
            out = self.out_dir / f"worker-{pid}.txt"
            self.files.append(out)
            self.procs.append(
                subprocess.Popen(
                    [
                        spy,
                        "record",
                        "--pid",
                        str(pid),
                        "--format",
                        "raw",
                        "--nonblocking",
                        "--rate",
                        str(self.rate),
                        "--output",
                        str(out),
                    ],
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
        return self.stop

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
        for proc in self.procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def report(result: RunResult, profiler: Profiler) -> str:
    categories: Counter[str] = Counter()
    leaves: Counter[str] = Counter()
    for path in profiler.files:
        if path.exists():
            c, lf = read_samples(path)
            categories.update(c)
            leaves.update(lf)
    total = sum(categories.values())
    if not total or not result.pages:
        return f"no samples (py-spy missing or not allowed to attach?); run: {result.error}"
    ms_per_page = result.cpu_crawler_s * 1000 / result.pages
    lines = [
        f"{result.pages} pages, {result.wall_s:.1f}s, {result.pages_per_s:.0f} pages/s, worker "
        f"CPU {result.cpu_crawler_s:.2f}s = {ms_per_page:.2f} ms/page, Redis "
        f"{result.cpu_redis_s * 1000 / result.pages:.2f} ms/page; {total} samples",
        f"{'step':<42} {'share':>6} {'ms/page':>8}",
    ]
    for name, count in categories.most_common():
        share = count / total
        lines.append(f"{name:<42} {share:>6.1%} {share * ms_per_page:>8.2f}")
    lines.append("\ninnermost functions:")
    for frame, count in leaves.most_common(15):
        lines.append(f"  {count / total:>6.1%}  {frame}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds per response")
    parser.add_argument("--docs", action="store_true", help="crawl the docs site instead")
    parser.add_argument(
        "--extractor", choices=["bs4", "fast"], default="bs4", help="the workers' link extractor"
    )
    parser.add_argument(
        "--recrawl",
        action="store_true",
        help="profile a crawl --since an unprofiled first crawl of the same site (every page 304)",
    )
    parser.add_argument(
        "--warc", action="store_true", help="crawl with --warc, at the default per-host concurrency"
    )
    parser.add_argument("--rate", type=int, default=200, help="samples per second")
    parser.add_argument("--keep", type=Path, help="keep py-spy's raw output in this folder")
    args = parser.parse_args()
    out_dir = args.keep or Path(tempfile.mkdtemp(prefix="bench-profile-"))
    out_dir.mkdir(parents=True, exist_ok=True)
    work = make_work_root(default_work_dir())
    profiler = Profiler(out_dir, args.rate)
    try:
        if args.docs:
            root, how = ensure_docs()
            if root is None:
                raise SystemExit(f"docs site unavailable: {how}")
            with ServerProcess.static(root) as server:
                seed = f"http://{DOCS_HOST}:{server.port}/index.html"
                expected = set(docs_ground_truth(root, seed, FULL.docs_depth))
                run = FleetRun("docs", [seed], FULL.docs_depth, args.workers, args.concurrency,
                               None if args.warc else args.workers * args.concurrency,
                               extractor=args.extractor, warc=args.warc)  # fmt: skip
                result = run_fleet(run, work, expected, server.pid, profiler)
        else:
            config = replace(FULL.site, latency_s=args.latency)
            with ServerProcess.synthetic(config, validators=args.recrawl) as server:
                site = SyntheticSite(config, server.port)
                expected = set(site.ground_truth(FULL.depth))
                run = FleetRun("a", site.seeds(), FULL.depth, args.workers, args.concurrency,
                               None if args.warc else args.workers * args.concurrency,
                               extractor=args.extractor, warc=args.warc)  # fmt: skip
                if args.recrawl:  # the first crawl unprofiled, then the one --since it
                    data = work / "data"
                    first = run_fleet(replace(run, crawl_id=FIRST), work / "first", expected,
                                      server.pid, data_dir=data)  # fmt: skip
                    if first.error is not None:
                        raise SystemExit(f"the first crawl failed: {first.error}")
                    run = replace(run, crawl_id=AGAIN, since=FIRST)
                    result = run_fleet(run, work / "again", expected, server.pid, profiler, data)
                else:
                    result = run_fleet(run, work, expected, server.pid, profiler)
        print(report(result, profiler))
    finally:
        profiler.stop()
        shutil.rmtree(work, ignore_errors=True)
        if args.keep is None:
            shutil.rmtree(out_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
