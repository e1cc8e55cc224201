"""What a worker process owns for its whole life: settings, the httpx client, Redis scripts."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import resource
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any

import httpx
import structlog
from redis.asyncio import Redis

from crawlfleet.shared.catalog import load_spec
from crawlfleet.shared.crawl import CrawlSpec
from crawlfleet.shared.settings import Settings
from crawlfleet.shared.storage import CrawlLayout
from crawlfleet.shared.urls import ScopeRule
from crawlfleet.workers.arq_worker import ON_QUEUED, TURNS
from crawlfleet.workers.body_bytes import BodyBytes
from crawlfleet.workers.disk import DiskCheck
from crawlfleet.workers.dns import Lookups
from crawlfleet.workers.fetch import make_client
from crawlfleet.workers.frontier import Frontier
from crawlfleet.workers.guard import Policy, seed_policy
from crawlfleet.workers.metrics import WorkerMetrics
from crawlfleet.workers.parsing import PageLinks
from crawlfleet.workers.record_logs import RecordLogs
from crawlfleet.workers.robots import RobotsCache
from crawlfleet.workers.since import EarlierCrawls
from crawlfleet.workers.turns import FetchTurns
from crawlfleet.workers.warc import WarcWriters

CTX_KEY = "crawlfleet"
# the ctx key of the process's served metrics (``workers.metrics.served_metrics``), if any
METRICS_KEY = "metrics"
# the ctx key of the lookups of the seeds' names to use instead of the system's, if any (a
# test's name server that is slow to answer at first); the worker closes them with its own
LOOKUPS_KEY = "lookups"


@dataclass
class CrawlRules:
    """A crawl's spec with what the worker derives from it, cached for the process."""

    spec: CrawlSpec
    scope: ScopeRule
    layout: CrawlLayout
    policy: Policy
    # False while a seed did not resolve: the policy is public for now, to be asked again
    settled: bool = True
    disk: DiskCheck = field(default_factory=DiskCheck)


@dataclass
class WorkerContext:
    """Per-process resources, opened in arq's ``on_startup`` and closed in ``on_shutdown``."""

    settings: Settings
    frontier: Frontier
    robots: RobotsCache
    stack: AsyncExitStack
    turns: FetchTurns
    body_bytes: BodyBytes
    links: PageLinks
    metrics: WorkerMetrics
    warcs: WarcWriters
    records: RecordLogs
    lookups: Lookups  # for the seeds' addresses (each client has lookups of its own)
    earlier: EarlierCrawls  # what crawls --since another read of it
    rules: dict[str, CrawlRules] = field(default_factory=dict)
    clients: dict[Policy, httpx.AsyncClient] = field(default_factory=dict)
    # the crawls whose rules are being read, for the jobs that ask meanwhile
    _reading: dict[str, asyncio.Future[CrawlRules]] = field(default_factory=dict, init=False)

    async def client_for(self, policy: Policy) -> httpx.AsyncClient:
        """The process's one httpx client for a network policy, opened on first use."""
        client = self.clients.get(policy)
        if client is None:
            client = await self.stack.enter_async_context(make_client(self.settings, policy))
            self.clients[policy] = client
        return client

    async def rules_for(self, crawl_id: str) -> CrawlRules:
        """The rules of a crawl (specs never change, so one read per crawl per process).

        The jobs that ask while the rules are being read wait for that one read: a crawl's
        first jobs start together (hundreds, when it has as many seeds' hosts), and each one
        reading the spec and making a scope over every seed kept the worker's CPU from the
        requests of all the others.
        """
        rules = self.rules.get(crawl_id)
        if rules is not None:
            return rules
        reading = self._reading.get(crawl_id)
        if reading is None:
            reading = asyncio.ensure_future(self._read_rules(crawl_id))
            self._reading[crawl_id] = reading
            reading.add_done_callback(lambda done: self._read_done(crawl_id, done))
        # one job's cancellation (its deadline, a shutdown) leaves the read to the others
        return await asyncio.shield(reading)

    def _read_done(self, crawl_id: str, done: asyncio.Future[CrawlRules]) -> None:
        del self._reading[crawl_id]
        if not done.cancelled():
            done.exception()  # retrieved: the jobs that waited have each raised it

    async def _read_rules(self, crawl_id: str) -> CrawlRules:
        spec = await load_spec(self.frontier.redis, crawl_id)
        policy, settled = await seed_policy(
            spec.seeds, spec.allow_private, self.lookups, self.settings.seed_resolve_s
        )
        rules = CrawlRules(
            spec=spec,
            scope=ScopeRule(spec.scope, spec.seeds, spec.allow, spec.deny),
            layout=CrawlLayout(self.settings.data_dir, crawl_id),
            policy=policy,
            settled=settled,
        )
        if settled:  # else its seeds are looked up again for the crawl's next job
            self.rules[crawl_id] = rules
        return rules


async def on_startup(ctx: dict[str, Any]) -> None:
    """arq hook: set up what the process owns (its httpx clients open on first use)."""
    settings: Settings = ctx["settings"]
    redis: Redis = ctx["redis"]
    served: WorkerMetrics | None = ctx.get(METRICS_KEY)
    # counted all the same when not served: cheaper than asking at every page
    metrics = served or WorkerMetrics(settings.worker_id)
    turns: FetchTurns = ctx[TURNS]
    stack = AsyncExitStack()
    given: Lookups | None = ctx.get(LOOKUPS_KEY)
    lookups = given or Lookups(settings.connect_timeout)
    stack.callback(lookups.close)
    # closed once idle for longer than a job may hold one of its folders
    earlier = EarlierCrawls(settings.data_dir, 2 * settings.job_timeout_s)
    stack.callback(earlier.close)
    ctx[CTX_KEY] = WorkerContext(
        settings=settings,
        frontier=Frontier(redis, settings, ctx.get(ON_QUEUED)),
        robots=RobotsCache(redis, settings, turns, metrics),
        stack=stack,
        turns=turns,
        body_bytes=BodyBytes(settings.max_body_bytes_in_flight),
        links=stack.enter_context(PageLinks(settings)),
        metrics=metrics,
        warcs=stack.enter_context(WarcWriters(settings)),
        records=stack.enter_context(RecordLogs(settings)),
        lookups=lookups,
        earlier=earlier,
    )
    if served is not None:
        watch = asyncio.create_task(served.watch_queue(redis, settings.queue_name))
        stack.push_async_callback(_cancel, watch)
    served_on = {"metrics": f"{settings.metrics_host}:{settings.metrics_port}"} if served else {}
    structlog.get_logger().info(
        "worker started",
        **served_on,
        concurrency=settings.concurrency,
        gc_frozen=gc.get_freeze_count(),
        gc_threshold=gc.get_threshold()[0],
        open_files=resource.getrlimit(resource.RLIMIT_NOFILE)[0],
        extractor=settings.extractor,
        data_dir=str(settings.data_dir),
    )


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def on_shutdown(ctx: dict[str, Any]) -> None:
    """arq hook: close what ``on_startup`` opened."""
    worker_ctx: WorkerContext | None = ctx.pop(CTX_KEY, None)
    if worker_ctx is not None:
        await worker_ctx.stack.aclose()
    structlog.get_logger().info("worker stopped")
