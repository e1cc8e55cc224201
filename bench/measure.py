"""Measuring processes and Redis: CPU seconds, peak RSS, INFO memory and commandstats."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import psutil
import redis


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a live process, its reaped children included (0 if gone)."""
    try:
        t = psutil.Process(pid).cpu_times()
    except psutil.Error:
        return 0.0
    return float(t.user + t.system + t.children_user + t.children_system)


def peak_rss_mb(pid: int) -> float:
    """The high-water mark of a live process's resident memory (VmHWM), in MiB (0 if gone)."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


@dataclass
class CpuMeter:
    """CPU seconds of a group of processes between :meth:`start` and :meth:`stop`."""

    pids: list[int]
    started: dict[int, float] = field(default_factory=dict)
    used: dict[int, float] = field(default_factory=dict)

    def start(self) -> CpuMeter:
        self.started = {pid: cpu_seconds(pid) for pid in self.pids}
        return self

    def stop(self) -> float:
        self.used = {pid: cpu_seconds(pid) - self.started.get(pid, 0.0) for pid in self.pids}
        return self.total

    @property
    def total(self) -> float:
        return sum(self.used.values())


class RssSampler:
    """Samples the RSS of some processes in a thread, for peaks of processes that may exit."""

    def __init__(self, pids: Iterable[int], every_s: float = 0.2) -> None:
        self.pids = list(pids)
        self.every_s = every_s
        self.peaks: dict[int, float] = dict.fromkeys(self.pids, 0.0)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            self.sample()

    def sample(self) -> None:
        for pid in self.pids:
            with contextlib.suppress(psutil.Error):
                rss = psutil.Process(pid).memory_info().rss / 2**20
                self.peaks[pid] = max(self.peaks[pid], rss, peak_rss_mb(pid))

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.sample()
        self._stop.set()
        self._thread.join(timeout=5)


def redis_client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_timeout=30)


def info(client: redis.Redis, section: str) -> dict[str, Any]:
    """``INFO <section>`` of a synchronous client (redis-py types it as maybe awaitable)."""
    return cast(dict[str, Any], client.info(section))


def key_bytes(client: redis.Redis, key: str) -> int:
    """``MEMORY USAGE <key> SAMPLES 0``: the exact size of a key (0 if there is none)."""
    return int(cast(int | None, client.memory_usage(key, samples=0)) or 0)


def prefix_bytes(client: redis.Redis, prefix: str) -> int:
    """The exact size of every key starting with ``prefix`` (e.g. a crawl's seen buckets)."""
    return sum(key_bytes(client, k.decode()) for k in client.scan_iter(match=prefix + "*"))


def used_memory(client: redis.Redis) -> int:
    return int(info(client, "memory")["used_memory"])


def reads_processed(client: redis.Redis) -> int:
    """Reads Redis has done from its clients (``total_reads_processed``): about one per round
    trip, whatever the round trip carries (one command, a pipeline, a script). This call's own
    read is counted in what it returns."""
    return int(info(client, "stats")["total_reads_processed"])


def commandstats(client: redis.Redis) -> dict[str, int]:
    """Calls per command (commands run inside Lua scripts included, as Redis counts them)."""
    out: dict[str, int] = {}
    for name, stats in info(client, "commandstats").items():
        command = name.removeprefix("cmdstat_")
        out[command] = int(stats["calls"])
    return out


def delta(after: dict[str, int], before: dict[str, int]) -> dict[str, int]:
    keys = set(after) | set(before)
    diff = {k: after.get(k, 0) - before.get(k, 0) for k in keys}
    return {k: v for k, v in sorted(diff.items(), key=lambda kv: -kv[1]) if v}


def key_census(client: redis.Redis, patterns: dict[str, str]) -> dict[str, int]:
    """How many keys match each pattern (SCAN, bounded by the database size)."""
    counts: dict[str, int] = {}
    for name, pattern in patterns.items():
        counts[name] = sum(1 for _ in client.scan_iter(match=pattern, count=1000))
    return counts


def machine_speed(cpu_s: float = 0.1) -> float:
    """Millions of turns of a fixed pure-Python loop per CPU-second: the machine's own speed
    just then. Taken before each run, it shows how much the machine swung during a bench
    whatever the crawlers did (on this 2-core VM: from 14 to 43 within one bench)."""
    turns = 0
    started = time.process_time()
    while (spent := time.process_time() - started) < cpu_s:
        for _ in range(10_000):
            turns += 1
    return turns / spent / 1e6


def cold_work_us(work: Callable[[], object], gap_s: float, rounds: int = 25) -> tuple[float, float]:
    """CPU microseconds of one ``work()``, done back to back and done after ``gap_s`` asleep:
    (back to back, after the sleep). A crawl that keeps a per-host delay does each page's work
    after such a sleep, on caches (and, in a VM, a core) gone cold; the ratio of the two is what
    the machine charges for that, whatever the crawler does."""
    for _ in range(5):
        work()

    def each(gap: float) -> float:
        spent = 0.0
        for _ in range(rounds):
            if gap:
                time.sleep(gap)
            started = time.process_time()
            work()
            spent += time.process_time() - started
        return spent / rounds * 1e6

    return each(0.0), each(gap_s)


def file_create_us(folder: Path, files: int = 300) -> float:
    """CPU microseconds to create, write (8 KB) and rename one file in ``folder``: crawlers
    write every page, and some file systems (or sandboxes watching them) make that costly."""
    import shutil
    import tempfile

    folder.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(dir=folder, prefix="fs-probe-"))
    try:
        started = time.process_time()
        for i in range(files):
            path = work / f"{i}.tmp"
            path.write_bytes(b"x" * 8192)
            path.replace(work / f"{i}.html")
        return (time.process_time() - started) * 1e6 / files
    finally:
        shutil.rmtree(work, ignore_errors=True)
