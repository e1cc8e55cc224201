"""What a worker process owns for its whole life: settings, the httpx client, Redis scripts."""

from __future__ import annotations

import gc
import resource
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any

import httpx
import structlog
from redis.asyncio import Redis

from shared.catalog import load_spec
from shared.crawl import CrawlSpec
from shared.settings import Settings
from shared.storage import CrawlLayout
from shared.urls import ScopeRule
from workers.arq_worker import ON_QUEUED, TURNS
from workers.dns import Lookups
from workers.fetch import make_client
from workers.frontier import Frontier
from workers.guard import Policy, policy_for
from workers.parsing import PageLinks
from workers.robots import RobotsCache
from workers.turns import FetchTurns

CTX_KEY = "crawlfleet"


@dataclass
class CrawlRules:
    """A crawl's spec with what the worker derives from it, cached for the process."""

    spec: CrawlSpec
    scope: ScopeRule
    layout: CrawlLayout
    policy: Policy


@dataclass
class WorkerContext:
    """Per-process resources, opened in arq's ``on_startup`` and closed in ``on_shutdown``."""

    settings: Settings
    frontier: Frontier
    robots: RobotsCache
    stack: AsyncExitStack
    turns: FetchTurns
    links: PageLinks
    lookups: Lookups  # for the seeds' addresses (each client has lookups of its own)
    rules: dict[str, CrawlRules] = field(default_factory=dict)
    clients: dict[Policy, httpx.AsyncClient] = field(default_factory=dict)

    async def client_for(self, policy: Policy) -> httpx.AsyncClient:
        """The process's one httpx client for a network policy, opened on first use."""
        client = self.clients.get(policy)
        if client is None:
            client = await self.stack.enter_async_context(make_client(self.settings, policy))
            self.clients[policy] = client
        return client

    async def rules_for(self, crawl_id: str) -> CrawlRules:
        """The rules of a crawl (specs never change, so one read per crawl per process)."""
        rules = self.rules.get(crawl_id)
        if rules is None:
            spec = await load_spec(self.frontier.redis, crawl_id)
            rules = CrawlRules(
                spec=spec,
                scope=ScopeRule(spec.scope, spec.seeds, spec.allow, spec.deny),
                layout=CrawlLayout(self.settings.data_dir, crawl_id),
                policy=await policy_for(spec.seeds, spec.allow_private, self.lookups),
            )
            self.rules[crawl_id] = rules
        return rules


async def on_startup(ctx: dict[str, Any]) -> None:
    """arq hook: set up what the process owns (its httpx clients open on first use)."""
    settings: Settings = ctx["settings"]
    redis: Redis = ctx["redis"]
    turns: FetchTurns = ctx[TURNS]
    stack = AsyncExitStack()
    lookups = Lookups(settings.connect_timeout)
    stack.callback(lookups.close)
    ctx[CTX_KEY] = WorkerContext(
        settings=settings,
        frontier=Frontier(redis, settings, ctx.get(ON_QUEUED)),
        robots=RobotsCache(redis, settings, turns),
        stack=stack,
        turns=turns,
        links=stack.enter_context(PageLinks(settings)),
        lookups=lookups,
    )
    structlog.get_logger().info(
        "worker started",
        concurrency=settings.concurrency,
        gc_frozen=gc.get_freeze_count(),
        gc_threshold=gc.get_threshold()[0],
        open_files=resource.getrlimit(resource.RLIMIT_NOFILE)[0],
        extractor=settings.extractor,
        data_dir=str(settings.data_dir),
    )


async def on_shutdown(ctx: dict[str, Any]) -> None:
    """arq hook: close what ``on_startup`` opened."""
    worker_ctx: WorkerContext | None = ctx.pop(CTX_KEY, None)
    if worker_ctx is not None:
        await worker_ctx.stack.aclose()
    structlog.get_logger().info("worker stopped")
