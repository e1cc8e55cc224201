"""Reading crawls back from Redis: their spec, state and counters."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from pydantic import ValidationError
from redis.asyncio import Redis

from crawlfleet.shared.crawl import CrawlCounters, CrawlSpec, CrawlState, CrawlStatus
from crawlfleet.shared.errors import UnknownCrawl, UnreadableCrawl
from crawlfleet.shared.keys import CRAWLS_INDEX, CrawlKeys, fleet_key

# a worker says every second that it serves its queue (workers/arq_worker.py); one that has
# been silent this long is taken to be gone
WORKER_SILENT_MS = 5000
_LIVE_STATES = frozenset(state.value.encode() for state in CrawlState if state.live)


def _text(value: bytes | None) -> str | None:
    return None if value is None else value.decode()


async def workers_serving(redis: Redis, queue_name: str) -> int:
    """How many workers said lately that they serve ``queue_name``."""
    since = int(time.time() * 1000) - WORKER_SILENT_MS
    return int(await redis.zcount(fleet_key(queue_name), since, "+inf"))


async def load_spec(redis: Redis, crawl_id: str) -> CrawlSpec:
    """The spec of a crawl; UnknownCrawl if there is none."""
    raw: bytes | None = await redis.hget(CrawlKeys(crawl_id).meta, "spec")  # type: ignore[misc]
    if raw is None:
        raise UnknownCrawl(f"no crawl with id {crawl_id!r}")
    return CrawlSpec.model_validate_json(raw)


async def has_ended(redis: Redis, crawl_id: str) -> bool:
    """Whether the crawl is done or cancelled (one HGET: cheap enough to ask often)."""
    state: bytes | None = await redis.hget(CrawlKeys(crawl_id).meta, "state")  # type: ignore[misc]
    return state is not None and state.decode() in _ENDED


_ENDED = frozenset(s.value for s in CrawlState if not s.live)


async def load_status(redis: Redis, crawl_id: str) -> CrawlStatus:
    """State, counters and busiest hosts of a crawl, in one round trip; UnknownCrawl if there
    is none."""
    keys = CrawlKeys(crawl_id)
    async with redis.pipeline(transaction=False) as pipe:
        pipe.hgetall(keys.meta)
        pipe.hgetall(keys.stats)
        pipe.hgetall(keys.reasons)
        pipe.zrange(keys.busiest, 0, -1, withscores=True)
        meta, stats, reasons, busiest = await pipe.execute()
    if not meta:
        raise UnknownCrawl(f"no crawl with id {crawl_id!r}")
    try:
        return _status(crawl_id, meta, stats, reasons, busiest)
    except (ValueError, KeyError) as exc:  # pydantic's and decoding errors are ValueErrors
        if isinstance(exc, ValidationError):
            why = f"{exc.errors()[0]['loc']}: {exc.errors()[0]['msg']}"
        else:
            why = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UnreadableCrawl(f"crawl {crawl_id!r} cannot be read from Redis: {why}") from exc


def _status(
    crawl_id: str,
    meta: dict[bytes, bytes],
    stats: dict[bytes, bytes],
    reasons: dict[bytes, bytes],
    busiest: list[tuple[bytes, float]],
) -> CrawlStatus:
    counts = {k.decode(): int(v) for k, v in stats.items()}
    progress_ms = counts.pop("progress_at", None)
    finished = _text(meta.get(b"finished_at"))
    return CrawlStatus(
        crawl_id=crawl_id,
        state=CrawlState(meta[b"state"].decode()),
        spec=CrawlSpec.model_validate_json(meta[b"spec"]),
        created_at=datetime.fromisoformat(meta[b"created_at"].decode()),
        finished_at=datetime.fromisoformat(finished) if finished else None,
        reason=_text(meta.get(b"reason")),
        manifest=_text(meta.get(b"manifest")),
        progress_at=None
        if progress_ms is None
        else datetime.fromtimestamp(progress_ms / 1000, UTC),
        counters=CrawlCounters(
            **counts,
            reasons={k.decode(): int(v) for k, v in sorted(reasons.items())},
            busiest={
                h.decode(): int(n) for h, n in sorted(busiest, key=lambda hn: (-hn[1], hn[0]))
            },
        ),
    )


async def list_crawls(redis: Redis) -> list[str]:
    """Every crawl id, oldest first."""
    return [c.decode() for c in await redis.zrange(CRAWLS_INDEX, 0, -1)]


async def pending_of(redis: Redis, crawl_ids: list[str]) -> dict[str, int | None]:
    """The URLs each crawl has still to close (in backlogs, queued or running), in one round
    trip; None for a crawl that has ended or is gone."""
    async with redis.pipeline(transaction=False) as pipe:
        for crawl_id in crawl_ids:
            keys = CrawlKeys(crawl_id)
            pipe.hget(keys.meta, "state")
            pipe.hget(keys.stats, "pending")
        replies = await pipe.execute()
    pending: dict[str, int | None] = {}
    for at, crawl_id in enumerate(crawl_ids):
        state, count = replies[2 * at], replies[2 * at + 1]
        pending[crawl_id] = int(count or 0) if state in _LIVE_STATES else None
    return pending
