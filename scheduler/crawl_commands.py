"""The commands that start a crawl: ``seed`` queues it for a fleet's workers, ``run`` crawls
on this machine with workers (and a Redis) of its own."""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from typing import Annotated

import typer

from crawlfleet.scheduler.console import err, fail, failed, out, run_async, settings_of
from crawlfleet.scheduler.control import check_since, check_since_files, seed_crawl
from crawlfleet.scheduler.embedded import REDIS_DIR, EmbeddedRedis
from crawlfleet.scheduler.interrupt import Caught, resume_command, stop_signals_interrupt
from crawlfleet.scheduler.local import LocalWorkers
from crawlfleet.scheduler.options import (
    CrawlOptions,
    MetricsHost,
    MetricsPorts,
    WorkerOptions,
    with_options,
)
from crawlfleet.scheduler.progress import watch
from crawlfleet.scheduler.summary import print_summary
from crawlfleet.shared.catalog import load_status
from crawlfleet.shared.connections import connected
from crawlfleet.shared.crawl import CrawlSpec, CrawlState, CrawlStatus
from crawlfleet.shared.errors import CrawlfleetError, ServiceError
from crawlfleet.shared.settings import Settings

_LAST_PORT = 65535


def _spec(options: CrawlOptions) -> CrawlSpec:
    try:
        return options.spec()
    except CrawlfleetError as exc:
        raise failed(exc) from None


@with_options
def seed(
    ctx: typer.Context,
    *,
    options: CrawlOptions,
    wait: Annotated[bool, typer.Option("--wait", help="Show progress until it is done.")] = False,
) -> None:
    """Create a crawl and queue its seed URLs; prints the crawl id."""
    spec = _spec(options)
    settings = settings_of(ctx)

    async def go() -> CrawlStatus | None:
        async with connected(settings.redis_url) as redis:
            if spec.since is not None:
                await check_since(redis, settings.data_dir, spec.since)
            result = await seed_crawl(redis, settings, spec)
            out.print(spec.crawl_id, highlight=False)
            if not result.created:
                err.print(f"added {result.queued} seed(s) to running crawl {spec.crawl_id}")
            if not wait:
                return None
            return await watch(
                redis, spec.crawl_id, queue_name=settings.queue_name, console=err,
                wait_s=settings.redis_wait_s, stall_after_s=settings.stall_after_s,
                plain_every_s=settings.progress_every_s, hint_no_worker=True,
            )  # fmt: skip

    final = run_async(go())
    if final is not None:
        print_summary(final, settings.data_dir)
        if final.state is not CrawlState.DONE:
            raise typer.Exit(1)


@with_options
def run(
    ctx: typer.Context,
    *,
    options: CrawlOptions,
    workers: Annotated[
        int, typer.Option("--workers", "-w", metavar="W", min=1, help="Worker processes.")
    ] = 2,
    worker_options: WorkerOptions,
    metrics_port: MetricsPorts = None,
    metrics_host: MetricsHost = None,
) -> None:
    """Crawl on this machine: Redis (embedded unless REDIS_URL is set), workers, progress."""
    spec = _spec(options)
    settings = settings_of(
        ctx, **worker_options.settings(), metrics_port=metrics_port, metrics_host=metrics_host
    )
    if settings.metrics_port and settings.metrics_port + workers - 1 > _LAST_PORT:
        raise fail(f"--metrics-port {settings.metrics_port} leaves no port for worker {workers}")
    if spec.since is not None:  # before anything starts: its workers read it in this folder
        try:
            check_since_files(settings.data_dir, spec.since)
        except CrawlfleetError as exc:
            raise failed(exc) from None
    started = time.monotonic()
    embedded: EmbeddedRedis | None = None
    try:
        with stop_signals_interrupt() as caught:
            try:
                if "redis_url" not in settings.model_fields_set:
                    embedded = EmbeddedRedis(settings.data_dir / REDIS_DIR).launch()
                    settings = settings.model_copy(update={"redis_url": embedded.url})
                done_before, final = _run_locally(settings, spec, workers, embedded)
            except KeyboardInterrupt:
                # the workers have stopped (their pages are back in Redis); Redis still runs
                raise _interrupted(settings, spec.crawl_id, caught) from None
    except ServiceError as exc:
        raise failed(exc) from None
    finally:
        if embedded is not None:
            embedded.stop()
    print_summary(
        final, settings.data_dir, elapsed=time.monotonic() - started, done_before=done_before
    )


def _run_locally(
    settings: Settings, spec: CrawlSpec, workers: int, embedded: EmbeddedRedis | None
) -> tuple[int, CrawlStatus]:
    """Start ``workers`` local workers, seed the crawl and watch it until it ends; returns the
    pages it had done already (a resumed crawl) and its final status. A launched ``embedded``
    Redis is waited for once the workers are starting: they take longer to start than it."""
    with LocalWorkers(settings, workers, settings.data_dir / "logs") as fleet:
        if embedded is not None:
            embedded.wait_ready()

        def check_workers() -> None:
            if fleet.alive() == 0:
                raise ServiceError(
                    f"all workers exited; see {settings.data_dir / 'logs'}/worker-*.log"
                )

        async def go() -> tuple[int, CrawlStatus]:
            async with connected(settings.redis_url) as redis:
                if spec.since is not None:
                    await check_since(redis, settings.data_dir, spec.since)
                await seed_crawl(redis, settings, spec)
                before = (await load_status(redis, spec.crawl_id)).counters
                metrics = _metrics_ports(settings.metrics_host, fleet.metrics_ports())
                err.print(
                    f"crawl {spec.crawl_id}: {workers} worker(s), depth {spec.depth}{metrics}",
                    highlight=False,
                    soft_wrap=True,
                )
                return before.done, await watch(
                    redis,
                    spec.crawl_id,
                    queue_name=settings.queue_name,
                    console=err,
                    wait_s=settings.redis_wait_s,
                    stall_after_s=settings.stall_after_s,
                    plain_every_s=settings.progress_every_s,
                    check=check_workers,
                )

        return run_async(go())


def _metrics_ports(host: str, ports: list[int]) -> str:
    """Where the workers of ``run`` serve their metrics, for its first line."""
    if not ports:
        return ""
    last = f"-{ports[-1]}" if len(ports) > 1 else ""
    return f", metrics on {host}:{ports[0]}{last}"


def _interrupted(settings: Settings, crawl_id: str, caught: Caught) -> typer.Exit:
    """Say where an interrupted ``run`` left its crawl and how to resume it."""

    async def counts() -> str:
        async with connected(settings.redis_url) as redis:
            c = (await load_status(redis, crawl_id)).counters
        return f": {c.fetched} fetched, {c.failed} failed, {c.pending} to go"

    try:
        so_far = asyncio.run(counts())
    except (CrawlfleetError, OSError):
        so_far = ""  # interrupted before the crawl was seeded, or Redis is gone
    with contextlib.suppress(OSError):  # a hang-up may have taken the terminal
        err.print(
            f"interrupted by {caught.name}: crawl {crawl_id} stopped{so_far}\n"
            f"resume it with: {resume_command(sys.argv[1:], crawl_id)}",
            highlight=False,
            soft_wrap=True,
        )
    return typer.Exit(caught.exit_code)
