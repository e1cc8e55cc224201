"""Scenario (d): a large frontier, to measure Redis memory per discovered, unfetched URL.

No page is fetched. The crawl is seeded with one page per host, then, as long as fewer than
``urls`` URLs are known, a job is taken from arq's queue and closed through crawlfleet's own
:meth:`workers.frontier.Frontier.close` (the Lua script a worker runs after a page) with
``links_per_page`` new links, which admits them exactly as a crawl does: each new URL is added
to the crawl's seen set and waits in its host's backlog (URL and depth only); a job is made only
when a slot of its host is free.

At checkpoints the benchmark reads ``used_memory`` and ``MEMORY USAGE`` of the crawl's keys:

- bytes per URL = ``used_memory`` growth / URLs seen: everything the frontier holds (the seen
  buckets, the backlogs, the queued jobs);
- bytes per seen URL = ``MEMORY USAGE`` of the seen buckets ``cf:<crawl>:seen:*`` / URLs seen
  (the dedupe set, with depth);
- the arq queue's length, which must never pass the sum of the hosts' slots.

The URLs look like the synthetic web's (``http://127.0.0.N:40000/p/<n>.html``); nothing connects
to them.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from redis.asyncio import Redis

from bench.measure import cpu_seconds
from crawlfleet.scheduler.control import seed_crawl
from crawlfleet.scheduler.embedded import EmbeddedRedis
from crawlfleet.shared.connections import connected
from crawlfleet.shared.crawl import CrawlSpec
from crawlfleet.shared.jobs import deserialize
from crawlfleet.shared.keys import CrawlKeys, job_key
from crawlfleet.shared.settings import Settings
from crawlfleet.workers.frontier import Frontier, PageJob

CRAWL_ID = "frontier"


HOSTS = 8


@dataclass
class Checkpoint:
    seen: int
    queued: int  # URLs waiting: backlog entries and queued jobs
    used_memory_growth: int
    seen_key_bytes: int
    queue_length: int
    slots: int  # the sum of the hosts' slots
    seen_encoding: str

    @property
    def bytes_per_seen(self) -> float:
        return self.seen_key_bytes / self.seen if self.seen else 0.0

    @property
    def bytes_per_url(self) -> float:
        return self.used_memory_growth / self.seen if self.seen else 0.0

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["bytes_per_seen"] = round(self.bytes_per_seen, 1)
        data["bytes_per_url"] = round(self.bytes_per_url, 1)
        return data


@dataclass
class FrontierResult:
    urls: int
    seconds: float = 0.0
    redis_cpu_s: float = 0.0
    checkpoints: list[Checkpoint] = field(default_factory=list)
    error: str | None = None

    @property
    def final(self) -> Checkpoint | None:
        return self.checkpoints[-1] if self.checkpoints else None

    def to_dict(self) -> dict[str, Any]:
        final = self.final
        return {
            "urls": self.urls,
            "seconds": round(self.seconds, 2),
            "redis_cpu_s": round(self.redis_cpu_s, 2),
            "redis_cpu_us_per_admitted_url": round(self.redis_cpu_s * 1e6 / self.urls, 1)
            if self.urls
            else None,
            "bytes_per_seen": round(final.bytes_per_seen, 1) if final else None,
            "bytes_per_url": round(final.bytes_per_url, 1) if final else None,
            "longest_queue": max((c.queue_length for c in self.checkpoints), default=None),
            "slots": final.slots if final else None,
            "checkpoints": [c.to_dict() for c in self.checkpoints],
            "error": self.error,
        }


def _url(n: int) -> str:
    return f"http://127.0.0.{2 + n % HOSTS}:40000/p/{n}.html"


async def _memory_usage(redis: Redis, key: str) -> int:
    value = await redis.memory_usage(key, samples=0)
    return int(value or 0)


async def _seen_buckets(redis: Redis, keys: CrawlKeys) -> list[bytes]:
    return [k async for k in redis.scan_iter(match=keys.seen + "*", count=1000)]


async def _checkpoint(redis: Redis, baseline: int, queue_name: str, slots: int) -> Checkpoint:
    keys = CrawlKeys(CRAWL_ID)
    seen = int(await redis.hget(keys.stats, "seen") or 0)  # type: ignore[misc]
    queued = int(await redis.hget(keys.stats, "pending") or 0)  # type: ignore[misc]
    buckets = await _seen_buckets(redis, keys)
    seen_bytes = sum([await _memory_usage(redis, b.decode()) for b in buckets])
    encodings = {await redis.object("encoding", b) for b in buckets[:50]}
    return Checkpoint(
        seen=seen,
        queued=queued,
        used_memory_growth=int((await redis.info("memory"))["used_memory"]) - baseline,
        seen_key_bytes=seen_bytes,
        queue_length=int(await redis.zcard(queue_name)),
        slots=slots,
        seen_encoding=",".join(
            sorted(e.decode() if isinstance(e, bytes) else str(e) for e in encodings)
        ),
    )


async def _fill(
    settings: Settings, urls: int, links_per_page: int, checkpoints: list[int]
) -> list[Checkpoint]:
    spec = CrawlSpec(
        crawl_id=CRAWL_ID,
        seeds=[_url(n) for n in range(HOSTS)],
        depth=2,
        obey_robots=False,
        allow_private=True,
    )
    slots = HOSTS * spec.per_host_concurrency
    results: list[Checkpoint] = []
    async with connected(settings.redis_url) as redis:
        baseline = int((await redis.info("memory"))["used_memory"])
        await seed_crawl(redis, settings, spec)
        frontier = Frontier(redis, settings)
        next_url = HOSTS
        marks = sorted(checkpoints)
        while next_url < urls:
            queued = await redis.zrange(settings.queue_name, 0, 0)
            if not queued:
                break
            payload = deserialize(await redis.get(job_key(queued[0].decode())) or b"")
            url, depth = payload["a"][0], payload["a"][1]
            job = PageJob(crawl_id=CRAWL_ID, url=url, depth=depth, parent=None)
            links = [_url(next_url + k) for k in range(links_per_page)]
            next_url += links_per_page
            await frontier.close(job, spec.depth, "fetched", 8192, links)
            if marks and next_url >= marks[0]:
                marks.pop(0)
                results.append(await _checkpoint(redis, baseline, settings.queue_name, slots))
        if not results or results[-1].seen != next_url:
            results.append(await _checkpoint(redis, baseline, settings.queue_name, slots))
    return results


def run_frontier(
    work_dir: Path, urls: int, links_per_page: int = 1000, checkpoints: list[int] | None = None
) -> FrontierResult:
    """Admit about ``urls`` URLs into one crawl's frontier and measure Redis memory."""
    result = FrontierResult(urls=urls)
    redis = EmbeddedRedis(work_dir / "redis", appendonly=False)
    try:
        redis.start()
        assert redis.pid is not None
        settings = Settings(redis_url=redis.url, data_dir=work_dir / "data")
        cpu_before = cpu_seconds(redis.pid)
        started = time.monotonic()
        marks = checkpoints or [urls // 10, urls // 4, urls // 2, urls]
        result.checkpoints = asyncio.run(_fill(settings, urls, links_per_page, marks))
        result.seconds = time.monotonic() - started
        result.redis_cpu_s = cpu_seconds(redis.pid) - cpu_before
        if result.final:
            result.urls = result.final.seen
    except Exception as exc:
        result.error = f"{type(exc).__name__}: {exc}"
    finally:
        redis.stop()
    return result
