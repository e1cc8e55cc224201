"""Scenario ``resume``: a crawl stopped by SIGTERM a few seconds in, then resumed.

``crawlfleet run SEEDS --depth D --crawl-id resume`` as a user types it (embedded Redis, 2
workers, defaults) on the synthetic web with latency, three times a round: to its end in a new
data directory (fresh); in another new one, stopped by SIGTERM ``stop_after_s`` after it
started (once it has stored a page, if that comes later); and the same command again on that
directory (what ``run`` prints to resume it), to its end. Each is timed from the command to its
exit, with the CPU of its process tree (``RUSAGE_CHILDREN``). The pages of each part come from
what ``run`` says (the stopped run's ``N fetched, M failed``, the resumed run's ``N pages were
done before this run``), checked against the manifest.

The figure of the first-hour issue: (resumed time / pages it fetched) / (fresh time / pages),
at most 1.0: a resumed crawl takes no longer per page than a fresh one.
"""

from __future__ import annotations

import json
import os
import re
import resource
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

CRAWL_ID = "resume"
_STOPPED = re.compile(r"crawl \S+ stopped: (\d+) fetched, (\d+) failed, (\d+) to go")
_BEFORE = re.compile(r"(\d+) pages were done before this run")


@dataclass
class ResumeRound:
    """One round: the fresh crawl, the stopped one and its resumption."""

    fresh_s: float = 0.0
    fresh_cpu_s: float = 0.0
    fresh_pages: int = 0
    stop_after_s: float = 0.0  # when SIGTERM was sent, from the command's start
    stopped_s: float = 0.0  # from the command's start to its exit
    stopped_cpu_s: float = 0.0
    stopped_pages: int = 0  # pages done when it stopped (fetched + failed)
    resumed_s: float = 0.0
    resumed_cpu_s: float = 0.0
    resumed_pages: int = 0  # pages the resumed run did
    total_pages: int = 0  # the manifest of the resumed crawl
    # from the command's start to the first page it stored, and from its last page to its exit
    fresh_first_s: float = 0.0
    fresh_tail_s: float = 0.0
    resumed_first_s: float = 0.0
    resumed_tail_s: float = 0.0

    @property
    def ratio(self) -> float:
        """Resumed seconds per page it did over fresh seconds per page."""
        if not (self.resumed_pages and self.fresh_pages and self.fresh_s):
            return 0.0
        return (self.resumed_s / self.resumed_pages) / (self.fresh_s / self.fresh_pages)

    @property
    def crawling_ratio(self) -> float:
        """The same, of the time from each run's first page stored to its last: without what
        a run costs before its first page and after its last, whatever its size."""
        fresh = self.fresh_s - self.fresh_first_s - self.fresh_tail_s
        resumed = self.resumed_s - self.resumed_first_s - self.resumed_tail_s
        if not (self.resumed_pages and self.fresh_pages and fresh > 0):
            return 0.0
        return (resumed / self.resumed_pages) / (fresh / self.fresh_pages)


@dataclass
class ResumeResult:
    """Every round, or the ``error`` that ended them."""

    rounds: list[ResumeRound] = field(default_factory=list)
    pages_expected: int = 0
    error: str | None = None

    def median(self, name: str) -> float:
        return statistics.median(float(getattr(r, name)) for r in self.rounds)

    def line(self) -> str:
        if self.error or not self.rounds:
            return f"resume: error: {self.error}"
        m = self.median
        return (
            f"resume: `crawlfleet run` ({self.pages_expected} pages): fresh {m('fresh_s'):.1f} s; "
            f"stopped by SIGTERM at {m('stop_after_s'):.1f} s, exited at {m('stopped_s'):.1f} s "
            f"with {m('stopped_pages'):.0f} pages done; resumed {m('resumed_s'):.1f} s for "
            f"{m('resumed_pages'):.0f} pages: per page {m('ratio'):.2f}x the fresh crawl's "
            f"(rounds: {', '.join(f'{r.ratio:.2f}' for r in self.rounds)}); first page stored "
            f"at {m('fresh_first_s'):.2f} s fresh, {m('resumed_first_s'):.2f} s resumed, exit "
            f"{m('fresh_tail_s'):.2f} / {m('resumed_tail_s'):.2f} s after the last; from "
            f"first page to last, per page {m('crawling_ratio'):.2f}x"
        )

    def to_dict(self) -> dict[str, Any]:
        rounds = [
            {**asdict(r), "ratio": round(r.ratio, 3), "crawling_ratio": round(r.crawling_ratio, 3)}
            for r in self.rounds
        ]
        return {
            "pages_expected": self.pages_expected,
            "rounds": rounds,
            "ratio_median": round(self.median("ratio"), 3) if self.rounds else None,
            "crawling_ratio_median": (
                round(self.median("crawling_ratio"), 3) if self.rounds else None
            ),
            "error": self.error,
        }


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _command(seeds: list[str], depth: int, data: Path) -> list[str]:
    return [
        sys.executable, "-m", "crawlfleet.scheduler", "run", *seeds, "--depth", str(depth),
        "--data-dir", str(data), "--crawl-id", CRAWL_ID,
    ]  # fmt: skip


def _manifest_pages(data: Path) -> int:
    return len((data / CRAWL_ID / "manifest.jsonl").read_text().splitlines())


def _stored_between(data: Path, since: float, until: float) -> tuple[float, float]:
    """Seconds from ``since`` (epoch) to the first page the manifest says was stored after
    it, and from the last one to ``until``."""
    stamps = [
        datetime.fromisoformat(json.loads(line)["fetched_at"]).timestamp()
        for line in (data / CRAWL_ID / "manifest.jsonl").read_text().splitlines()
    ]
    mine = [t for t in stamps if t >= since]
    if not mine:
        raise ValueError(f"no page of {data} stored after the run started")
    return min(mine) - since, until - max(mine)


class _Run:
    """One ``crawlfleet run``, timed from its start to its exit, with its tree's CPU."""

    def __init__(self, command: list[str]) -> None:
        env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
        self.cpu_before = _children_cpu()
        self.began = time.monotonic()
        self.began_at = time.time()
        self.proc = subprocess.Popen(
            command, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True,
        )  # fmt: skip

    def finish(self, timeout_s: float) -> tuple[float, float, str, str]:
        """Wait for its exit: wall s, CPU s, stdout, stderr."""
        try:
            out, err = self.proc.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.communicate()
            raise
        self.ended_at = time.time()
        return time.monotonic() - self.began, _children_cpu() - self.cpu_before, out, err


def run_resume(
    work_dir: Path, seeds: list[str], depth: int, rounds: int, stop_after_s: float,
    timeout_s: float,
) -> ResumeResult:  # fmt: skip
    """``rounds`` rounds of fresh, stopped and resumed crawls, in folders under ``work_dir``."""
    result = ResumeResult()
    try:
        for n in range(rounds):
            result.rounds.append(_round(work_dir / f"round-{n}", seeds, depth, stop_after_s,
                                        timeout_s))  # fmt: skip
    except (RuntimeError, subprocess.TimeoutExpired, OSError, ValueError) as exc:
        result.error = f"{type(exc).__name__}: {exc}"
    return result


def _round(
    folder: Path, seeds: list[str], depth: int, stop_after_s: float, timeout_s: float
) -> ResumeRound:
    got = ResumeRound()
    fresh = _Run(_command(seeds, depth, folder / "fresh"))
    got.fresh_s, got.fresh_cpu_s, _, err = fresh.finish(timeout_s)
    if fresh.proc.returncode != 0:
        raise RuntimeError(f"fresh run: exit {fresh.proc.returncode}: {err.strip()[-300:]}")
    got.fresh_pages = _manifest_pages(folder / "fresh")
    got.fresh_first_s, got.fresh_tail_s = _stored_between(
        folder / "fresh", fresh.began_at, fresh.ended_at
    )

    data = folder / "stopped"
    stopped = _Run(_command(seeds, depth, data))
    time.sleep(max(0.0, stop_after_s - (time.monotonic() - stopped.began)))
    # and not before its first page is stored: a loaded machine may take that long to start
    while not any(p.stat().st_size for p in (data / CRAWL_ID).glob("records/*.jsonl.gz")):
        if stopped.proc.poll() is not None or time.monotonic() - stopped.began > timeout_s:
            raise RuntimeError("the run to stop stored no page")
        time.sleep(0.05)
    got.stop_after_s = time.monotonic() - stopped.began
    stopped.proc.send_signal(signal.SIGTERM)
    got.stopped_s, got.stopped_cpu_s, _, err = stopped.finish(timeout_s)
    said = _STOPPED.search(err)
    if stopped.proc.returncode != 128 + signal.SIGTERM or said is None:
        raise RuntimeError(f"stopped run: exit {stopped.proc.returncode}: {err.strip()[-300:]}")
    got.stopped_pages = int(said[1]) + int(said[2])

    resumed = _Run(_command(seeds, depth, data))
    got.resumed_s, got.resumed_cpu_s, out, err = resumed.finish(timeout_s)
    if resumed.proc.returncode != 0:
        raise RuntimeError(f"resumed run: exit {resumed.proc.returncode}: {err.strip()[-300:]}")
    # run says nothing of the pages before it when there were none (stopped before the first)
    before = _BEFORE.search(out)
    done_before = int(before[1]) if before else 0
    got.total_pages = _manifest_pages(data)
    got.resumed_first_s, got.resumed_tail_s = _stored_between(
        data, resumed.began_at, resumed.ended_at
    )
    got.resumed_pages = got.total_pages - done_before
    if done_before != got.stopped_pages:
        raise ValueError(f"resumed after {done_before} pages, stopped at {got.stopped_pages}")
    return got
