"""Running the peers for the benchmark: Scrapy (one process) and scrapy-redis (N processes).

Both run :mod:`bench.spider` in child processes, so their CPU is their own. The crawl window of
a Scrapy process is from its ``spider_opened`` to its last page (the spider measures its own
``getrusage``); its total CPU includes start-up and shutdown. scrapy-redis never stops on its
own when its queue is empty (other processes may still add work), so the benchmark watches the
manifests and the Redis queue: once the queue is empty and no page arrived for ``quiet_s``
seconds the crawl is over; the processes are then stopped with SIGTERM (killed if they linger).
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from bench.measure import (
    CpuMeter,
    commandstats,
    delta,
    info,
    key_bytes,
    peak_rss_mb,
    reads_processed,
    redis_client,
    used_memory,
)
from bench.result import PageSetCheck, RunResult
from crawlfleet.scheduler.embedded import EmbeddedRedis

SPIDER_NAME = "bench"


@dataclass(frozen=True)
class PeerRun:
    """One peer crawl to measure."""

    scenario: str
    seeds: list[str]
    depth: int
    processes: int
    concurrency: int  # per process
    per_domain: int
    store: bool = True
    timeout_s: float = 300.0
    quiet_s: float = 3.0
    # Scrapy's own CONCURRENT_REQUESTS and CONCURRENT_REQUESTS_PER_DOMAIN (16 and 8), not
    # ``concurrency`` and ``per_domain``: "scrapy (defaults)"
    defaults: bool = False


def scrapy_default_concurrency() -> tuple[int, int]:
    """Scrapy's default CONCURRENT_REQUESTS and CONCURRENT_REQUESTS_PER_DOMAIN."""
    from scrapy.settings import default_settings

    return (
        int(default_settings.CONCURRENT_REQUESTS),
        int(default_settings.CONCURRENT_REQUESTS_PER_DOMAIN),
    )


def _spawn(config: dict[str, Any], work_dir: Path, index: int) -> subprocess.Popen[bytes]:
    path = work_dir / f"spider-{index}.json"
    path.write_text(json.dumps({**config, "index": index}))
    log = (work_dir / f"spider-{index}.log").open("wb")
    try:
        return subprocess.Popen(
            [sys.executable, "-m", "bench.spider", str(path)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    finally:
        log.close()


def _stop(procs: list[subprocess.Popen[bytes]], grace_s: float = 20.0) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    for proc in procs:
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def read_pages(out_dir: Path) -> tuple[set[str], list[dict[str, Any]]]:
    """The URLs the spiders recorded (any status), and every record."""
    records: list[dict[str, Any]] = []
    for path in sorted(out_dir.glob("manifest-*.jsonl")):
        records += [json.loads(line) for line in path.read_text().splitlines() if line]
    return {r["url"] for r in records}, records


def _read_stats(out_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted(out_dir.glob("stats-*.json"))]


def _finish(result: RunResult, out_dir: Path, expected: set[str] | None) -> None:
    got, records = read_pages(out_dir)
    result.pages, result.urls = len(got), got
    result.fetch_seconds = sum(float(r.get("latency") or 0) for r in records)
    if len(records) != len(got):
        result.notes.append(f"{len(records) - len(got)} URLs fetched more than once")
    if expected is not None:
        result.check = PageSetCheck.compare(got, expected)


def _config(run: PeerRun, mode: str, out_dir: Path, redis_url: str | None) -> dict[str, Any]:
    return {
        "mode": mode,
        "name": SPIDER_NAME,
        "seeds": run.seeds,
        "allowed_domains": sorted({urlsplit(u).hostname or "" for u in run.seeds}),
        "depth": run.depth,
        "concurrency": run.concurrency,
        "per_domain": run.per_domain,
        "defaults": run.defaults,
        "store": run.store,
        "out_dir": str(out_dir),
        "redis_url": redis_url,
        "log_level": "INFO",
    }


def run_scrapy(
    run: PeerRun, work_dir: Path, expected: set[str] | None, server_pid: int | None
) -> RunResult:
    """Crawl once with one Scrapy process and measure it."""
    tool = "scrapy" if run.store else "scrapy (no store)"
    concurrency = run.concurrency
    if run.defaults:
        tool = "scrapy (defaults)" if run.store else "scrapy (defaults, no store)"
        concurrency, per_domain = scrapy_default_concurrency()
    result = RunResult(
        scenario=run.scenario, tool=tool, processes=1, concurrency=concurrency, depth=run.depth
    )
    if run.defaults:
        result.figures["per_domain"] = per_domain
    out_dir = work_dir / "out"
    out_dir.mkdir(parents=True)
    server_cpu = CpuMeter([server_pid] if server_pid else []).start()
    proc = _spawn(_config(run, "scrapy", out_dir, None), work_dir, 0)
    try:
        try:
            proc.wait(timeout=run.timeout_s)
        except subprocess.TimeoutExpired:
            result.error = f"timeout: not done after {run.timeout_s:.0f}s"
    finally:
        _stop([proc])
    result.cpu_server_s = server_cpu.stop()
    stats = _read_stats(out_dir)
    if not stats:
        result.error = result.error or f"no stats written; see {work_dir / 'spider-0.log'}"
        return result
    s = stats[0]
    result.wall_s = s["last"] - s["opened"]
    result.cpu_crawler_s = s["cpu_last"] - s["cpu_opened"]
    result.cpu_crawler_total_s = s["cpu_closed"]
    result.peak_rss_mb = [round(s["maxrss_mb"], 1)]
    _finish(result, out_dir, expected)
    _scrapy_notes(result, stats)
    return result


def _scrapy_notes(result: RunResult, stats: list[dict[str, Any]]) -> None:
    filtered = sum(s["scrapy_stats"].get("dupefilter/filtered", 0) for s in stats)
    errors = sum(s["scrapy_stats"].get("log_count/ERROR", 0) for s in stats)
    result.notes.append(f"dupefilter/filtered={filtered}")
    if errors:
        result.notes.append(f"log_count/ERROR={errors}")


def run_scrapy_redis(
    run: PeerRun, work_dir: Path, expected: set[str] | None, server_pid: int | None
) -> RunResult:
    """Crawl once with ``run.processes`` scrapy-redis processes sharing one Redis."""
    result = RunResult(
        scenario=run.scenario,
        tool="scrapy-redis",
        processes=run.processes,
        concurrency=run.concurrency,
        depth=run.depth,
    )
    out_dir = work_dir / "out"
    out_dir.mkdir(parents=True)
    redis = EmbeddedRedis(work_dir / "redis", appendonly=False)
    procs: list[subprocess.Popen[bytes]] = []
    pushed = 0.0
    try:
        redis.start()
        config = _config(run, "scrapy-redis", out_dir, redis.url)
        pushed = _watch(run, result, redis, procs, config, work_dir, server_pid)
    except Exception as exc:
        result.error = f"{type(exc).__name__}: {exc}"
    finally:
        _stop(procs)
        redis.stop()
    stats = _read_stats(out_dir)
    if stats:
        # wall time from the push of the start URLs to the last page of any process
        if pushed:
            result.wall_s = max(s["last"] for s in stats) - min(s["opened"] for s in stats)
        result.cpu_crawler_s = sum(s["cpu_last"] - s["cpu_opened"] for s in stats)
        result.cpu_crawler_total_s = sum(s["cpu_closed"] for s in stats)
        result.peak_rss_mb = [round(s["maxrss_mb"], 1) for s in stats]
        _scrapy_notes(result, stats)
    elif result.error is None:
        result.error = f"no stats written; see {work_dir}/spider-*.log"
    _finish(result, out_dir, expected)
    return result


def _wait_ready(out_dir: Path, procs: list[subprocess.Popen[bytes]], timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while len(list(out_dir.glob("ready-*"))) < len(procs):
        if any(p.poll() is not None for p in procs):
            raise RuntimeError("a scrapy-redis process exited while starting")
        if time.monotonic() > deadline:
            raise RuntimeError("scrapy-redis processes did not start")
        time.sleep(0.05)


def _count_lines(out_dir: Path) -> int:
    return sum(p.read_bytes().count(b"\n") for p in out_dir.glob("manifest-*.jsonl"))


def _watch(
    run: PeerRun,
    result: RunResult,
    redis: EmbeddedRedis,
    procs: list[subprocess.Popen[bytes]],
    config: dict[str, Any],
    work_dir: Path,
    server_pid: int | None,
) -> float:
    """Push the start URLs, start the processes (into ``procs``), wait for the end of the
    crawl, read Redis; returns the push time.

    The start URLs are pushed first: a RedisSpider reads them when it goes idle, and an idle
    Scrapy engine looks again only every 5 seconds, which would otherwise count as crawl time.
    """
    assert redis.pid is not None
    out_dir = work_dir / "out"
    client = redis_client(redis.url)
    redis_cpu = CpuMeter([redis.pid]).start()
    server_cpu = CpuMeter([server_pid] if server_pid else []).start()
    memory_before = used_memory(client)
    stats_before = commandstats(client)
    reads_before = reads_processed(client)
    pushed = time.time()
    client.rpush(f"{SPIDER_NAME}:start_urls", *[json.dumps({"url": s}) for s in run.seeds])
    procs += [_spawn(config, work_dir, i) for i in range(run.processes)]
    _wait_ready(out_dir, procs)
    started = time.monotonic()
    count, changed = 0, time.monotonic()
    queue_key = f"{SPIDER_NAME}:requests"
    polls = 0
    while True:
        time.sleep(0.25)
        now_count = _count_lines(out_dir)
        if now_count != count:
            count, changed = now_count, time.monotonic()
            redis_cpu.stop()
            server_cpu.stop()
            continue
        queued = int(client.zcard(queue_key))  # type: ignore[arg-type]
        polls += 1
        if count and not queued and time.monotonic() - changed >= run.quiet_s:
            break
        if time.time() - pushed > run.timeout_s:
            result.error = f"timeout: not done after {run.timeout_s:.0f}s"
            break
        if all(p.poll() is not None for p in procs):
            result.error = "every scrapy-redis process exited before the crawl was over"
            break
    # CPU as of the last page (the meters were read then); Redis state as of now
    result.cpu_redis_s = redis_cpu.total
    result.cpu_server_s = server_cpu.total
    # less the benchmark's own reads: the push, its polls and the INFO that reads the counter
    result.redis_reads = reads_processed(client) - reads_before - polls - 2
    stats = delta(commandstats(client), stats_before)
    stats.pop("info", None)
    stats["zcard"] = stats.get("zcard", 0) - polls
    result.redis_commands = {k: v for k, v in stats.items() if v > 0}
    memory = info(client, "memory")
    result.redis_used_memory_before = memory_before
    result.redis_used_memory_after = used_memory(client)
    result.redis_used_memory_peak = int(memory["used_memory_peak"])
    dupefilter = f"{SPIDER_NAME}:dupefilter"
    result.redis_seen = int(client.scard(dupefilter))  # type: ignore[arg-type]
    result.redis_dedupe_key_bytes = key_bytes(client, dupefilter)
    result.peak_rss_mb = [round(peak_rss_mb(p.pid), 1) for p in procs]
    result.wall_s = changed - started  # refined from the spiders' own clocks once they close
    client.close()
    return pushed
