"""GNU wget as a reference crawler on the docs sites: ``wget -r -l DEPTH -nv --no-parent -P DIR
URL``, at its defaults otherwise (one request at a time, robots.txt obeyed).

Its wall time is from the start of the process to its exit and its CPU is the process's own
(``wait4``): wget starts in milliseconds, so there is no start-up to leave out. Its peak RSS is
sampled every 50 ms (none for a crawl shorter than that). The URLs it
fetched come from its ``-nv`` log: ``URL:<url> [...] -> "<file>"`` for a page it saved, and
``<url>:`` then ``ERROR <status>: ...`` for an error status (a 404 is a page with a response,
as the crawlers record it). They are made canonical with crawlfleet's ``canonicalize``;
``/robots.txt`` is left out (the crawlers here do not fetch it). wget follows more than
``<a>``/``<area>``: ``<link href>`` (stylesheets, ``rel="next"``, ``rev="made"``), ``<img
src>``, ``<script src>``; its page set is the URLs that are pages by crawlfleet's rule
(``is_page_link``: not a non-page extension), and how many others it fetched is in the run's
``figures``.
"""

from __future__ import annotations

import os
import re
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from bench.apt import ensure_command
from bench.measure import CpuMeter, RssSampler
from bench.result import PageSetCheck, RunResult
from crawlfleet.shared.urls import canonicalize, is_page_link

WGET_PACKAGES = ("wget",)

_SAVED = re.compile(r"^\S+ \S+ URL: ?(\S+) \[[^\]]*\] -> ")
_ERROR_URL = re.compile(r"^(\w+://\S+):$")
_ERROR = re.compile(r"^\S+ \S+ ERROR (\d{3}): ")


def _is_gnu(path: str) -> bool:
    try:
        done = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.stdout.startswith("GNU Wget")


def ensure_wget() -> tuple[str | None, str]:
    """GNU wget (busybox's has no ``-nv``), installed with apt-get if missing and root."""
    return ensure_command("wget", WGET_PACKAGES, _is_gnu)


@dataclass(frozen=True)
class WgetRun:
    """One wget crawl to measure."""

    scenario: str
    seed: str
    depth: int
    timeout_s: float = 300.0


def parse_log(text: str) -> tuple[dict[str, int], int]:
    """URL -> status (200 for a saved file) from a ``-nv`` log, and how many URLs failed
    without a response."""
    urls: dict[str, int] = {}
    failed = 0
    pending: str | None = None
    for line in text.splitlines():
        saved = _SAVED.match(line)
        if saved:
            urls[saved.group(1)] = 200
            pending = None
            continue
        error_url = _ERROR_URL.match(line)
        if error_url:
            pending = error_url.group(1)
            continue
        if pending is not None:
            error = _ERROR.match(line)
            if error:
                urls[pending] = int(error.group(1))
            else:
                failed += 1
            pending = None
    return urls, failed


def _canonical(url: str) -> str | None:
    try:
        return canonicalize(url)
    except ValueError:
        return None


def run_wget(
    binary: str, run: WgetRun, work_dir: Path, expected: set[str] | None, server_pid: int | None
) -> RunResult:
    """Crawl once with wget and measure it."""
    result = RunResult(
        scenario=run.scenario, tool="wget", processes=1, concurrency=1, depth=run.depth
    )
    out_dir = work_dir / "out"
    log_path = work_dir / "wget.log"
    cmd = [binary, "-r", "-l", str(run.depth), "-nv", "--no-parent", "-P", str(out_dir), run.seed]
    server_cpu = CpuMeter([server_pid] if server_pid else []).start()
    timed_out = threading.Event()
    with log_path.open("wb") as log:
        started = time.monotonic()
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log)

        def kill() -> None:
            timed_out.set()
            proc.kill()

        timer = threading.Timer(run.timeout_s, kill)
        timer.start()
        # the peak RSS sampled (VmHWM): wait4's ru_maxrss would count the benchmark's own
        # pages, which the child had until it exec'd wget
        sampler = RssSampler([proc.pid], every_s=0.05)
        try:
            with sampler:
                _, status, usage = os.wait4(proc.pid, 0)  # its own CPU, as it exits
        finally:
            timer.cancel()
        result.wall_s = time.monotonic() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    if timed_out.is_set():
        result.error = f"timeout: not done after {run.timeout_s:.0f}s"
    result.cpu_server_s = server_cpu.stop()
    result.cpu_crawler_s = usage.ru_utime + usage.ru_stime
    result.cpu_crawler_total_s = result.cpu_crawler_s
    peak = sampler.peaks.get(proc.pid, 0.0)
    result.peak_rss_mb = [round(peak, 1)] if peak else []
    # 8: the server answered an error status (the 404s); anything else above 0 is wget's own
    if proc.returncode not in (0, 8) and result.error is None:
        result.error = f"wget exited {proc.returncode}; see {log_path}"
    logged, result.failed = parse_log(log_path.read_text(errors="replace"))
    statuses: dict[str, int] = {}
    for url, status in logged.items():
        canon = _canonical(url)
        if canon is not None and urlsplit(canon).path != "/robots.txt":
            statuses[canon] = status
    pages = {u for u in statuses if is_page_link(u)}
    result.pages, result.urls = len(pages), pages
    result.figures["urls_fetched"] = len(statuses)
    result.figures["non_page_urls"] = len(statuses) - len(pages)
    result.figures["error_statuses"] = sum(1 for s in statuses.values() if s >= 400)
    if expected is not None:
        result.check = PageSetCheck.compare(pages, expected)
    if len(statuses) > len(pages):
        result.notes.append(
            f"{len(statuses) - len(pages)} non-page URLs fetched too (stylesheets, images...)"
        )
    return result
