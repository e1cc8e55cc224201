"""Fixtures for fault tests: a Redis the test may restart, settings that recover quickly."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from crawlfleet.scheduler.embedded import EmbeddedRedis
from crawlfleet.shared.settings import Settings


@pytest.fixture
def aof_redis(tmp_path: Path) -> Iterator[EmbeddedRedis]:
    """A redis-server of this test alone, with append-only persistence as in compose."""
    server = EmbeddedRedis(tmp_path / "redis", appendonly=True).start()
    yield server
    server.stop()


@pytest.fixture
def fault_settings(aof_redis: EmbeddedRedis, tmp_path: Path) -> Settings:
    """Settings on that Redis, with a short fetch timeout so killed jobs return in ~19 s."""
    return Settings(
        redis_url=aof_redis.url,
        data_dir=tmp_path / "data",
        concurrency=4,
        log_format="json",
        total_timeout=2,
        read_timeout=2,
        connect_timeout=1,
        shutdown_grace_s=3,
        pause_poll_s=0.5,
    )
