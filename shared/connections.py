"""Connecting to Redis, with the one clear error a user sees when it cannot be reached."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import urlsplit, urlunsplit

from arq.connections import RedisSettings
from redis.asyncio import Redis
from redis.exceptions import AuthenticationError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from shared.errors import RedisUnavailable


def redacted(url: str) -> str:
    """The Redis URL without its password, for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    user = f"{parts.username}:***@" if parts.username else ":***@"
    return urlunsplit((parts.scheme, user + host, parts.path, parts.query, parts.fragment))


def arq_redis_settings(url: str) -> RedisSettings:
    """arq's connection settings for a ``redis://``, ``rediss://`` or ``unix://`` URL."""
    try:
        settings = RedisSettings.from_dsn(url)
    except (RuntimeError, ValueError) as exc:
        raise RedisUnavailable(f"invalid Redis URL {redacted(url)!r}: {exc}") from exc
    # arq would try 5 times a second apart before giving up; workers retry on their own
    settings.conn_retries = 0
    return settings


def client(url: str) -> Redis:
    """A Redis client (bytes responses) for ``url``; nothing is connected yet."""
    try:
        redis: Redis = Redis.from_url(url, socket_connect_timeout=5, health_check_interval=30)
        return redis
    except ValueError as exc:
        raise RedisUnavailable(f"invalid Redis URL {redacted(url)!r}: {exc}") from exc


@asynccontextmanager
async def connected(url: str) -> AsyncIterator[Redis]:
    """A client that has answered PING, closed on exit; RedisUnavailable if it cannot be had."""
    redis = client(url)
    try:
        try:
            await redis.ping()
        except AuthenticationError as exc:
            raise RedisUnavailable(f"Redis at {redacted(url)} refused the login: {exc}") from exc
        except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
            raise RedisUnavailable(f"cannot reach Redis at {redacted(url)}: {exc}") from exc
        yield redis
    finally:
        await redis.aclose()
