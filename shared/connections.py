"""Connecting to Redis, with the one clear error a user sees when it cannot be reached."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from arq.connections import RedisSettings
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import AuthenticationError, BusyLoadingError, RedisError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from crawlfleet.shared.errors import RedisUnavailable

# errors that mean "Redis is not there right now" (restarting, loading its data, unreachable)
REDIS_ERRORS: tuple[type[Exception], ...] = (
    RedisConnectionError,
    RedisTimeoutError,
    BusyLoadingError,
    ConnectionError,
    OSError,
)
# Every command is retried over about 10 s of outage (a Redis restart) before an error
# reaches the caller. Safe because crawlfleet's scripts are idempotent: running one twice
# after a lost reply changes nothing the second time.
_RETRIES = 12


def _retry() -> Retry:
    return Retry(ExponentialBackoff(cap=1.0, base=0.05), _RETRIES)


def redacted(url: str) -> str:
    """The Redis URL without its password (in the address or a ``password`` query parameter,
    which redis-py reads too), for messages and logs."""
    parts = urlsplit(url)
    if parts.password is not None:
        host = parts.hostname or ""
        if parts.port:
            host = f"{host}:{parts.port}"
        netloc = (f"{parts.username}:***@" if parts.username else ":***@") + host
        url = urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    if any(name == "password" for name, _ in pairs):
        query = urlencode([(n, "***" if n == "password" else v) for n, v in pairs], safe="*/")
        # not urlunsplit: it drops the empty address of a unix:/// URL
        url = url.replace(f"?{parts.query}", f"?{query}", 1)
    return url


def arq_redis_settings(url: str) -> RedisSettings:
    """arq's connection settings for a ``redis://``, ``rediss://`` or ``unix://`` URL."""
    try:
        settings = RedisSettings.from_dsn(url)
    except (RuntimeError, ValueError) as exc:
        raise RedisUnavailable(f"invalid Redis URL {redacted(url)!r}: {exc}") from exc
    # arq would try 5 times a second apart before giving up; workers retry on their own
    settings.conn_retries = 0
    settings.retry = _retry()
    settings.retry_on_error = [RedisConnectionError, RedisTimeoutError, BusyLoadingError]
    return settings


def client(url: str, *, retries: bool = True) -> Redis:
    """A Redis client (bytes responses) for ``url``; nothing is connected yet.

    With ``retries`` every command rides out about 10 s of outage; without, it fails at once.
    """
    extra: dict[str, Any] = {}
    if retries:
        extra = {
            "retry": _retry(),
            "retry_on_error": [RedisConnectionError, RedisTimeoutError, BusyLoadingError],
        }
    try:
        redis: Redis = Redis.from_url(
            url, socket_connect_timeout=5, health_check_interval=30, **extra
        )
    except ValueError as exc:
        raise RedisUnavailable(f"invalid Redis URL {redacted(url)!r}: {exc}") from exc
    return redis


async def check(url: str) -> None:
    """Raise RedisUnavailable, with one clear sentence, unless Redis answers PING now."""
    probe = client(url, retries=False)
    try:
        await probe.ping()
    except (RedisError, *REDIS_ERRORS) as exc:  # type: ignore[misc]
        if _is_auth_error(exc):
            raise RedisUnavailable(f"Redis at {redacted(url)} refused the login: {exc}") from exc
        raise RedisUnavailable(f"cannot reach Redis at {redacted(url)}: {exc}") from exc
    finally:
        await probe.aclose()


def _is_auth_error(exc: BaseException) -> bool:
    # redis-py's asyncio client reports a refused AUTH as a ConnectionError with Redis's words
    text = str(exc)
    return isinstance(exc, AuthenticationError) or any(
        word in text for word in ("WRONGPASS", "NOAUTH", "invalid username-password")
    )


@asynccontextmanager
async def connected(url: str) -> AsyncIterator[Redis]:
    """A client of a Redis that answered PING (else RedisUnavailable), closed on exit."""
    await check(url)
    redis = client(url)
    try:
        yield redis
    finally:
        await redis.aclose()
