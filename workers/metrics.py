"""A worker's Prometheus metrics: the metric objects, in a registry of their own, and the HTTP
server that exposes them when ``Settings.metrics_port`` is given (off by default).

The worker counts where it logs the same events (``workers/jobs/``): a page closed (its
status class, its body bytes, its failure reason as the crawl's summary counts it), and each
request, pages, robots.txt and sitemaps alike, while it is in flight and for how long it took.
What is the fleet's rather than the worker's (URLs pending per crawl, jobs in arq's queue) is
read from Redis every ``QUEUE_READ_EVERY_S`` by a task of the worker's loop, never at scrape
time: the server answers from a thread of its own and must not wait on Redis.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    ProcessCollector,
    start_http_server,
)
from redis.asyncio import Redis
from redis.exceptions import RedisError

from crawlfleet.shared.catalog import pending_of
from crawlfleet.shared.connections import REDIS_ERRORS
from crawlfleet.shared.errors import MetricsPortError
from crawlfleet.shared.settings import Settings
from crawlfleet.workers.fetch import FetchResult

# seconds: loopback answers in milliseconds, the web in tenths, a slow host up to the timeout
FETCH_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
# how often a served worker reads the fleet's gauges from Redis: a few commands each time
QUEUE_READ_EVERY_S = 2.0
_READ_FAILURES: tuple[type[Exception], ...] = (RedisError, *REDIS_ERRORS)


def status_class(status: int | None) -> str:
    """The ``status`` label of a page: ``2xx``, ``4xx``... or ``none`` when no response came."""
    return "none" if status is None else f"{status // 100}xx"


class CrawlMetrics:
    """One crawl's children of the worker's labelled counters, each made once: a page closed
    costs dictionary look-ups, not label handling."""

    __slots__ = ("_failures", "_metrics", "_pages", "_received", "crawl_id")

    def __init__(self, metrics: WorkerMetrics, crawl_id: str) -> None:
        self._metrics = metrics
        self.crawl_id = crawl_id
        self._pages: dict[int | None, Counter] = {}  # by status: its class's child
        self._failures: dict[str, Counter] = {}
        self._received = metrics.received.labels(crawl_id)

    def closed(self, result: FetchResult) -> None:
        """Count a page closed with ``result``."""
        pages = self._pages.get(result.status)
        if pages is None:
            label = status_class(result.status)
            pages = self._pages[result.status] = self._metrics.pages.labels(self.crawl_id, label)
        pages.inc()
        if result.body:
            self._received.inc(len(result.body))
        reason = result.reason
        if reason:
            failures = self._failures.get(reason)
            if failures is None:
                failures = self._failures[reason] = self._metrics.failures.labels(
                    self.crawl_id, reason
                )
            failures.inc()


class _Request:
    """A request in flight, timed: it counts as in flight until it ends, and its duration is
    observed unless it was cancelled."""

    __slots__ = ("_metrics", "_started")

    def __init__(self, metrics: WorkerMetrics) -> None:
        self._metrics = metrics
        self._started = 0.0

    def __enter__(self) -> None:
        self._metrics.in_flight.inc()
        self._started = time.perf_counter()

    def __exit__(self, exc_type: type[BaseException] | None, *_: object) -> None:
        self._metrics.in_flight.dec()
        if exc_type is None:
            self._metrics.fetch_seconds.observe(time.perf_counter() - self._started)


class WorkerMetrics:
    """The metrics of one worker process, in a registry of their own (so that one process,
    a test's, may hold several)."""

    def __init__(self, worker_id: str) -> None:
        self.registry = registry = CollectorRegistry()
        info = Info("crawlfleet_worker", "The worker serving these metrics.", registry=registry)
        info.info({"worker": worker_id})
        ProcessCollector(registry=registry)  # process_cpu_seconds_total, memory, open files
        self.pages = Counter(
            "crawlfleet_pages",
            "Pages this worker closed, by crawl and HTTP status class (none: no response).",
            ["crawl", "status"],
            registry=registry,
        )
        self.received = Counter(
            "crawlfleet_received_bytes",
            "Body bytes (decoded) of the pages this worker closed, by crawl.",
            ["crawl"],
            registry=registry,
        )
        self.failures = Counter(
            "crawlfleet_failures",
            "Pages closed with an error or an HTTP error status, by crawl and reason as the "
            "crawl's summary counts them (connect, dns, timeout, tls, http 404, ...).",
            ["crawl", "reason"],
            registry=registry,
        )
        self.fetch_seconds = Histogram(
            "crawlfleet_fetch_duration_seconds",
            "How long each request (a page, a robots.txt, a sitemap) took, its body read included.",
            buckets=FETCH_BUCKETS_S,
            registry=registry,
        )
        self.in_flight = Gauge(
            "crawlfleet_requests_in_flight",
            "Requests this worker has sent and not yet read in full.",
            registry=registry,
        )
        self.pending = Gauge(
            "crawlfleet_crawl_pending_urls",
            "URLs a live crawl has still to close: in its hosts' backlogs, queued or running "
            "(the fleet's count, read from Redis; crawls this worker has served).",
            ["crawl"],
            registry=registry,
        )
        self.queued_jobs = Gauge(
            "crawlfleet_queue_jobs",
            "Jobs in arq's queue, waiting or running, of every crawl (the fleet's count, read "
            "from Redis).",
            registry=registry,
        )
        self._crawls: dict[str, CrawlMetrics] = {}
        self._watched: set[str] = set()  # live crawls whose pending URLs are read

    def crawl(self, crawl_id: str) -> CrawlMetrics:
        """The counters of one crawl (its pending URLs are read from then on, while it lives)."""
        crawl = self._crawls.get(crawl_id)
        if crawl is None:
            crawl = self._crawls[crawl_id] = CrawlMetrics(self, crawl_id)
            self._watched.add(crawl_id)
        return crawl

    def closed(self, crawl_id: str, result: FetchResult) -> None:
        """Count a page of ``crawl_id`` closed with ``result``."""
        self.crawl(crawl_id).closed(result)

    def request(self) -> _Request:
        """A context that counts one request in flight and times it."""
        return _Request(self)

    async def read_queue(self, redis: Redis, queue_name: str) -> None:
        """Read the fleet's gauges from Redis; a crawl that has ended loses its series."""
        self.queued_jobs.set(await redis.zcard(queue_name))
        if not self._watched:
            return
        for crawl_id, pending in (await pending_of(redis, sorted(self._watched))).items():
            if pending is None:
                self._watched.discard(crawl_id)
                with contextlib.suppress(KeyError):
                    self.pending.remove(crawl_id)
            else:
                self.pending.labels(crawl_id).set(pending)

    async def watch_queue(self, redis: Redis, queue_name: str) -> None:
        """Read the fleet's gauges every ``QUEUE_READ_EVERY_S`` until cancelled."""
        while True:
            # Redis lost for a moment: the worker reconnects on its own, and the next read
            # tells the truth again
            with contextlib.suppress(*_READ_FAILURES):
                await self.read_queue(redis, queue_name)
            await asyncio.sleep(QUEUE_READ_EVERY_S)


@contextlib.contextmanager
def served_metrics(settings: Settings) -> Iterator[WorkerMetrics | None]:
    """The process's metrics, served at ``http://metrics_host:metrics_port/metrics`` from a
    thread while the context lasts; None (nothing served) when ``metrics_port`` is 0.

    Raises MetricsPortError if the address cannot be listened on.
    """
    if not settings.metrics_port:
        yield None
        return
    metrics = WorkerMetrics(settings.worker_id)
    where = f"{settings.metrics_host}:{settings.metrics_port}"
    try:
        server, thread = start_http_server(
            settings.metrics_port, settings.metrics_host, registry=metrics.registry
        )
    except OSError as exc:
        raise MetricsPortError(f"cannot serve metrics on {where}: {exc.strerror or exc}") from None
    try:
        yield metrics
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
