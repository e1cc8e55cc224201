"""The commands of a fleet sharing one Redis: ``worker`` runs one of its workers; ``status``,
``cancel``, ``pause``, ``resume`` and ``forget`` look at and steer its crawls."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar

import typer
from redis.asyncio import Redis

from crawlfleet.scheduler.console import FAILURE, crawl_store, fail, out, run_async, settings_of
from crawlfleet.scheduler.control import cancel_crawl, forget_crawl, pause_crawl, resume_crawl
from crawlfleet.scheduler.options import (
    MetricsHost,
    MetricsPort,
    StoreDir,
    WorkerOptions,
    with_options,
)
from crawlfleet.scheduler.summary import print_status_table, status_json
from crawlfleet.shared.catalog import list_crawls, load_status
from crawlfleet.shared.connections import connected
from crawlfleet.shared.crawl import CrawlStatus, check_crawl_id
from crawlfleet.shared.errors import UnreadableCrawl
from crawlfleet.shared.keys import worker_health_key
from crawlfleet.shared.settings import Settings

T = TypeVar("T")

# the crawl each steering command acts on
_ToStop = Annotated[str, typer.Argument(metavar="CRAWL_ID", help="The crawl to stop.")]
_ToHold = Annotated[str, typer.Argument(metavar="CRAWL_ID", help="The crawl to hold.")]
_ToRelease = Annotated[str, typer.Argument(metavar="CRAWL_ID", help="The crawl to release.")]
_ToForget = Annotated[str, typer.Argument(metavar="CRAWL_ID", help="The crawl to forget.")]


@with_options
def worker(
    ctx: typer.Context,
    worker_options: WorkerOptions,
    metrics_port: MetricsPort = None,
    metrics_host: MetricsHost = None,
    check: Annotated[
        bool,
        typer.Option(
            "--check",
            help="Do not run: exit 0 if the worker CRAWLFLEET_WORKER_ID polled Redis in the "
            "last 30 s, else 1 (a container healthcheck).",
        ),
    ] = False,
) -> None:
    """Run one worker until SIGTERM or SIGINT (in-flight pages finish or go back to the queue)."""
    settings = settings_of(
        ctx, **worker_options.settings(), metrics_port=metrics_port, metrics_host=metrics_host
    )
    if check:
        raise typer.Exit(0 if _worker_alive(settings) else 1)
    # the worker is its own program (the package the CLI does not import): this process
    # becomes it, so a container's signals and exit status are the worker's own
    sys.stdout.flush()
    env = {**os.environ, **settings.to_env()}
    os.execve(sys.executable, [sys.executable, "-m", "crawlfleet.workers"], env)  # noqa: S606


def _worker_alive(settings: Settings) -> bool:
    import redis

    key = worker_health_key(settings.queue_name, settings.worker_id)
    try:
        with redis.Redis.from_url(settings.redis_url, socket_timeout=3) as client:
            return bool(client.exists(key))
    except (redis.RedisError, OSError):
        return False


def status(
    ctx: typer.Context,
    crawl_id: Annotated[
        str | None, typer.Argument(metavar="CRAWL_ID", help="One crawl; all when omitted.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    data_dir: StoreDir = None,
) -> None:
    """State and counters of one crawl, or a table of all crawls."""
    settings = settings_of(ctx)

    async def go() -> tuple[list[CrawlStatus], list[str]]:
        async with connected(settings.redis_url) as redis:
            if crawl_id:
                return [await load_status(redis, check_crawl_id(crawl_id))], []
            statuses, unreadable = [], []
            for c in await list_crawls(redis):
                try:
                    statuses.append(await load_status(redis, c))
                except UnreadableCrawl as exc:  # one bad crawl must not hide the others
                    unreadable.append(str(exc))
            return statuses, unreadable

    with crawl_store(settings, data_dir) as settings:
        statuses, unreadable = run_async(go())
    failures = [fail(message, FAILURE) for message in unreadable]  # each printed as one line
    if as_json:
        data = [status_json(s, settings.stall_after_s) for s in statuses]
        print(json.dumps(data[0] if crawl_id else data, indent=2))
    else:
        print_status_table(statuses, settings.stall_after_s)
    if failures:
        raise failures[0]


def _steer(
    ctx: typer.Context,
    crawl_id: str,
    data_dir: StoreDir,
    action: Callable[[Redis, Settings, str], Awaitable[T]],
) -> T:
    """Do ``action`` to the crawl ``crawl_id`` in the fleet's Redis (or the one ``run`` keeps
    in ``data_dir``); a bad id or a failure exits with one line."""
    settings = settings_of(ctx)

    async def go(settings: Settings) -> T:
        async with connected(settings.redis_url) as redis:
            return await action(redis, settings, check_crawl_id(crawl_id))

    with crawl_store(settings, data_dir) as settings:
        return run_async(go(settings))


def cancel(ctx: typer.Context, crawl_id: _ToStop, data_dir: StoreDir = None) -> None:
    """Stop a crawl: queued jobs are dropped, pages being fetched are aborted."""
    result = _steer(ctx, crawl_id, data_dir, cancel_crawl)
    out.print(
        f"cancelled {crawl_id}: dropped {result.dropped} queued job(s), "
        f"aborting {result.aborted} running",
        highlight=False,
    )


def pause(ctx: typer.Context, crawl_id: _ToHold, data_dir: StoreDir = None) -> None:
    """Hold a crawl: its queue is kept aside, pages being fetched finish. See `resume`."""
    parked = _steer(ctx, crawl_id, data_dir, pause_crawl)
    out.print(f"paused {crawl_id}: {parked} URL(s) held", highlight=False)


def resume(ctx: typer.Context, crawl_id: _ToRelease, data_dir: StoreDir = None) -> None:
    """Release a paused crawl: its held jobs are queued again."""
    queued = _steer(ctx, crawl_id, data_dir, resume_crawl)
    out.print(f"resumed {crawl_id}: {queued} URL(s) to go", highlight=False)


def forget(ctx: typer.Context, crawl_id: _ToForget, data_dir: StoreDir = None) -> None:
    """Remove an ended crawl from Redis (its files stay); `status` no longer lists it."""
    _steer(ctx, crawl_id, data_dir, forget_crawl)
    out.print(f"forgot {crawl_id}", highlight=False)
