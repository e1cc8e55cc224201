"""One worker process's life: serving jobs until SIGTERM or SIGINT, through Redis outages,
and stopping gracefully; the process's garbage collector and open-files limit tuned first."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import resource
import signal
from collections.abc import Coroutine
from typing import Any

import structlog
from arq.worker import Worker

from crawlfleet.shared.connections import REDIS_ERRORS, connected
from crawlfleet.shared.errors import RedisUnavailable
from crawlfleet.shared.settings import Settings
from crawlfleet.workers.build import build_worker
from crawlfleet.workers.context import on_shutdown
from crawlfleet.workers.metrics import WorkerMetrics, served_metrics

log = structlog.get_logger()

# how long shutting down may wait on Redis before it gives up on it
_CLOSE_TIMEOUT_S = 5.0
_CLOSE_FAILURES: tuple[type[Exception], ...] = (TimeoutError, *REDIS_ERRORS)


async def wait_for_redis(settings: Settings, stop: asyncio.Event) -> bool:
    """Wait until Redis answers (True) or ``stop`` is set (False), logging the outage once."""
    delay = 0.2
    warned = False
    while not stop.is_set():
        try:
            async with connected(settings.redis_url):
                if warned:
                    log.info("redis reachable again")
                return True
        except RedisUnavailable as exc:
            if not warned:
                log.warning("waiting for redis", error=str(exc))
                warned = True
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), delay)
        delay = min(delay * 2, 5.0)
    return False


async def _ended_within(step: Coroutine[Any, Any, None], seconds: float) -> bool:
    """Run ``step`` for at most ``seconds``: True if it ended in time, False if it timed out,
    failed on Redis or cancelled itself (it is cancelled, not waited for); other errors are
    raised.

    Not ``asyncio.wait_for``: after its timeout it waits for the cancelled step to end, and a
    step that shields a call to a hung Redis (arq's close waits for jobs that do) never ends.
    A step that ends cancelled without being cancelled here (redis-py's pool close re-raises
    what closing a connection raised, a CancelledError included) must not read as this task's
    own cancellation: that would end the worker.
    """
    task = asyncio.ensure_future(step)
    done, _ = await asyncio.wait({task}, timeout=seconds)
    if not done:
        task.cancel()
        return False
    if task.cancelled():
        return False
    exc = task.exception()
    if exc is None:
        return True
    if isinstance(exc, _CLOSE_FAILURES):
        return False
    raise exc


async def _abandon(worker: Worker) -> None:
    """Drop a worker whose Redis is gone or hung: cancel its jobs, release its resources.

    Its jobs stay queued with arq's in-progress mark, so they run again once that expires.
    """
    for task in worker.tasks.values():
        task.cancel()
    if worker.tasks:
        await asyncio.wait(worker.tasks.values(), timeout=_CLOSE_TIMEOUT_S)
    await on_shutdown(worker.ctx)
    await _ended_within(worker.pool.aclose(close_connection_pool=True), _CLOSE_TIMEOUT_S)


async def _stop(worker: Worker, main: asyncio.Task[None], grace_s: float) -> None:
    """Stop gracefully: take no new job, give running ones ``grace_s`` to finish, hand back
    the rest (arq queues a cancelled job again), and close, never waiting on Redis for long."""
    worker.allow_pick_jobs = False
    running = [t for t in worker.tasks.values() if not t.done()]
    log.info("worker stopping", running=len(running), grace_s=grace_s)
    if running:
        await asyncio.wait(running, timeout=grace_s)
    main.cancel()
    with contextlib.suppress(asyncio.CancelledError, *REDIS_ERRORS):
        await main
    if not await _ended_within(worker.close(), _CLOSE_TIMEOUT_S):
        await _abandon(worker)


async def serve(settings: Settings, metrics: WorkerMetrics | None = None) -> None:
    """Run one worker until SIGTERM or SIGINT, starting it again whenever Redis comes back
    (each one counting into the process's served ``metrics``, if any).

    The signals are ours, not arq's, so a stop is honoured whatever state the worker is in:
    waiting for Redis, running jobs, or dropping a worker whose Redis went away.
    """
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    while await wait_for_redis(settings, stop):
        worker = build_worker(settings, metrics, handle_signals=False)
        main = asyncio.create_task(worker.async_run())
        stopping = asyncio.create_task(stop.wait())
        await asyncio.wait({main, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if stop.is_set():
            await _stop(worker, main, settings.shutdown_grace_s)
            return
        stopping.cancel()
        exc = main.exception()
        if exc is None or not isinstance(exc, REDIS_ERRORS):
            await _abandon(worker)
            if exc is not None:
                raise exc
            return
        log.warning("redis connection lost", error=f"{type(exc).__name__}: {exc}")
        await _abandon(worker)


# the youngest generation is collected after this many allocations (Python's default: 700)
GC_YOUNG_THRESHOLD = 10_000


def tune_garbage_collector() -> None:
    """Take the objects alive now (modules, classes, settings) out of the cyclic garbage
    collector's reach for the life of the process, and collect the young generation less
    often (``worker started`` logs both).

    A worker's objects are mostly the libraries it imported, which live as long as it does,
    yet every full pass walked them; and at Python's default threshold a page's allocations
    set off hundreds of young passes in a worker's life (bench/README.md has the figures).
    """
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, middle, old)


# the soft limit on open files is raised to the hard one, but no further than this when the
# hard one is unlimited (the kernel refuses more than its nr_open, usually 2**20)
OPEN_FILES_CEILING = 1 << 20


def raise_open_files_limit() -> None:
    """Let the process open as many files as its hard limit allows (``worker started`` says
    how many), as Go's runtime does at start.

    A worker holds a socket per request in flight and up to ``IDLE_PER_TURN`` idle ones per
    fetch turn (``workers.fetch``), besides its Redis connections, a record log, a WARC file
    and up to 256 bucket folders for each crawl it stores pages of: 640
    sockets at the default concurrency, 2,560 at 512. A shell's usual soft limit of 1,024
    would turn the rest into failed fetches and unwritten pages.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = OPEN_FILES_CEILING if hard == resource.RLIM_INFINITY else hard
    if soft == resource.RLIM_INFINITY or soft >= want:
        return
    with contextlib.suppress(ValueError, OSError):  # a sandbox may refuse: keep what we have
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


def run_worker(settings: Settings) -> None:
    """Run one worker process until SIGTERM or SIGINT; in-flight pages get the grace period.

    Raises MetricsPortError, before anything runs, if its metrics cannot be served.
    """
    # bound before any task exists, so every task's log lines carry the worker id
    structlog.contextvars.bind_contextvars(worker=settings.worker_id)
    with served_metrics(settings) as metrics:
        tune_garbage_collector()
        raise_open_files_limit()
        asyncio.run(serve(settings, metrics))
