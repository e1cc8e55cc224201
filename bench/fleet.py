"""Running crawlfleet for the benchmark: its own Redis, N real worker processes, one crawl.

Each run gets a fresh embedded Redis (no append-only file, so that disk syncs do not blur its
CPU) and fresh worker processes. The measured window starts when every worker has logged
``worker started`` and the crawl is seeded, and ends when the crawl's state is ``done`` (the
manifest is written by then). CPU, peak RSS and Redis figures are read at that moment, before
the workers are stopped.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from urllib.parse import urlsplit

from bench.disk import disk_figures
from bench.measure import (
    CpuMeter,
    commandstats,
    cpu_seconds,
    delta,
    info,
    key_census,
    peak_rss_mb,
    prefix_bytes,
    reads_processed,
    redis_client,
    used_memory,
)
from bench.result import PageSetCheck, RunResult
from crawlfleet.scheduler.control import seed_crawl
from crawlfleet.scheduler.embedded import EmbeddedRedis
from crawlfleet.scheduler.local import LocalWorkers
from crawlfleet.shared.catalog import load_status
from crawlfleet.shared.connections import connected
from crawlfleet.shared.crawl import CrawlSpec, CrawlStatus
from crawlfleet.shared.keys import CrawlKeys
from crawlfleet.shared.settings import Extractor, Settings
from crawlfleet.shared.urls import Scope

CRAWL_ID = "bench"
POLL_S = 0.05

# keys that should be gone once a crawl is done (crawlfleet's "no per-job keys left")
LEFTOVER_PATTERNS = {
    "arq:job:*": "arq:job:*",
    "arq:in-progress:*": "arq:in-progress:*",
    "arq:retry:*": "arq:retry:*",
    "arq:result:*": "arq:result:*",
}


@dataclass(frozen=True)
class FleetRun:
    """One crawlfleet crawl to measure."""

    scenario: str
    seeds: list[str]
    depth: int
    workers: int
    concurrency: int  # per worker
    per_host_concurrency: int | None  # None: the crawl's default (``--per-host-concurrency``)
    scope: Scope = "host"
    timeout_s: float = 300.0
    extractor: Extractor = "bs4"  # the workers' CRAWLFLEET_EXTRACTOR
    per_host_delay: float = 0.0  # ``--per-host-delay``
    adaptive: bool = True  # adaptive politeness (``--no-adaptive``: False)
    variant: str = ""  # a word for the label, when the run differs in what it crawls
    warc: bool = False  # ``--warc``: WARC files and their index instead of body files
    crawl_id: str = CRAWL_ID
    since: str | None = None  # ``--since``: a crawl of the same data directory
    # measure the crawl folder's disk use against its gzipped content (``bench.disk``)
    measure_disk: bool = False

    @property
    def tool(self) -> str:
        """The run's label in the table: ``crawlfleet``, ``crawlfleet (fast)``, ``crawlfleet
        (defaults)`` (no per-host concurrency set), ``crawlfleet (defaults, delay 0.2)``..."""
        parts: list[str] = [] if self.extractor == "bs4" else [self.extractor]
        if self.per_host_concurrency is None:
            parts.append("defaults")
        if self.per_host_delay:
            parts.append(f"delay {self.per_host_delay:g}")
        if self.warc:
            parts.append("warc")
        if not self.adaptive:
            parts.append("no adaptive")
        if self.since:
            parts.append("since")
        if self.variant:
            parts.append(self.variant)
        return f"crawlfleet ({', '.join(parts)})" if parts else "crawlfleet"


def _wait_started(workers: LocalWorkers, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    pending = set(range(1, workers.count + 1))
    while pending:
        for index in list(pending):
            path = workers.log_file(index)
            if path.exists() and b"worker started" in path.read_bytes():
                pending.discard(index)
        if workers.alive() < workers.count:
            raise RuntimeError("a worker process exited while starting; see its log")
        if time.monotonic() > deadline:
            raise RuntimeError(f"workers {sorted(pending)} did not start in {timeout_s:.0f}s")
        time.sleep(0.05)


def fetch_seconds(log_dir: Path) -> float:
    """The fetch durations the workers logged (one JSON line per page), added up."""
    total_ms = 0
    for path in log_dir.glob("worker-*.log"):
        for line in path.read_bytes().splitlines():
            if b'"duration_ms"' not in line:
                continue
            try:
                total_ms += int(json.loads(line).get("duration_ms") or 0)
            except ValueError:
                continue
    return total_ms / 1000


def read_manifest(path: Path) -> tuple[set[str], int]:
    """The URLs with a response in a crawlfleet manifest, and how many URLs failed."""
    pages: set[str] = set()
    failed = 0
    for line in path.read_text().splitlines():
        record = json.loads(line)
        if record.get("status") is None:
            failed += 1
        else:
            pages.add(record["url"])
    return pages, failed


def host_last_stored(path: Path, started_at: float) -> dict[str, float]:
    """Per host, seconds from ``started_at`` (epoch) to the last page stored there: the
    latest ``fetched_at`` of the manifest's records (written as the record is stored)."""
    last: dict[str, float] = {}
    for line in path.read_text().splitlines():
        record = json.loads(line)
        stamp = record.get("fetched_at")
        if not stamp or record.get("status") is None:
            continue
        host = urlsplit(record["url"]).hostname or ""
        at = datetime.fromisoformat(stamp).timestamp() - started_at
        last[host] = max(last.get(host, at), at)
    return dict(sorted(last.items()))


# called with the worker pids once they have started; what it returns is called when the crawl
# is done (``bench.profile`` attaches py-spy this way)
StartHook = Callable[[list[int]], Callable[[], None]]


def run_fleet(
    run: FleetRun,
    work_dir: Path,
    expected: set[str] | None,
    server_pid: int | None,
    on_started: StartHook | None = None,
    data_dir: Path | None = None,
) -> RunResult:
    """Crawl once with crawlfleet and measure it (its files in ``data_dir``, default
    ``work_dir/data``)."""
    result = RunResult(
        scenario=run.scenario,
        tool=run.tool,
        processes=run.workers,
        concurrency=run.concurrency,
        depth=run.depth,
    )
    redis = EmbeddedRedis(work_dir / "redis", appendonly=False)
    try:
        redis.start()
        settings = Settings(
            redis_url=redis.url,
            data_dir=data_dir or work_dir / "data",
            concurrency=run.concurrency,
            log_format="json",
            shutdown_grace_s=5,
            extractor=run.extractor,
        )
        with LocalWorkers(settings, run.workers, work_dir / "logs") as workers:
            _wait_started(workers)
            on_done = on_started([p.pid for p in workers.procs]) if on_started else None
            try:
                _measure(run, result, settings, redis, workers, server_pid)
            finally:
                if on_done is not None:
                    on_done()
        result.fetch_seconds = fetch_seconds(work_dir / "logs")
        if result.error is None:
            manifest = settings.data_dir / run.crawl_id / "manifest.jsonl"
            got, failed = read_manifest(manifest)
            result.pages, result.failed, result.urls = len(got), failed, got
            if expected is not None:
                result.check = PageSetCheck.compare(got, expected)
            if result.started_at is not None:
                result.host_last_s = host_last_stored(manifest, result.started_at)
            if run.measure_disk:
                result.figures.update(disk_figures(settings.data_dir, CRAWL_ID))
    except Exception as exc:  # one failed run is reported, the others still run
        result.error = f"{type(exc).__name__}: {exc}"
    finally:
        redis.stop()
    return result


def _measure(
    run: FleetRun,
    result: RunResult,
    settings: Settings,
    redis: EmbeddedRedis,
    workers: LocalWorkers,
    server_pid: int | None,
) -> None:
    assert redis.pid is not None
    client = redis_client(redis.url)
    worker_pids = [p.pid for p in workers.procs]
    crawler_cpu = CpuMeter(worker_pids)
    redis_cpu = CpuMeter([redis.pid])
    server_cpu = CpuMeter([server_pid] if server_pid else [])
    meta = CrawlKeys(run.crawl_id).meta
    # left unset, the crawl's own default: what ``crawlfleet seed`` gives without the flag
    per_host = run.per_host_concurrency
    if per_host is None:
        per_host = int(CrawlSpec.model_fields["per_host_concurrency"].default)
    spec = CrawlSpec(
        crawl_id=run.crawl_id,
        seeds=run.seeds,
        depth=run.depth,
        scope=run.scope,
        obey_robots=False,
        per_host_delay=run.per_host_delay,
        per_host_concurrency=per_host,
        adaptive=run.adaptive,
        allow_private=True,
        warc=run.warc,
        since=run.since,
    )
    result.figures["per_host_concurrency"] = per_host
    result.figures["per_host_delay_s"] = run.per_host_delay
    startup_cpu = sum(cpu_seconds(pid) for pid in worker_pids)
    memory_before = used_memory(client)
    stats_before = commandstats(client)
    reads_before = reads_processed(client)
    polls = 0
    for meter in (crawler_cpu, redis_cpu, server_cpu):
        meter.start()
    started = time.monotonic()
    result.started_at = time.time()
    asyncio.run(_seed(settings, spec))
    state = b"running"
    while state == b"running":
        time.sleep(POLL_S)
        state = client.hget(meta, "state") or b"running"  # type: ignore[assignment]
        polls += 1
        if time.monotonic() - started > run.timeout_s:
            result.error = f"timeout: not done after {run.timeout_s:.0f}s"
            break
    result.wall_s = time.monotonic() - started
    # less the benchmark's own reads: its polls and the INFO that reads the counter
    result.redis_reads = reads_processed(client) - reads_before - polls - 1
    result.cpu_crawler_s = crawler_cpu.stop()
    result.cpu_crawler_total_s = result.cpu_crawler_s + startup_cpu
    result.cpu_redis_s = redis_cpu.stop()
    result.cpu_server_s = server_cpu.stop()
    result.peak_rss_mb = [round(peak_rss_mb(pid), 1) for pid in worker_pids]
    stats_after = commandstats(client)
    memory_info = info(client, "memory")
    result.redis_used_memory_before = memory_before
    result.redis_used_memory_after = used_memory(client)
    result.redis_used_memory_peak = int(memory_info["used_memory_peak"])
    commands = delta(stats_after, stats_before)
    # the benchmark's own commands are not crawlfleet's
    commands.pop("info", None)
    commands["hget"] = commands.get("hget", 0) - polls
    result.redis_commands = {k: v for k, v in commands.items() if v > 0}
    status = asyncio.run(_status(settings, run.crawl_id))
    result.redis_seen = status.counters.seen
    result.redis_dedupe_key_bytes = prefix_bytes(client, CrawlKeys(run.crawl_id).seen)
    result.redis_leftover_keys = key_census(client, LEFTOVER_PATTERNS)
    if status.state.value != "done" and result.error is None:
        result.error = f"crawl ended {status.state.value}"
    if status.counters.reasons:
        result.notes.append(f"failure reasons: {status.counters.reasons}")
    if run.since is not None:
        c = status.counters
        result.figures.update(
            new=c.new, changed=c.changed, unchanged=c.unchanged, gone=c.gone, unreached=c.unreached
        )
    client.close()


async def _seed(settings: Settings, spec: CrawlSpec) -> None:
    async with connected(settings.redis_url) as redis:
        await seed_crawl(redis, settings, spec)


async def _status(settings: Settings, crawl_id: str) -> CrawlStatus:
    async with connected(settings.redis_url) as redis:
        return await load_status(redis, crawl_id)
