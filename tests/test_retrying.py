"""Which failed fetches the fetching jobs try again (``workers.jobs.running.worth_retrying``):
pages, robots.txt and sitemaps alike try again an address refused while the crawl's network
policy is not settled (a seed's name did not resolve in time), and never once it is."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest
from redis.asyncio import Redis
from structlog.testing import capture_logs

from crawlfleet.scheduler.control import seed_crawl
from crawlfleet.shared.catalog import load_status
from crawlfleet.shared.connections import connected
from crawlfleet.shared.crawl import CrawlSpec, CrawlState
from crawlfleet.shared.failures import Failure, FailureKind
from crawlfleet.shared.jobs import deserialize
from crawlfleet.shared.keys import CrawlKeys, job_key, robots_job_id, sitemap_job_id
from crawlfleet.shared.scripts import Claimed
from crawlfleet.shared.settings import Settings
from crawlfleet.shared.urls import fingerprint, origin_of
from crawlfleet.workers.arq_worker import CLOSED_JOBS, VERDICT
from crawlfleet.workers.build import build_worker
from crawlfleet.workers.context import CTX_KEY, WorkerContext
from crawlfleet.workers.dns import Lookups
from crawlfleet.workers.fetch import FetchResult, failed
from crawlfleet.workers.guard import Policy
from crawlfleet.workers.jobs import fetch_robots, fetch_sitemap
from crawlfleet.workers.jobs.running import worth_retrying
from crawlfleet.workers.robots import entry_of
from tests.support.crawling import read_manifest
from tests.support.lookups import LateLookups
from tests.support.testweb import Page, Site, TestWeb

URL = "http://inside.test/p1.html"
BLOCKED = failed(URL, Failure(FailureKind.BLOCKED, "10.89.0.3 is private"))


def answered(status: int) -> FetchResult:
    return FetchResult(URL, URL, status, "text/html", b"", False, None, 1)


@pytest.mark.parametrize("settled", [True, False])
def test_a_transient_failure_is_tried_again(settled: bool) -> None:
    assert worth_retrying(failed(URL, Failure(FailureKind.TIMEOUT, "4s deadline")), settled)
    assert worth_retrying(answered(503), settled)


def test_a_blocked_address_is_tried_again_only_while_the_policy_is_not_settled() -> None:
    """A crawl whose seed did not resolve in time is public for now: its own private host's
    pages, refused meanwhile, are tried again (the policy is asked again for the next try), not
    recorded as failed with their links lost; once the policy is settled, a refused address is
    final."""
    assert worth_retrying(BLOCKED, policy_settled=False)
    assert not worth_retrying(BLOCKED, policy_settled=True)


@pytest.mark.parametrize("settled", [True, False])
def test_a_final_failure_is_not_tried_again(settled: bool) -> None:
    assert not worth_retrying(answered(404), settled)
    assert not worth_retrying(failed(URL, Failure(FailureKind.TOO_MANY_REDIRECTS, "11")), settled)


def test_robots_txt_asks_again_whatever_left_it_unreachable_but_a_settled_refusal() -> None:
    """A robots.txt job reads failures its own way (every page of its origin waits on it): a
    name that does not resolve leaves the origin unreachable and is asked again, where a page
    is not; a refused address, as a page's, only while the policy is not settled."""
    dns = failed(URL, Failure(FailureKind.DNS, "Name or service not known"))
    assert worth_retrying(dns, True, entry_of(dns)[1]) and not worth_retrying(dns, True)
    assert worth_retrying(BLOCKED, False, entry_of(BLOCKED)[1])
    assert not worth_retrying(BLOCKED, True, entry_of(BLOCKED)[1])
    assert not worth_retrying(answered(404), False, entry_of(answered(404))[1])


# -- the robots.txt and sitemap jobs, each run once on a worker's context ---------------------


async def public_for_now(worker: WorkerContext, spec: CrawlSpec, settled: bool) -> None:
    """Seed ``spec`` (its seeds on the test web's loopback hosts) with the rules of a crawl
    whose policy is public: settled (a public seed beside them), or for now (a seed's name did
    not resolve in time)."""
    await seed_crawl(worker.frontier.redis, worker.settings, spec)
    rules = await worker.rules_for(spec.crawl_id)
    worker.rules[spec.crawl_id] = replace(rules, policy=Policy.PUBLIC, settled=settled)


async def claim(worker: WorkerContext, job_id: str) -> dict[str, Any]:
    """Claim the due jobs as a worker does; arq's context for the run of ``job_id``."""
    got = await worker.frontier.scripts.claim(want=16, in_progress_ms=60_000, scan_max=100)
    job: Claimed = next(j for j in got.jobs if j.job_id == job_id)
    return {CTX_KEY: worker, "job_id": job_id, "job_try": job.job_try, VERDICT: job.verdict,
            CLOSED_JOBS: set()}  # fmt: skip


async def job_args(redis: Redis, job_id: str) -> list[Any]:
    """The arguments of a queued job."""
    return list(deserialize(await redis.get(job_key(job_id)) or b"")["a"])


@pytest.mark.parametrize("settled", [True, False])
async def test_robots_txt_refused_is_asked_again_only_while_the_policy_is_not_settled(
    worker: WorkerContext, web: TestWeb, redis: Redis, settled: bool
) -> None:
    """A robots.txt refused while the crawl is public for now is asked for again (the origin's
    pages wait for it), not kept as unreachable, which would fail every page of the origin;
    once the policy is settled, the refusal is kept at once: asking again changes nothing."""
    web.site = Site({web.url(0, "/robots.txt"): Page(content_type="text/plain", body=b"")})
    seed = web.url(0, "/")
    await public_for_now(worker, CrawlSpec(crawl_id="r", seeds=[seed], retries=2), settled)
    origin = origin_of(seed)
    robots = robots_job_id("r", fingerprint(origin))
    await fetch_robots(await claim(worker, robots), origin)
    kept = await redis.get(CrawlKeys("r").robots(origin))
    if settled:
        reason = "blocked address: 127.0.0.2 is loopback"
        assert json.loads(kept or b"") == {"state": "unreachable", "reason": reason}
    else:
        assert kept is None
        assert await job_args(redis, robots) == [origin, 1]  # queued again, after a backoff
    assert web.requested() == []  # refused before a connection


@pytest.mark.parametrize("settled", [True, False])
async def test_a_sitemap_refused_is_read_again_only_while_the_policy_is_not_settled(
    worker: WorkerContext, web: TestWeb, redis: Redis, settled: bool
) -> None:
    """A sitemap refused while the crawl is public for now is read again later, not skipped
    for good with every page only it lists; once the policy is settled, it is skipped with the
    reason at once."""
    seed = web.url(0, "/")
    spec = CrawlSpec(crawl_id="s", seeds=[seed], obey_robots=False, sitemaps=True, retries=2)
    await public_for_now(worker, spec, settled)
    sitemap = web.url(0, "/sitemap.xml")
    job_id = sitemap_job_id("s", fingerprint(sitemap))
    await fetch_sitemap(await claim(worker, job_id), sitemap, 0, 0, True)
    counters = (await load_status(redis, "s")).counters
    if settled:
        assert counters.reasons == {"sitemap: blocked address": 1}
        assert counters.sitemaps_skipped == 1
    else:
        assert counters.reasons == {} and counters.sitemaps_skipped == 0
        assert await job_args(redis, job_id) == [sitemap, 0, 1, True]  # queued again
    assert web.requested() == []


# -- a crawl whose seed's name is slow to resolve, on workers that come and go ----------------

SEED_NAME = "localhost"
ROBOTS_TXT = b"User-agent: *\nDisallow: /private\nCrawl-delay: 0.05\n"


async def run_worker(settings: Settings, name: str, lookups: Lookups | None, jobs: int) -> None:
    """Run an in-process worker, looking the seeds' names up with ``lookups`` (None: the
    system's), until it has started ``jobs`` jobs (-1: until the queue is empty) and ended
    them. Its claims take every due job, so a test has no more than ``jobs`` due."""
    settings = settings.model_copy(update={"worker_id": name})
    worker = build_worker(
        settings, lookups=lookups, burst=True, max_burst_jobs=jobs, handle_signals=False
    )
    try:
        await worker.async_run()
    finally:
        await worker.close()


async def test_a_crawl_whose_seed_resolves_late_still_gets_every_page(
    settings: Settings,
) -> None:
    """A seed's name that does not resolve in time on a worker (its name server just started)
    leaves the crawl public there for now: its loopback site's robots.txt and sitemap, refused
    meanwhile, are asked for again, so the crawl still ends with every page, the sitemap's
    own included, obeying robots.txt, and nothing recorded as a blocked address.

    A worker keeps a crawl's rules once settled, and a sitemap waits for its origin's
    robots.txt, which only a settled worker fetches: so a sitemap is refused only on another
    worker, as in a fleet whose workers' name servers answer at different times. The workers
    run one after another, so that each job runs where the test means it to: robots.txt on a
    worker whose first lookup of the seed is late (refused), again on one whose lookup answers
    (fetched), then the rest on a third whose first lookup is late again: the sitemap, the
    only job due then (the Crawl-delay spaces the host's jobs), is refused there before the
    page jobs find the name resolved."""
    settings = settings.model_copy(update={"seed_resolve_s": 0.0})  # each read asks once
    with TestWeb(hosts=1, first=1) as web:
        named = f"http://{SEED_NAME}:{web.port}"

        def page(path: str, **kw: Any) -> tuple[str, Page]:
            return web.url(0, path), Page(**kw)

        sitemap = (
            '<?xml version="1.0"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">'
            f"<url><loc>{named}/only-in-sitemap</loc></url></urlset>"
        )
        web.site = Site(dict([
            page("/", hrefs=["/a", "/private"]),
            page("/a"),
            page("/private"),
            page("/only-in-sitemap"),
            page("/robots.txt", content_type="text/plain", body=ROBOTS_TXT),
            page("/sitemap.xml", content_type="application/xml", body=sitemap.encode()),
        ]))  # fmt: skip
        spec = CrawlSpec(crawl_id="late", seeds=[f"{named}/"], depth=1, sitemaps=True)
        async with connected(settings.redis_url) as redis:
            await seed_crawl(redis, settings, spec)
        first, third = LateLookups(SEED_NAME, late=1), LateLookups(SEED_NAME, late=1)
        with capture_logs() as logs:
            await run_worker(settings, "first", first, jobs=1)
            await run_worker(settings, "second", None, jobs=1)
            await run_worker(settings, "third", third, jobs=-1)
        async with connected(settings.redis_url) as redis:
            status = await load_status(redis, "late")
        requested = {u.removeprefix(web.url(0, "")) for u in web.requested()}
    assert status.state is CrawlState.DONE
    records = {r["url"].removeprefix(named): r for r in read_manifest(settings.data_dir, "late")}
    assert {path: r["status"] for path, r in records.items()} == {
        "/": 200, "/a": 200, "/only-in-sitemap": 200, "/private": None,
    }  # fmt: skip
    assert records["/private"]["skipped"] == "robots.txt: disallowed"
    assert all("blocked address" not in (r["error"] or "") for r in records.values())
    assert status.counters.reasons == {} and status.counters.sitemaps_skipped == 0
    assert {"/robots.txt", "/sitemap.xml", "/only-in-sitemap"} <= requested
    assert "/private" not in requested
    # each job refused once where the test meant it to be, on a worker whose lookup was late
    refused = [e["event"] for e in logs if e.get("reason") == "blocked address"]
    assert refused == ["robots.txt retried", "sitemap retried"]
    assert (first.asked, third.asked) == (1, 2)
