"""What a worker process owns for its whole life: settings, the httpx client, Redis scripts."""

from __future__ import annotations

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
from workers.fetch import make_client
from workers.frontier import Frontier
from workers.politeness import Politeness
from workers.robots import RobotsCache

CTX_KEY = "crawlfleet"


@dataclass
class CrawlRules:
    """A crawl's spec with what the worker derives from it, cached for the process."""

    spec: CrawlSpec
    scope: ScopeRule
    layout: CrawlLayout


@dataclass
class WorkerContext:
    """Per-process resources, opened in arq's ``on_startup`` and closed in ``on_shutdown``."""

    settings: Settings
    client: httpx.AsyncClient
    frontier: Frontier
    politeness: Politeness
    robots: RobotsCache
    stack: AsyncExitStack
    rules: dict[str, CrawlRules] = field(default_factory=dict)

    async def rules_for(self, crawl_id: str) -> CrawlRules:
        """The rules of a crawl (specs never change, so one read per crawl per process)."""
        rules = self.rules.get(crawl_id)
        if rules is None:
            spec = await load_spec(self.frontier.redis, crawl_id)
            rules = CrawlRules(
                spec=spec,
                scope=ScopeRule(spec.scope, spec.seeds, spec.allow, spec.deny),
                layout=CrawlLayout(self.settings.data_dir, crawl_id),
            )
            self.rules[crawl_id] = rules
        return rules


async def on_startup(ctx: dict[str, Any]) -> None:
    """arq hook: open the process's one httpx client and register the Lua scripts."""
    settings: Settings = ctx["settings"]
    redis: Redis = ctx["redis"]
    stack = AsyncExitStack()
    client = await stack.enter_async_context(make_client(settings))
    ctx[CTX_KEY] = WorkerContext(
        settings=settings,
        client=client,
        frontier=Frontier(redis, settings),
        politeness=Politeness(redis, lease_s=settings.page_deadline_s),
        robots=RobotsCache(redis, client, settings),
        stack=stack,
    )
    structlog.get_logger().info(
        "worker started", concurrency=settings.concurrency, data_dir=str(settings.data_dir)
    )


async def on_shutdown(ctx: dict[str, Any]) -> None:
    """arq hook: close what ``on_startup`` opened."""
    worker_ctx: WorkerContext | None = ctx.pop(CTX_KEY, None)
    if worker_ctx is not None:
        await worker_ctx.stack.aclose()
    structlog.get_logger().info("worker stopped")
