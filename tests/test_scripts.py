"""The Lua scripts in shared/lua (the per-host frontier), each against a real redis-server."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime, timedelta

import msgpack
import pytest
from redis.asyncio import Redis

from crawlfleet.scheduler.control import (
    cancel_crawl,
    forget_crawl,
    pause_crawl,
    resume_crawl,
    seed_crawl,
)
from crawlfleet.shared.catalog import list_crawls, load_status
from crawlfleet.shared.connections import connected
from crawlfleet.shared.crawl import CrawlSpec, CrawlState
from crawlfleet.shared.errors import CrawlNotEnded, CrawlNotRunning, SpecConflict, UnknownCrawl
from crawlfleet.shared.failures import FailureKind, sitemap_reason
from crawlfleet.shared.jobs import (
    CRAWL_PAGE,
    FETCH_SITEMAP,
    deserialize,
    finalize_job_id,
    job_payload,
    now_ms,
    page_job_args,
    parent_url,
)
from crawlfleet.shared.keys import (
    BUSIEST_HOSTS,
    CrawlKeys,
    HostKeys,
    frontier_host,
    job_key,
    robots_job_id,
    seen_field,
    sitemap_job_id,
)
from crawlfleet.shared.scripts import Frontier as Scripts
from crawlfleet.shared.scripts import in_flight, script_source
from crawlfleet.shared.settings import Settings
from crawlfleet.shared.urls import fingerprint, origin_of
from crawlfleet.workers.frontier import Fetched, Frontier, PageJob, SitemapJob, Verdict
from crawlfleet.workers.sitemaps import SitemapEntry, SitemapRef

HOST = "example.org"
SEED = f"http://{HOST}/"


def spec(**kw: object) -> CrawlSpec:
    values = {"crawl_id": "c1", "seeds": [SEED], "depth": 3, "obey_robots": False, **kw}
    return CrawlSpec.model_validate(values)


def page(url: str, depth: int = 1, parent: str | None = SEED, crawl: str = "c1") -> PageJob:
    return PageJob(crawl, url, depth, None if depth == 0 else parent)


async def queued(redis: Redis, settings: Settings) -> dict[str, int]:
    """Job id -> score of every job in arq's queue."""
    pairs = await redis.zrange(settings.queue_name, 0, -1, withscores=True)
    return {m.decode(): int(s) for m, s in pairs}


async def backlog(redis: Redis, crawl_id: str = "c1", host: str = HOST) -> list[str]:
    entries = await redis.lrange(HostKeys(host).backlog(crawl_id), 0, -1)  # type: ignore[misc]
    return [e.decode() for e in entries]


async def slots(redis: Redis, host: str = HOST) -> set[str]:
    return {m.decode() for m in await redis.zrange(HostKeys(host).slots, 0, -1)}


async def make_due(redis: Redis, settings: Settings, job_id: str) -> None:
    """Queue a job to start now (a hand-back, or its turn come early)."""
    await redis.zadd(settings.queue_name, {job_id: now_ms() - 1})


class Judged(Frontier):
    """A worker's frontier with the verdicts that its claims give (claim.lua judges a job as it
    claims it): ``start`` claims every due job and gives the verdict on one."""

    def __init__(self, redis: Redis, settings: Settings) -> None:
        super().__init__(redis, settings)
        self.verdicts: dict[str, Verdict] = {}

    async def start(self, job_id: str) -> Verdict | None:
        """The verdict on the job, None if it was not claimed (not due, or queued again)."""
        if job_id not in self.verdicts:
            claim = await self.scripts.claim(want=10_000, in_progress_ms=60_000, scan_max=10_000)
            self.verdicts.update({c.job_id: Verdict(c.verdict) for c in claim.jobs})
        return self.verdicts.pop(job_id, None)


async def run(frontier: Judged, job: PageJob, links: list[str] | None = None, **kw: object):
    """What a worker does with a job: start it, close it as fetched."""
    assert await frontier.start(job.job_id) is Verdict.RUN
    return await frontier.close(job, 3, "fetched", 1, links or [], **kw)  # type: ignore[arg-type]


def test_fragments_are_prepended_where_used() -> None:
    """Scripts of the frontier carry its fragment (and seen.lua's); the others do not."""
    for name in (
        "seed",
        "claim",
        "page_done",
        "robots_done",
        "sitemap_done",
        "fill_hosts",
        "sweep",
    ):
        source = script_source(name)
        assert "local function admit" in source and "local function seen_get" in source
    for name in ("cancel", "switch_state", "finish"):
        assert "local function admit" not in script_source(name)


@pytest.mark.parametrize(
    ("url", "host"),
    [("http://example.org/x", "example.org"), ("https://a.b:8443/", "a.b"),
     ("http://[::1]:8080/p", "[::1]")],
)  # fmt: skip
async def test_lua_names_the_keys_that_keys_py_names(
    redis: Redis, settings: Settings, url: str, host: str
) -> None:
    """frontier.lua builds every key of a host as shared/keys.py names it, {host} tag and all."""
    assert frontier_host(url) == host
    await seed_crawl(redis, settings, spec(seeds=[url, url + "2"], per_host_concurrency=1))
    keys, hk = CrawlKeys("c1"), HostKeys(host)
    assert await redis.zcard(hk.slots) == 1
    assert await redis.llen(hk.backlog("c1")) == 1  # type: ignore[misc]
    assert await redis.zrange(hk.queues, 0, -1) == [b"c1"]
    assert await redis.hget(hk.state, "crawls") == b"1"  # type: ignore[misc]
    assert await redis.smembers(keys.hosts) == {host.encode()}  # type: ignore[misc]
    assert hk.slots.startswith(f"cf:{{{host}}}:")


async def test_promoted_payload_is_what_python_would_write(
    redis: Redis, settings: Settings
) -> None:
    """The job a promotion writes reads back as arq's payload of crawl_page(url, depth,
    parent, hops, retried, delay_ms), as shared/jobs.py builds it."""
    await seed_crawl(redis, settings, spec())
    (job_id,) = await queued(redis, settings)
    raw = await redis.get(job_key(job_id))
    assert raw is not None
    got = deserialize(raw)
    want = msgpack.unpackb(job_payload(CRAWL_PAGE, (SEED, 0, None, 0, 0, 0), got["et"]))
    assert got == want and abs(got["et"] - now_ms()) < 60_000
    assert job_id == f"c1:{fingerprint(SEED)}:0"
    assert await redis.pttl(job_key(job_id)) == -1  # lives as long as the crawl


async def test_a_host_has_no_more_jobs_than_slots(redis: Redis, settings: Settings) -> None:
    """Seeds beyond the host's limit wait in its backlog, URL and depth only; each close
    promotes the next, so the arq queue never holds more than the host's slots."""
    seeds = [f"{SEED}{i}" for i in range(10)]
    await seed_crawl(redis, settings, spec(seeds=seeds, per_host_concurrency=3))
    jobs = await queued(redis, settings)
    assert len(jobs) == 3 and await slots(redis) == set(jobs)
    assert await backlog(redis) == [f"0 0 0 0 {s}" for s in seeds[3:]]
    status = await load_status(redis, "c1")
    assert status.counters.pending == 10 and status.counters.seen == 10
    frontier = Judged(redis, settings)
    assert await run(frontier, page(seeds[0], 0)) == 0
    jobs = await queued(redis, settings)
    assert len(jobs) == 3 and f"c1:{fingerprint(seeds[3])}:0" in jobs
    assert await slots(redis) == set(jobs)


async def test_close_admits_new_links_once_and_counts_once(
    redis: Redis, settings: Settings
) -> None:
    """Closing a job admits unseen links at depth+1 and does arq's clean-up; a re-run of
    the close changes nothing."""
    await seed_crawl(redis, settings, spec())
    frontier = Judged(redis, settings)
    job = page(SEED, 0)
    links = [SEED + "a", SEED + "b", SEED]
    assert await frontier.start(job.job_id) is Verdict.RUN
    # what arq holds for a running job: its clean-up is page_done's
    await redis.set(f"arq:in-progress:{job.job_id}", b"1")
    assert await frontier.close(job, 3, "fetched", 100, links) == 2
    assert not await redis.exists(f"arq:in-progress:{job.job_id}")
    assert job.job_id not in await queued(redis, settings)
    assert await frontier.close(job, 3, "fetched", 100, links) is None  # a re-run
    status = await load_status(redis, "c1")
    assert status.counters.fetched == 1 and status.counters.bytes == 100
    assert status.counters.pending == 2 and status.counters.seen == 3
    assert set(await queued(redis, settings)) == {f"c1:{fingerprint(u)}:1" for u in links[:2]}
    payload = deserialize(await redis.get(job_key(f"c1:{fingerprint(SEED + 'a')}:1")) or b"")
    assert payload["a"] == [SEED + "a", 1, "/", 0, 0, 0]  # the parent: its path, same origin


async def test_a_close_records_the_crawls_progress(redis: Redis, settings: Settings) -> None:
    """Closing a job stamps the crawl's progress time; seeding does not. A
    running crawl with work left and no close for longer than the limit is stalled."""
    await seed_crawl(redis, settings, spec())
    seeded = await load_status(redis, "c1")
    assert seeded.progress_at is None
    later = seeded.created_at + timedelta(seconds=301)
    assert seeded.stalled_s(300, now=later) == pytest.approx(301, abs=1)
    assert seeded.stalled_s(302, now=later) is None
    frontier = Judged(redis, settings)
    before = datetime.now(UTC) - timedelta(seconds=1)
    await run(frontier, page(SEED, 0), [SEED + "a"])
    closed = await load_status(redis, "c1")
    assert closed.progress_at is not None and closed.progress_at >= before
    assert closed.stalled_s(300, now=closed.progress_at + timedelta(seconds=299)) is None
    assert closed.stalled_s(300, now=closed.progress_at + timedelta(seconds=301)) is not None
    await pause_crawl(redis, settings, "c1")
    paused = await load_status(redis, "c1")
    assert paused.stalled_s(300, now=closed.progress_at + timedelta(seconds=900)) is None


async def test_a_url_found_nearer_while_waiting_is_fetched_once(
    redis: Redis, settings: Settings
) -> None:
    """An entry found again at a shorter depth while it waits in the backlog: the nearer entry
    is promoted, the farther one dropped when it comes up, and the crawl still ends."""
    s = spec(seeds=[SEED, SEED + "b"], per_host_concurrency=1)
    await seed_crawl(redis, settings, s)
    frontier = Judged(redis, settings)
    far = SEED + "far"
    await run(frontier, page(SEED, 0), [SEED + "x"])  # promotes seed b
    await run(frontier, page(SEED + "b", 0), [far])  # far at 1; x waits at depth 1 first
    await run(frontier, page(SEED + "x"), [far])  # far already at 1: nothing
    assert await backlog(redis) == []
    assert set(await queued(redis, settings)) == {f"c1:{fingerprint(far)}:1"}
    await run(frontier, page(far))
    status = await load_status(redis, "c1")
    assert status.state is CrawlState.RUNNING and status.counters.pending == 0
    assert set(await queued(redis, settings)) == {finalize_job_id("c1")}


async def test_a_url_found_nearer_while_it_waits_starts_stale(
    redis: Redis, settings: Settings
) -> None:
    """A backlog entry whose URL was reached by a shorter path since it was admitted becomes a
    job that starts stale (closed unfetched, pending counted off); the nearer one is fetched."""
    await seed_crawl(redis, settings, spec(per_host_concurrency=1))
    frontier = Judged(redis, settings)
    a, b, c = SEED + "a", SEED + "b", SEED + "c"
    await run(frontier, page(SEED, 0), [a, b])
    await run(frontier, page(a), [c])  # c waits at depth 2, behind b
    await seed_crawl(redis, settings, spec(seeds=[c], per_host_concurrency=1))  # c at 0
    assert await backlog(redis) == [f"2 0 0 0 {c} /a", f"0 0 0 0 {c}"]
    await run(frontier, page(b))
    far = page(c, 2, a)
    assert set(await queued(redis, settings)) == {far.job_id}
    assert await frontier.start(far.job_id) is Verdict.STALE
    assert await frontier.close(far, 3, "skipped", 0, []) == 0
    assert set(await queued(redis, settings)) == {page(c, 0).job_id}
    await run(frontier, page(c, 0))
    status = await load_status(redis, "c1")
    assert status.counters.pending == 0 and status.counters.fetched == 4


async def test_refetch_at_better_depth_counts_once(redis: Redis, settings: Settings) -> None:
    """A page fetched at depth 2 and again at depth 1 adds one to ``fetched``."""
    await seed_crawl(redis, settings, spec())
    frontier = Judged(redis, settings)
    p, m, q = SEED + "p", SEED + "m", SEED + "q"
    await run(frontier, page(SEED, 0), [m])
    await run(frontier, page(m), [p])
    await run(frontier, page(p, 2, m))
    await seed_crawl(redis, settings, spec(seeds=[q]))
    await run(frontier, page(q, 0), [p])
    await run(frontier, page(p, 1, q))
    assert (await load_status(redis, "c1")).counters.fetched == 4  # seed, m, p, q


async def test_a_close_writes_only_the_counters_it_changed(
    redis: Redis, settings: Settings
) -> None:
    """A page's close writes back the crawl's counters it changed, not all of them: a counter
    no script has changed has no field, and the crawl's status reads it as 0."""
    await seed_crawl(redis, settings, spec())
    frontier = Judged(redis, settings)
    await run(frontier, page(SEED, 0), [SEED + "m"])
    fields = {f.decode() for f in await redis.hkeys(CrawlKeys("c1").stats)}  # type: ignore[misc]
    untouched = {"failed", "excluded", "capped", "hosts_dropped", "sitemaps"}
    assert {"fetched", "bytes", "pending", "seen", "progress_at"} <= fields
    assert not untouched & fields
    c = (await load_status(redis, "c1")).counters
    assert (c.fetched, c.failed, c.capped, c.hosts_dropped, c.sitemaps) == (1, 0, 0, 0, 0)


async def test_changes_are_counted_once_per_page(redis: Redis, settings: Settings) -> None:
    """page_done.lua counts a page's change against the earlier crawl once, whatever runs
    again: a close run twice and a page fetched again nearer add one each; a close without a
    change counts none, and a crawl that is no recrawl never writes the fields."""
    await seed_crawl(redis, settings, spec())
    frontier = Judged(redis, settings)
    p, m, q = SEED + "p", SEED + "m", SEED + "q"
    await run(frontier, page(SEED, 0), [m], change="unchanged")
    assert await frontier.close(page(SEED, 0), 3, "fetched", 1, [m], change="unchanged") is None
    await run(frontier, page(m), [p], change="changed")
    await run(frontier, page(p, 2, m), change="new")
    await seed_crawl(redis, settings, spec(seeds=[q]))
    await run(frontier, page(q, 0), [p])
    await run(frontier, page(p, 1, q), change="gone")
    c = (await load_status(redis, "c1")).counters
    assert (c.new, c.changed, c.unchanged, c.gone, c.fetched) == (1, 1, 1, 0, 4)
    await seed_crawl(redis, settings, spec(crawl_id="c2"))
    await run(frontier, page(SEED, 0, crawl="c2"))
    fields = await redis.hkeys(CrawlKeys("c2").stats)  # type: ignore[misc]
    assert not {b"new", b"changed", b"unchanged", b"gone"} & set(fields)


async def test_depth_limit_and_max_pages(redis: Redis, settings: Settings) -> None:
    """Links of a page at the depth limit are not admitted; no more than max_pages distinct
    URLs are ever admitted."""
    await seed_crawl(redis, settings, spec(depth=0))
    frontier = Judged(redis, settings)
    assert await frontier.start(page(SEED, 0).job_id) is Verdict.RUN
    assert await frontier.close(page(SEED, 0), 0, "fetched", 1, [SEED + "a"]) == 0
    await seed_crawl(redis, settings, spec(crawl_id="c2", max_pages=3))
    links = [f"{SEED}{i}" for i in range(10)]
    assert await run(frontier, page(SEED, 0, crawl="c2"), links) == 2
    counters = (await load_status(redis, "c2")).counters
    assert counters.seen == 3 and counters.capped == 8  # the 8 links turned away


async def test_a_host_fetches_no_more_than_its_page_budget(
    redis: Redis, settings: Settings
) -> None:
    """With max_pages_per_host 3, three pages of the host are promoted in all; the rest of its
    backlog, and links to it found later, are dropped and counted as capped; other hosts go
    on; the crawl still ends."""
    await seed_crawl(redis, settings, spec(max_pages_per_host=3, per_host_concurrency=8))
    frontier = Judged(redis, settings)
    here = [f"{SEED}{i}" for i in range(10)]
    there = [f"http://other.test/{i}" for i in range(2)]
    await run(frontier, page(SEED, 0), here + there)
    jobs = set(await queued(redis, settings))
    assert len([j for j in jobs if j in {page(u).job_id for u in here}]) == 2
    assert {page(u).job_id for u in there} <= jobs
    for i, job_id in enumerate(sorted(jobs)):
        url = next(u for u in here + there if page(u).job_id == job_id)
        await run(frontier, page(url), [f"{SEED}late-{i}"])
    status = await load_status(redis, "c1")
    assert status.counters.capped == 8 + 4  # 8 left in the backlog, then 4 found later
    assert status.counters.fetched == 5 and status.counters.pending == 0
    assert set(await queued(redis, settings)) == {finalize_job_id("c1")}
    assert await backlog(redis) == []


async def test_last_job_queues_finalize_and_finish_marks_done(
    redis: Redis, settings: Settings
) -> None:
    """When nothing is pending the finalize job is queued; finish() then marks it done."""
    await seed_crawl(redis, settings, spec())
    frontier = Judged(redis, settings)
    assert not await frontier.finish("c1", "/data/c1/manifest.jsonl")  # still pending
    assert await frontier.start(page(SEED, 0).job_id) is Verdict.RUN
    await frontier.close(page(SEED, 0), 3, "failed", 0, [], reason="http 500")
    assert set(await queued(redis, settings)) == {finalize_job_id("c1")}
    raw = await redis.get(job_key(finalize_job_id("c1")))
    assert deserialize(raw or b"")["f"] == "finalize_crawl"
    assert deserialize(raw or b"")["a"] == ["c1"]
    assert await frontier.finish("c1", "/data/c1/manifest.jsonl")
    status = await load_status(redis, "c1")
    assert status.state is CrawlState.DONE and status.finished_at is not None
    assert status.manifest == "/data/c1/manifest.jsonl"  # as the workers see it
    assert status.counters.failed == 1 and status.counters.reasons == {"http 500": 1}
    assert not await frontier.finish("c1", "/data/c1/manifest.jsonl")
    assert await slots(redis) == set()


async def test_finish_sets_the_unreached_count_of_an_ended_crawl(
    redis: Redis, settings: Settings
) -> None:
    """finish.lua sets a crawl's unreached count as it marks it done (the same again when its
    finalize job runs again), and on a cancelled crawl; not while the crawl has work pending,
    not without a count, and on a forgotten crawl it makes no stats hash again."""
    await seed_crawl(redis, settings, spec())
    frontier = Judged(redis, settings)
    stats = CrawlKeys("c1").stats
    assert not await frontier.finish("c1", "/data/c1/manifest.jsonl", unreached=3)
    # still pending: not finalized
    assert await redis.hget(stats, "unreached") is None  # type: ignore[misc]
    assert await frontier.start(page(SEED, 0).job_id) is Verdict.RUN
    await frontier.close(page(SEED, 0), 3, "fetched", 0, [])
    assert await frontier.finish("c1", "/data/c1/manifest.jsonl", unreached=3)
    assert (await load_status(redis, "c1")).counters.unreached == 3
    assert not await frontier.finish("c1", "/data/c1/manifest.jsonl", unreached=3)
    assert (await load_status(redis, "c1")).counters.unreached == 3

    await seed_crawl(redis, settings, spec(crawl_id="c2"))
    await cancel_crawl(redis, settings, "c2")
    assert not await frontier.finish("c2", "/data/c2/manifest.jsonl")
    # not --since another
    assert await redis.hget(CrawlKeys("c2").stats, "unreached") is None  # type: ignore[misc]
    assert not await frontier.finish("c2", "/data/c2/manifest.jsonl", unreached=5)
    status = await load_status(redis, "c2")
    assert status.state is CrawlState.CANCELLED and status.counters.unreached == 5
    await forget_crawl(redis, settings, "c2")
    assert not await frontier.finish("c2", "/data/c2/manifest.jsonl", unreached=5)
    assert not await redis.exists(CrawlKeys("c2").stats, CrawlKeys("c2").meta)


async def test_page_done_counts_each_hosts_pages_once(redis: Redis, settings: Settings) -> None:
    """page_done.lua counts the pages done (fetched or failed) per host, once per page however
    often it closes; a retried or skipped page is not counted."""
    other = "http://other.test/"
    await seed_crawl(redis, settings, spec(seeds=[SEED, other], scope="any"))
    frontier = Judged(redis, settings)
    await run(frontier, page(SEED, 0), [SEED + "a", SEED + "b", other + "a"])
    assert not await frontier.close(page(SEED, 0), 3, "fetched", 1, [])  # a re-run
    assert await frontier.start(page(other, 0).job_id) is Verdict.RUN
    await frontier.close(page(other, 0), 3, "failed", 0, [], reason="timeout")
    assert await frontier.start(page(SEED + "a").job_id) is Verdict.RUN
    assert await frontier.retry(page(SEED + "a"), 0.0)
    assert await frontier.start(page(SEED + "b").job_id) is Verdict.RUN
    await frontier.close(page(SEED + "b"), 3, "skipped", 0, [])
    await run(frontier, page(other + "a"))
    counters = (await load_status(redis, "c1")).counters
    assert counters.busiest == {"other.test": 2, HOST: 1}
    assert counters.hosts_dropped == 0
    assert counters.fetched + counters.failed == sum(counters.busiest.values())


async def test_busiest_hosts_stay_bounded_and_keep_the_busiest(
    redis: Redis, settings: Settings
) -> None:
    """Past BUSIEST_HOSTS hosts, a new host takes the least busy one's place (Space-Saving):
    the set never grows past the bound, a host busier than the others keeps its exact count,
    and every take-over is counted in hosts_dropped."""
    busy = [f"http://busy.test/{i}" for i in range(10)]
    singles = [f"http://h{i}.test/" for i in range(BUSIEST_HOSTS + 8)]
    await seed_crawl(
        redis, settings, spec(seeds=busy + singles, scope="any", per_host_concurrency=10)
    )
    frontier = Judged(redis, settings)
    for url in busy[:5] + singles + busy[5:]:
        await run(frontier, page(url, 0))
    counters = (await load_status(redis, "c1")).counters
    assert await redis.zcard(CrawlKeys("c1").busiest) == BUSIEST_HOSTS
    assert len(counters.busiest) == BUSIEST_HOSTS
    assert next(iter(counters.busiest.items())) == ("busy.test", 10)
    # 31 single hosts fill the set beside busy.test; each of the other 9 took a place
    assert counters.hosts_dropped == 9
    assert sorted(counters.busiest.values()) == [1] * 22 + [2] * 9 + [10]


async def test_in_flight_counts_the_crawls_claimed_jobs(redis: Redis, settings: Settings) -> None:
    """in_flight.lua counts a crawl's jobs that workers hold: claimed ones, until they are
    closed, handed back or their worker's in-progress mark has ended; not another crawl's, not
    the finalize job, not those queued."""
    urls = [SEED, SEED + "a", SEED + "b", SEED + "c"]
    await seed_crawl(redis, settings, spec(seeds=urls))
    await seed_crawl(redis, settings, spec(crawl_id="c2", seeds=[SEED + "x"]))
    queue = settings.queue_name
    assert await in_flight(redis, queue, "c1") == 0
    frontier = Judged(redis, settings)
    assert await frontier.start(page(SEED, 0).job_id) is Verdict.RUN  # claims all five
    assert await in_flight(redis, queue, "c1") == 4
    assert await in_flight(redis, queue, "c2") == 1
    await frontier.close(page(SEED, 0), 3, "fetched", 1, [])
    assert await in_flight(redis, queue, "c1") == 3
    # handed back as arq's finish_job does it: queued anew, a whole score, due later
    await redis.zadd(queue, {page(SEED + "a", 0).job_id: now_ms() + 5000})
    # its worker died: the in-progress mark (the claimed score) has ended
    await redis.zadd(queue, {page(SEED + "b", 0).job_id: now_ms() - 1000 + 1 / 16})
    assert await in_flight(redis, queue, "c1") == 1
    await frontier.close(page(SEED + "c", 0), 3, "failed", 0, [], reason="timeout")
    await redis.zadd(queue, {finalize_job_id("c1"): now_ms() + 60_000 + 1 / 16})
    assert await in_flight(redis, queue, "c1") == 0


async def test_robots_txt_is_fetched_before_the_hosts_pages(
    redis: Redis, settings: Settings
) -> None:
    """A crawl that obeys robots.txt promotes the origin's robots.txt job first and no page of
    the host until it closes; closing it keeps the rules, opens the gate and records the
    Crawl-delay."""
    await seed_crawl(redis, settings, spec(seeds=[SEED, SEED + "b"], obey_robots=True))
    frontier = Judged(redis, settings)
    robots = robots_job_id("c1", fingerprint(origin_of(SEED)))
    assert set(await queued(redis, settings)) == {robots}
    raw = await redis.get(job_key(robots))
    assert deserialize(raw or b"")["f"] == "fetch_robots"
    assert deserialize(raw or b"")["a"] == [origin_of(SEED), 0]
    assert await frontier.start(robots) is Verdict.RUN
    assert await frontier.robots_done(robots, origin_of(SEED), b'{"state": "x"}', 0.25, 60)
    assert await redis.get(CrawlKeys("c1").robots(origin_of(SEED))) == b'{"state": "x"}'
    assert await redis.hget(HostKeys(HOST).state, "c1:delay") == b"250"  # type: ignore[misc]
    # a host with a delay has one job queued ahead: the next is promoted when it starts
    assert set(await queued(redis, settings)) == {page(SEED, 0).job_id}
    before = now_ms()
    assert await frontier.start(page(SEED, 0).job_id) is Verdict.RUN
    after = now_ms()
    jobs = await queued(redis, settings)
    assert before + 250 <= jobs[page(SEED + "b", 0).job_id] <= after + 250
    # a link to another origin on the same host: its robots.txt first (once b has started),
    # and the gate shuts
    await frontier.close(page(SEED, 0), 3, "fetched", 1, ["https://example.org/s"])
    s_entry = "1 0 0 0 https://example.org/s http://example.org/"
    assert await backlog(redis) == ["R 0 0 https://example.org", s_entry]
    await make_due(redis, settings, page(SEED + "b", 0).job_id)
    assert await frontier.start(page(SEED + "b", 0).job_id) is Verdict.RUN
    jobs = await queued(redis, settings)
    assert robots_job_id("c1", fingerprint("https://example.org")) in jobs
    assert await backlog(redis) == [s_entry]


async def test_robots_txt_retried_keeps_the_gate_shut(redis: Redis, settings: Settings) -> None:
    """A transient robots.txt failure queues its job again after the backoff; the host's pages
    still wait behind it."""
    await seed_crawl(redis, settings, spec(obey_robots=True))
    frontier = Judged(redis, settings)
    robots = robots_job_id("c1", fingerprint(origin_of(SEED)))
    assert await frontier.start(robots) is Verdict.RUN
    before = now_ms()
    assert await frontier.robots_retry(robots, origin_of(SEED), 0, 5.0)
    jobs = await queued(redis, settings)
    assert set(jobs) == {robots} and jobs[robots] >= before + 5000
    assert deserialize(await redis.get(job_key(robots)) or b"")["a"] == [origin_of(SEED), 1]
    assert await frontier.start(robots) is None  # not due yet
    await make_due(redis, settings, robots)
    assert await frontier.start(robots) is Verdict.RUN


async def test_per_host_delay_spaces_the_starts(redis: Redis, settings: Settings) -> None:
    """A host with a delay has one job queued ahead at a time; the next is promoted when that
    one starts, to start the delay after it (however late it was claimed); a job ahead closed
    without a fetch (a paused crawl's) lets the next be promoted."""
    seeds = [f"{SEED}{i}" for i in range(3)]
    await seed_crawl(redis, settings, spec(seeds=seeds, per_host_delay=0.5))
    first, second = (page(s, 0) for s in seeds[:2])
    assert set(await queued(redis, settings)) == {first.job_id}
    raw = await redis.get(job_key(first.job_id))
    assert deserialize(raw or b"")["a"][5] == 500  # the job carries its host's delay
    frontier = Judged(redis, settings)
    before = now_ms()
    assert await frontier.start(first.job_id) is Verdict.RUN
    after = now_ms()
    jobs = await queued(redis, settings)
    assert set(jobs) == {first.job_id, second.job_id}
    assert before + 500 <= jobs[second.job_id] <= after + 500
    assert await frontier.start(second.job_id) is None  # not due yet
    await pause_crawl(redis, settings, "c1")
    await make_due(redis, settings, second.job_id)
    assert await frontier.start(second.job_id) is Verdict.PAUSED
    assert await frontier.requeue(second)
    assert await resume_crawl(redis, settings, "c1") == 3  # URLs pending
    jobs = await queued(redis, settings)
    assert set(jobs) == {first.job_id, second.job_id}  # first still runs: one slot each
    ahead = await redis.hget(HostKeys(HOST).state, "ahead")  # type: ignore[misc]
    assert ahead == f"{jobs[second.job_id]} {second.job_id}".encode()


async def test_a_delayed_job_that_sends_no_request_gives_its_turn_back(
    redis: Redis, settings: Settings
) -> None:
    """A job of a host with a delay that closes without a request (robots.txt excluded its
    page) lets the job promoted when it started go at once instead of a delay later; one
    that sent its request does not, nor does a job ahead that has started, nor a host whose
    next start was pushed later meanwhile (a Retry-After)."""
    seeds = [f"{SEED}{i}" for i in range(5)]
    await seed_crawl(redis, settings, spec(seeds=seeds, per_host_delay=30.0))
    jobs = [page(s, 0) for s in seeds]
    state = HostKeys(HOST).state
    frontier = Judged(redis, settings)
    assert await frontier.start(jobs[0].job_id) is Verdict.RUN
    later = (await queued(redis, settings))[jobs[1].job_id]
    assert later >= now_ms() + 29_000  # a delay after the first one's start
    assert await frontier.close(jobs[0], 3, "excluded", 0, []) == 0  # no fetch: no request
    sooner = (await queued(redis, settings))[jobs[1].job_id]
    assert sooner <= now_ms()  # its turn given back: due now
    ahead = (await redis.hget(state, "ahead") or b"").decode()  # type: ignore[misc]
    assert ahead.split()[:2] == [str(sooner), jobs[1].job_id]
    assert int(await redis.hget(state, "next") or 0) == sooner + 30_000  # type: ignore[misc]

    # a job that sent its request keeps the next one a delay after it
    assert await frontier.start(jobs[1].job_id) is Verdict.RUN
    later = (await queued(redis, settings))[jobs[2].job_id]
    fetched = Fetched(took_ms=5, answered=True, timed_out=False)
    assert await frontier.close(jobs[1], 3, "fetched", 1, [], fetched=fetched) is not None
    assert (await queued(redis, settings))[jobs[2].job_id] == later

    # the job ahead started already (made due and claimed): nothing to move
    await make_due(redis, settings, jobs[2].job_id)
    assert await frontier.start(jobs[2].job_id) is Verdict.RUN
    claimed = await redis.zscore(settings.queue_name, jobs[3].job_id)
    assert await frontier.start(jobs[3].job_id) is None  # not due
    await make_due(redis, settings, jobs[3].job_id)
    assert await frontier.start(jobs[3].job_id) is Verdict.RUN
    moved = await redis.zscore(settings.queue_name, jobs[3].job_id)
    assert await frontier.close(jobs[2], 3, "excluded", 0, []) == 0
    assert await redis.zscore(settings.queue_name, jobs[3].job_id) == moved != claimed

    # a Retry-After since the job ahead was queued holds it where it is
    later = (await queued(redis, settings))[jobs[4].job_id]
    await redis.hset(state, "next", str(later + 60_000))  # type: ignore[misc]
    assert await frontier.close(jobs[3], 3, "excluded", 0, []) == 0
    assert (await queued(redis, settings))[jobs[4].job_id] == later


async def test_a_transient_failure_goes_to_the_back_of_its_host(
    redis: Redis, settings: Settings
) -> None:
    """A retried URL gives its slot to the host's next URL and waits at the back of the
    backlog, not before its backoff; its retries are counted."""
    seeds = [SEED, SEED + "b"]
    await seed_crawl(redis, settings, spec(seeds=seeds, per_host_concurrency=1))
    frontier = Judged(redis, settings)
    job = page(SEED, 0)
    assert await frontier.start(job.job_id) is Verdict.RUN
    before = now_ms()
    assert await frontier.retry(job, 3.0)
    assert set(await queued(redis, settings)) == {page(SEED + "b", 0).job_id}
    (entry,) = await backlog(redis)
    depth, hops, retried, not_before, url = entry.split()
    assert (depth, hops, retried, url) == ("0", "0", "1", SEED)
    assert int(not_before) >= before + 3000
    await run(frontier, page(SEED + "b", 0))
    jobs = await queued(redis, settings)
    assert jobs[job.job_id] >= before + 3000
    assert deserialize(await redis.get(job_key(job.job_id)) or b"")["a"][4] == 1
    assert (await load_status(redis, "c1")).counters.pending == 1


async def test_retry_after_holds_the_host(redis: Redis, settings: Settings) -> None:
    """A hold (a 429's Retry-After) defers every job promoted on the host after it."""
    await seed_crawl(redis, settings, spec(per_host_concurrency=1))
    frontier = Judged(redis, settings)
    before = now_ms()
    await run(frontier, page(SEED, 0), [SEED + "a"], hold_s=2.0)
    (score,) = (await queued(redis, settings)).values()
    assert score >= before + 2000


async def test_pause_requeues_and_resume_promotes(redis: Redis, settings: Settings) -> None:
    """A paused crawl promotes nothing; a queued job of it started meanwhile gives its URL back
    to the front of the backlog; resume fills the host's slots again."""
    await seed_crawl(redis, settings, spec(per_host_concurrency=1))
    frontier = Judged(redis, settings)
    assert await pause_crawl(redis, settings, "c1") == 1
    assert (await load_status(redis, "c1")).state is CrawlState.PAUSED
    seed_job = page(SEED, 0)
    assert await frontier.start(seed_job.job_id) is Verdict.PAUSED
    assert await frontier.requeue(seed_job)
    assert await queued(redis, settings) == {} and await slots(redis) == set()
    assert await backlog(redis) == [f"0 0 0 0 {SEED}"]
    with pytest.raises(CrawlNotRunning):
        await pause_crawl(redis, settings, "c1")
    assert await resume_crawl(redis, settings, "c1") == 1
    assert set(await queued(redis, settings)) == {seed_job.job_id}
    assert (await load_status(redis, "c1")).state is CrawlState.RUNNING
    with pytest.raises(CrawlNotRunning):
        await resume_crawl(redis, settings, "c1")


async def test_cancel_drops_jobs_and_backlogs_and_frees_the_host(
    redis: Redis, settings: Settings
) -> None:
    """Cancel drops the crawl's queued jobs and backlog; the host's slots go to another crawl
    waiting on it; running jobs are put in arq's abort set."""
    many = [f"{SEED}{i}" for i in range(5)]
    await seed_crawl(redis, settings, spec(seeds=many, per_host_concurrency=2))
    await seed_crawl(redis, settings, spec(crawl_id="other", per_host_concurrency=2))
    assert {i.split(":")[0] for i in await queued(redis, settings)} == {"c1"}
    running = page(many[0], 0)
    await redis.set(f"arq:in-progress:{running.job_id}", b"1")
    result = await cancel_crawl(redis, settings, "c1")
    assert (result.dropped, result.aborted) == (1, 1)
    assert await redis.zrange("arq:abort", 0, -1) == [running.job_id.encode()]
    jobs = set(await queued(redis, settings))
    assert f"other:{fingerprint(SEED)}:0" in jobs
    assert await backlog(redis) == [] and await redis.exists(CrawlKeys("c1").hosts) == 0
    status = await load_status(redis, "c1")
    assert status.state is CrawlState.CANCELLED and status.counters.pending == 0
    frontier = Judged(redis, settings)
    late = page(many[1], 0)  # queued again by a worker as the cancel swept
    await redis.set(
        job_key(late.job_id), job_payload(CRAWL_PAGE, page_job_args(late.url, 0, None), 0)
    )
    await make_due(redis, settings, late.job_id)
    assert await frontier.start(late.job_id) is Verdict.STOPPED
    # the aborted job closes: its slot too goes back
    assert await frontier.close(running, 3, "skipped", 0, []) == 0
    assert await slots(redis) == {f"other:{fingerprint(SEED)}:0"}
    with pytest.raises(CrawlNotRunning):
        await cancel_crawl(redis, settings, "c1")
    with pytest.raises(UnknownCrawl):
        await cancel_crawl(redis, settings, "nope")


async def crawl_keys_left(redis: Redis, crawl_id: str) -> set[str]:
    """Every key named for the crawl (its own and its per-host ones), and the fields it holds
    in the hosts' state."""
    left = {k.decode() async for k in redis.scan_iter(match=f"*:{crawl_id}:*")}
    async for key in redis.scan_iter(match="cf:{*}:state"):
        fields = await redis.hkeys(key)  # type: ignore[misc]
        left |= {f"{key.decode()} {f.decode()}" for f in fields if f.startswith(b"c1:")}
    return left


async def started_crawl_with_state(
    redis: Redis, settings: Settings, crawl_delay: float = 0.01
) -> Judged:
    """Crawl c1 with robots.txt rules kept, a Crawl-delay, seen URLs and a backlog."""
    await seed_crawl(redis, settings, spec(obey_robots=True, per_host_concurrency=1))
    frontier = Judged(redis, settings)
    robots = robots_job_id("c1", fingerprint(origin_of(SEED)))
    assert await frontier.start(robots) is Verdict.RUN
    assert await frontier.robots_done(robots, origin_of(SEED), b"{}", crawl_delay, 60)
    many = [f"{SEED}{i}" for i in range(300)] + [f"http://other.test/{i}" for i in range(3)]
    await run(frontier, page(SEED, 0), many)
    assert await redis.exists(CrawlKeys("c1").seen_bucket(fingerprint(many[0])))
    return frontier


async def test_cancel_leaves_only_the_crawls_record(redis: Redis, settings: Settings) -> None:
    """After a cancel, the crawl's meta, counters, reasons and busiest hosts are all that is
    left of it, with the one job that writes its manifest: no seen URLs, robots.txt rules,
    backlogs, hosts or origins."""
    await started_crawl_with_state(redis, settings)
    await cancel_crawl(redis, settings, "c1")
    record = {CrawlKeys("c1").meta, CrawlKeys("c1").stats, CrawlKeys("c1").busiest}
    assert await crawl_keys_left(redis, "c1") == record | {job_key(finalize_job_id("c1"))}
    assert set(await queued(redis, settings)) == {finalize_job_id("c1")}
    assert (await load_status(redis, "c1")).state is CrawlState.CANCELLED


async def test_a_failed_crawl_ends_as_a_cancelled_one_with_its_reason(
    redis: Redis, settings: Settings
) -> None:
    """A worker failing a crawl ends it as a cancel does (jobs, backlogs and frontier state
    dropped), in state failed with the reason; the first reason stays, and the crawl takes no
    more seeds, is not cancelled again, and can be forgotten."""
    frontier = await started_crawl_with_state(redis, settings)
    assert await queued(redis, settings) != {}
    assert await frontier.fail("c1", "storage: full")
    assert not await frontier.fail("c1", "storage: another worker's")
    status = await load_status(redis, "c1")
    assert (status.state, status.reason) == (CrawlState.FAILED, "storage: full")
    assert status.counters.pending == 0 and await queued(redis, settings) == {}
    record = {CrawlKeys("c1").meta, CrawlKeys("c1").stats, CrawlKeys("c1").busiest}
    assert await crawl_keys_left(redis, "c1") == record
    with pytest.raises(CrawlNotRunning):
        await seed_crawl(redis, settings, spec())
    with pytest.raises(CrawlNotRunning):
        await cancel_crawl(redis, settings, "c1")
    await forget_crawl(redis, settings, "c1")
    assert await list_crawls(redis) == []


async def test_a_done_crawl_leaves_only_its_record(redis: Redis, settings: Settings) -> None:
    """A crawl marked done keeps its meta, counters, reasons and busiest hosts, nothing of its
    frontier."""
    frontier = await started_crawl_with_state(redis, settings, crawl_delay=0.0)
    while jobs := [j for j in await queued(redis, settings) if not j.endswith(":finalize")]:
        for job_id in jobs:
            args = deserialize(await redis.get(job_key(job_id)) or b"")["a"]
            if await frontier.start(job_id) is not Verdict.RUN:
                continue  # not due yet
            if ":robots:" in job_id:
                await frontier.robots_done(job_id, args[0], b"{}", 0.0, 60)
            else:
                await frontier.close(page(args[0], args[1]), 3, "failed", 0, [], reason="x")
    assert await frontier.finish("c1", "/data/c1/manifest.jsonl")
    await redis.delete(job_key(finalize_job_id("c1")))  # arq's clean-up of the finalize job
    keys = CrawlKeys("c1")
    record = {keys.meta, keys.stats, keys.reasons, keys.busiest}
    assert await crawl_keys_left(redis, "c1") == record


async def test_forget_removes_an_ended_crawl_and_refuses_a_live_one(
    redis: Redis, settings: Settings
) -> None:
    """forget.lua: a running crawl is refused, an unknown one named; a cancelled crawl is
    gone after it, record and index entry alike."""
    await started_crawl_with_state(redis, settings)
    with pytest.raises(CrawlNotEnded, match="'c1' has not ended: cancel it first"):
        await forget_crawl(redis, settings, "c1")
    with pytest.raises(UnknownCrawl):
        await forget_crawl(redis, settings, "nope")
    await cancel_crawl(redis, settings, "c1")
    await forget_crawl(redis, settings, "c1")
    assert await crawl_keys_left(redis, "c1") == set()
    assert "c1" not in await list_crawls(redis)
    with pytest.raises(UnknownCrawl):
        await load_status(redis, "c1")


async def test_cancel_sweeps_a_long_shared_queue_in_batches(
    redis: Redis, settings: Settings
) -> None:
    """A cancel finds all of its crawl's jobs in the shared queue, over several scan batches,
    and none of another crawl's, even one whose id starts the same."""
    links = [f"{SEED}p{n}" for n in range(1200)]
    frontier = Judged(redis, settings)
    for crawl_id in ("c10", "c1"):  # c1's start claims c10's jobs: they are not c1's to sweep
        await seed_crawl(redis, settings, spec(crawl_id=crawl_id, per_host_concurrency=5000))
        await run(frontier, page(SEED, 0, crawl=crawl_id), links)
    result = await cancel_crawl(redis, settings, "c1")
    assert (result.dropped, result.aborted) == (1200, 0)
    left = set(await queued(redis, settings)) - {finalize_job_id("c1")}
    assert {i.split(":")[0] for i in left} == {"c10"}
    assert len(await redis.keys("arq:job:c10:*")) == 1200
    assert (await load_status(redis, "c10")).counters.pending == 1200


async def test_two_crawls_on_one_host_share_its_slots(redis: Redis, settings: Settings) -> None:
    """The host's slots go to the crawl least recently served first."""
    await seed_crawl(redis, settings, spec(seeds=[SEED, SEED + "1"], per_host_concurrency=1))
    await seed_crawl(redis, settings, spec(crawl_id="c2", per_host_concurrency=1))
    frontier = Judged(redis, settings)
    await run(frontier, page(SEED, 0))
    assert set(await queued(redis, settings)) == {page(SEED, 0, crawl="c2").job_id}


async def test_a_slot_whose_job_vanished_is_freed_after_its_lease(
    redis: Redis, settings: Settings
) -> None:
    """A slot held by a job key that no longer exists (it vanished without a close) is freed
    once its lease ends; a slot of a job that still exists is kept however old."""
    await seed_crawl(redis, settings, spec(seeds=[SEED, SEED + "1", SEED + "2"],
                                           per_host_concurrency=2))  # fmt: skip
    first, second = page(SEED, 0), page(SEED + "1", 0)
    await redis.zadd(HostKeys(HOST).slots, {first.job_id: 1, second.job_id: 1})
    await redis.delete(job_key(first.job_id))
    await Scripts(redis, settings.queue_name, settings.slot_lease_ms).fill_hosts([HOST])
    assert await slots(redis) == {second.job_id, page(SEED + "2", 0).job_id}


async def test_a_redirect_target_is_admitted_at_the_same_depth(
    redis: Redis, settings: Settings
) -> None:
    """A redirect's target enters the frontier at the redirecting page's depth, one hop more."""
    await seed_crawl(redis, settings, spec())
    frontier = Judged(redis, settings)
    target = SEED + "there/"
    assert await run(frontier, page(SEED, 0), redirect=target) == 1
    raw = await redis.get(job_key(f"c1:{fingerprint(target)}:0"))
    assert deserialize(raw or b"")["a"] == [target, 0, "/", 1, 0, 0]


async def test_a_claim_counts_the_tries_of_a_job_not_closed(
    redis: Redis, settings: Settings
) -> None:
    """Each claim of a job that was neither closed nor queued anew counts one more try (its
    worker died or hung), kept in the sixteenths of its queue score; queuing it anew (a
    hand-back, a deferral) starts the count again."""
    await seed_crawl(redis, settings, spec())
    scripts = Scripts(redis, settings.queue_name, settings.slot_lease_ms)
    job_id = page(SEED, 0).job_id
    for want in (1, 2, 3):
        (claimed,) = (await scripts.claim(want=1, in_progress_ms=5000, scan_max=100)).jobs
        assert (claimed.job_id, claimed.job_try) == (job_id, want)
        assert claimed.score % 1 == want / 16
        assert await redis.zscore(settings.queue_name, job_id) == claimed.score
        # the worker dies: its in-progress mark and claim expire
        await redis.delete(f"arq:in-progress:{job_id}")
        await redis.zadd(settings.queue_name, {job_id: now_ms() - 1 + claimed.score % 1})
    await redis.zadd(settings.queue_name, {job_id: now_ms() - 1})  # handed back: whole again
    (claimed,) = (await scripts.claim(want=1, in_progress_ms=5000, scan_max=100)).jobs
    assert claimed.job_try == 1


async def test_claim_takes_due_jobs_not_running_elsewhere(redis: Redis, settings: Settings) -> None:
    """claim.lua is arq's start rule for a batch: due, queued jobs that no worker runs, in
    queue order, each claimed once, as many as asked for; and arq's start of each: its
    payload read, its abort mark taken off; a claimed job's score moves past its in-progress
    mark."""
    scripts = Scripts(redis, settings.queue_name, settings.slot_lease_ms)

    async def take(want: int) -> list[tuple[str, bytes | None, int, bool]]:
        got = await scripts.claim(want=want, in_progress_ms=5000, scan_max=100)
        return [(c.job_id, c.payload, c.job_try, c.aborted) for c in got.jobs]

    assert await take(5) == []
    now = now_ms()
    queue_name = settings.queue_name
    await redis.zadd(queue_name, {"a": now - 100, "b": now - 50, "c": now - 10, "d": now - 5,
                                  "later": now + 60_000})  # fmt: skip
    await redis.set("arq:in-progress:b", b"1")  # another worker runs it
    await redis.set("arq:job:a", b"payload-a")
    await redis.set("arq:job:c", b"payload-c")
    await redis.zadd("arq:abort", {"c": 1})  # cancelled while queued
    assert await take(1) == [("a", b"payload-a", 1, False)]
    assert 0 < await redis.pttl("arq:in-progress:a") <= 5000
    assert await redis.zscore(queue_name, "a") >= now + 4000  # out of the due range
    # not b (running), not later (deferred), not a again; d's payload is gone
    assert await take(5) == [("c", b"payload-c", 1, True), ("d", None, 1, False)]
    assert await redis.zcard("arq:abort") == 0
    assert await take(5) == []
    # taking fewer than asked for, it tells the queue's first score: b, due but running
    claim = await scripts.claim(want=5, in_progress_ms=5000, scan_max=100)
    assert claim.jobs == [] and claim.head == now - 50
    await redis.delete("arq:in-progress:b")
    claim = await scripts.claim(want=1, in_progress_ms=5000, scan_max=100)
    assert [c.job_id for c in claim.jobs] == ["b"] and claim.head is None  # took as many
    claim = await scripts.claim(want=5, in_progress_ms=5000, scan_max=100)
    assert claim.head is not None and claim.head % 1 == 1 / 16  # a claimed job: a's


async def test_a_claim_says_whether_any_abort_mark_is_left(
    redis: Redis, settings: Settings
) -> None:
    """claim.lua tells the worker whether arq's abort set holds any id once its claims took
    their own marks off: a worker that claims learns of a cancel without asking apart."""
    scripts = Scripts(redis, settings.queue_name, settings.slot_lease_ms)
    assert (await scripts.claim(want=1, in_progress_ms=5000, scan_max=100)).aborts is False
    await redis.zadd(settings.queue_name, {"mine": now_ms() - 10})
    await redis.set("arq:job:mine", b"payload")
    await redis.zadd("arq:abort", {"mine": 1, "running-elsewhere": 1})
    claim = await scripts.claim(want=1, in_progress_ms=5000, scan_max=100)
    assert [c.aborted for c in claim.jobs] == [True]
    assert claim.aborts is True  # another worker's job is still marked
    await redis.zrem("arq:abort", "running-elsewhere")
    assert (await scripts.claim(want=1, in_progress_ms=5000, scan_max=100)).aborts is False
    await redis.zadd(settings.queue_name, {"last": now_ms() - 10})
    await redis.set("arq:job:last", b"payload")
    await redis.zadd("arq:abort", {"last": 1})
    claim = await scripts.claim(want=1, in_progress_ms=5000, scan_max=100)
    assert [c.aborted for c in claim.jobs] == [True] and claim.aborts is False  # took the last


async def test_seen_urls_live_in_compact_buckets(redis: Redis, settings: Settings) -> None:
    """Each seen URL is one small field of its bucket hash: 2 * depth, + 1 once fetched."""
    await seed_crawl(redis, settings, spec())
    keys = CrawlKeys("c1")
    fp = fingerprint(SEED)
    assert await redis.hget(keys.seen_bucket(fp), seen_field(fp)) == b"0"  # type: ignore[misc]
    frontier = Judged(redis, settings)
    await run(frontier, page(SEED, 0), [SEED + "a"])
    assert await redis.hget(keys.seen_bucket(fp), seen_field(fp)) == b"1"  # type: ignore[misc]
    link_fp = fingerprint(SEED + "a")
    assert await redis.hget(keys.seen_bucket(link_fp), seen_field(link_fp)) == b"2"  # type: ignore[misc]
    assert await frontier.best_depths("c1", [fp, link_fp, "0" * 16]) == [0, 1, None]
    encoding = await redis.object("encoding", keys.seen_bucket(fp))
    assert encoding in (b"ziplist", b"listpack")


async def test_crawlfleet_redis_keeps_large_buckets_compact(redis: Redis) -> None:
    """The Redis crawlfleet starts keeps hashes of up to 1,024 fields compact (default 128)."""
    config = await redis.config_get("hash-max-ziplist-entries")
    assert int(config["hash-max-ziplist-entries"]) == 1024


async def test_seed_refuses_ended_crawl(redis: Redis, settings: Settings) -> None:
    """A cancelled crawl takes no more seeds; a running one takes only seeds it has not seen."""
    await seed_crawl(redis, settings, spec())
    again = await seed_crawl(redis, settings, spec(seeds=[SEED, SEED + "b"]))
    assert not again.created and again.queued == 1
    await cancel_crawl(redis, settings, "c1")
    with pytest.raises(CrawlNotRunning):
        await seed_crawl(redis, settings, spec())


async def test_seed_with_other_options_is_refused(redis: Redis, settings: Settings) -> None:
    """Seeding a live crawl id with other options is refused, naming them, and changes
    nothing; the same options again (a resumed run) add seeds; a paused crawl is the same."""
    await seed_crawl(redis, settings, spec())
    with pytest.raises(SpecConflict) as refused:
        await seed_crawl(redis, settings, spec(seeds=[SEED + "x"], depth=5, scope="any"))
    assert '(depth 3, not 5; scope "host", not "any")' in str(refused.value)
    status = await load_status(redis, "c1")
    assert status.spec == spec() and status.counters.seen == 1  # the refused seed not admitted
    resumed = await seed_crawl(redis, settings, spec())
    assert not resumed.created and resumed.queued == 0
    added = await seed_crawl(redis, settings, spec(seeds=[SEED + "y"]))
    assert not added.created and added.queued == 1
    await pause_crawl(redis, settings, "c1")
    with pytest.raises(SpecConflict, match="obey_robots false, not true"):
        await seed_crawl(redis, settings, spec(obey_robots=True))


async def test_two_seeders_racing_with_other_options_one_wins(
    redis: Redis, redis_url: str, settings: Settings
) -> None:
    """Two seeders of one new crawl id with other options, at once: one creates the crawl,
    the other is refused; the crawl has the winner's spec."""
    async with connected(redis_url) as one, connected(redis_url) as two:
        for attempt in range(20):
            cid = f"race-{attempt}"
            specs = [spec(crawl_id=cid, depth=1), spec(crawl_id=cid, depth=2)]
            results = await asyncio.gather(
                seed_crawl(one, settings, specs[0]), seed_crawl(two, settings, specs[1]),
                return_exceptions=True,
            )  # fmt: skip
            won = [s for s, r in zip(specs, results, strict=True) if not isinstance(r, Exception)]
            lost = [r for r in results if isinstance(r, Exception)]
            assert len(won) == 1 and len(lost) == 1, results
            assert isinstance(lost[0], SpecConflict)
            assert (await load_status(redis, cid)).spec == won[0]


@pytest.mark.parametrize(
    ("url", "parent", "packed"),
    [
        ("http://a.org:81/x", "http://a.org:81/y?q", "/y?q"),  # same origin: its path only
        ("http://a.org/x", "http://a.org:81/y", "http://a.org:81/y"),  # another port
        ("https://a.org/x", "http://a.org/y", "http://a.org/y"),  # another scheme
        ("http://a.org/x", "http://a.org.evil/y", "http://a.org.evil/y"),
        ("http://a.org/x", None, None),
    ],
)
def test_page_job_args_keep_parent_exactly(
    url: str, parent: str | None, packed: str | None
) -> None:
    """A page job stores its parent compactly and gives back exactly the same URL."""
    args = page_job_args(url, 2, parent)
    assert args == (url, 2, packed)
    assert parent_url(url, args[2]) == parent


# --- adaptive politeness (frontier.lua's adapt) ------------------------------------------------


ADAPTIVE_FIELDS = {"pace", "cap", "strikes", "struck"}


def answered(took_ms: int) -> Fetched:
    return Fetched(took_ms, answered=True, timed_out=False)


def timed_out(took_ms: int) -> Fetched:
    return Fetched(took_ms, answered=False, timed_out=True)


async def host_state(redis: Redis, host: str = HOST) -> dict[str, str]:
    raw = await redis.hgetall(HostKeys(host).state)  # type: ignore[misc]
    return {k.decode(): v.decode() for k, v in raw.items()}


async def run_all(frontier: Judged, redis: Redis, settings: Settings, fetched: Fetched) -> int:
    """Start every queued page job, due or not, and close it as fetched; how many there were."""
    jobs = [j for j in await queued(redis, settings) if not j.endswith(":finalize")]
    for job_id in jobs:
        await make_due(redis, settings, job_id)
        args = deserialize(await redis.get(job_key(job_id)) or b"")["a"]
        await run(frontier, page(args[0], args[1]), fetched=fetched)
    return len(jobs)


async def test_a_host_that_answers_quickly_is_never_paced(redis: Redis, settings: Settings) -> None:
    """Closes of answers under a second write nothing of the host's pace: its slots refill at
    once, its jobs queued to start now."""
    await seed_crawl(redis, settings, spec(per_host_concurrency=4))
    frontier = Judged(redis, settings)
    await run(frontier, page(SEED, 0), [f"{SEED}{i}" for i in range(20)], fetched=answered(900))
    before = now_ms()
    assert await run_all(frontier, redis, settings, fetched=answered(50)) == 4
    jobs = await queued(redis, settings)
    assert len(jobs) == 4 and all(score <= before + 1000 for score in jobs.values())
    assert not ADAPTIVE_FIELDS & set(await host_state(redis))


async def test_a_slow_host_is_paced_by_how_long_it_takes(redis: Redis, settings: Settings) -> None:
    """An answer of 3 s moves the host's pace halfway to twice that; the next job carries the
    pace as its delay and is the only one queued ahead; quick answers halve the pace and drop
    it under 2 s, and the slots refill."""
    await seed_crawl(redis, settings, spec(per_host_concurrency=4))
    frontier = Judged(redis, settings)
    await run(frontier, page(SEED, 0), [f"{SEED}{i}" for i in range(20)], fetched=answered(3000))
    assert (await host_state(redis))["pace"] == "3000"
    (job_id,) = await queued(redis, settings)
    assert deserialize(await redis.get(job_key(job_id)) or b"")["a"][5] == 3000
    await run_all(frontier, redis, settings, fetched=answered(3000))
    assert (await host_state(redis))["pace"] == "4500"
    await run_all(frontier, redis, settings, fetched=answered(20))
    assert (await host_state(redis))["pace"] == "2250"
    await run_all(frontier, redis, settings, fetched=answered(20))
    assert (await host_state(redis))["pace"] == "0"
    await run_all(frontier, redis, settings, fetched=answered(20))
    assert len(await queued(redis, settings)) == 4


async def test_per_host_delay_stays_a_floor_of_the_pace(redis: Redis, settings: Settings) -> None:
    """A --per-host-delay longer than the pace holds; a pace longer than it wins."""
    await seed_crawl(redis, settings, spec(per_host_delay=5.0))
    frontier = Judged(redis, settings)
    await run(frontier, page(SEED, 0), [SEED + c for c in "abc"], fetched=answered(1500))
    (job_id,) = await queued(redis, settings)
    assert deserialize(await redis.get(job_key(job_id)) or b"")["a"][5] == 5000
    assert (await host_state(redis))["pace"] == "2000"
    # a's start promoted b (5 s); a's answer makes the pace 21 s; b's start promotes c
    await run_all(frontier, redis, settings, fetched=answered(20_000))
    await run_all(frontier, redis, settings, fetched=answered(20_000))
    (job_id,) = await queued(redis, settings)
    assert deserialize(await redis.get(job_key(job_id)) or b"")["a"][5] == 21_000


async def test_timeouts_cut_slots_hold_the_host_and_give_it_up(
    redis: Redis, settings: Settings
) -> None:
    """Requests in flight together that time out are one strike: the host's slots halve and
    it is held a second; each later strike halves again and holds twice as long; the third in
    a row gives the host up: its URLs are promoted at once, marked, whatever its pace, and
    the timed-out ones go to the back of its backlog to be drained too."""
    urls = [f"{SEED}{i}" for i in range(20)]
    await seed_crawl(redis, settings, spec(seeds=urls, per_host_concurrency=8))
    frontier = Judged(redis, settings)
    before = now_ms()
    for job_id in await queued(redis, settings):
        assert await frontier.start(job_id) is Verdict.RUN
        url = deserialize(await redis.get(job_key(job_id)) or b"")["a"][0]
        assert await frontier.retry(page(url, 0), 0.0, fetched=timed_out(10_000))
    state = await host_state(redis)
    assert (state["strikes"], state["cap"]) == ("1", "4")
    jobs = await queued(redis, settings)
    assert len(jobs) == 4 and min(jobs.values()) >= before + 1000
    for cap, strikes in (("2", "2"), ("1", "3")):
        sent, urls = now_ms(), []
        for job_id in await queued(redis, settings):
            await make_due(redis, settings, job_id)
            assert await frontier.start(job_id) is Verdict.RUN
            urls.append(deserialize(await redis.get(job_key(job_id)) or b"")["a"][0])
        await asyncio.sleep(0.002)  # the round's requests were sent before any timed out
        for url in urls:
            took = now_ms() - sent
            assert await frontier.retry(page(url, 0), 0.0, fetched=timed_out(took))
        state = await host_state(redis)
        assert (state["strikes"], state["cap"]) == (strikes, cap)
    assert state["c1:gave_up"] == "1"
    later = now_ms()
    jobs = await queued(redis, settings)
    assert len(jobs) == 8 and max(jobs.values()) <= later + 1000  # not held, not capped
    for job_id in jobs:
        assert deserialize(await redis.get(job_key(job_id)) or b"")["a"][6] is True
    # the crawl ends: what was learnt of the host goes with the last crawl listed on it
    await cancel_crawl(redis, settings, "c1")
    assert not ADAPTIVE_FIELDS & set(await host_state(redis))
    assert "c1:gave_up" not in await host_state(redis)


async def test_an_answer_ends_the_strikes_and_gives_slots_back(
    redis: Redis, settings: Settings
) -> None:
    """A strike, then an answer: the strikes start again from none and the host gets one
    slot back per answer, until it has its crawl's limit again."""
    urls = [f"{SEED}{i}" for i in range(30)]
    await seed_crawl(redis, settings, spec(seeds=urls, per_host_concurrency=4))
    frontier = Judged(redis, settings)
    first = next(iter(await queued(redis, settings)))
    assert await frontier.start(first) is Verdict.RUN
    url = deserialize(await redis.get(job_key(first)) or b"")["a"][0]
    await frontier.retry(page(url, 0), 0.0, fetched=timed_out(100))
    assert (await host_state(redis))["cap"] == "2"
    await run_all(frontier, redis, settings, fetched=answered(30))
    state = await host_state(redis)
    assert state["strikes"] == "0" and state["cap"] == "0"  # 2 + 3 answers: back to 4
    assert len(await queued(redis, settings)) == 4


async def test_a_crawl_gives_up_its_robots_txt_too(redis: Redis, settings: Settings) -> None:
    """A crawl that gave a host up promotes an origin's robots.txt entry at once, marked."""
    await seed_crawl(redis, settings, spec(obey_robots=True))
    await redis.hset(HostKeys(HOST).state, "c1:gave_up", "1")  # type: ignore[misc]
    robots = robots_job_id("c1", fingerprint(origin_of(SEED)))
    assert await redis.delete(job_key(robots))  # as if its job vanished: promoted anew
    await redis.zrem(settings.queue_name, robots)
    await redis.delete(HostKeys(HOST).slots)
    await redis.hdel(HostKeys(HOST).state, "c1:robots")  # type: ignore[misc]
    await redis.lpush(HostKeys(HOST).backlog("c1"), f"R 0 0 {origin_of(SEED)}")  # type: ignore[misc]
    await Scripts(redis, settings.queue_name, settings.slot_lease_ms).fill_hosts([HOST])
    raw = await redis.get(job_key(robots))
    assert deserialize(raw or b"")["a"] == [origin_of(SEED), 0, True]


async def test_robots_txt_timeouts_are_strikes_and_its_answer_ends_them(
    redis: Redis, settings: Settings
) -> None:
    """robots_done.lua takes in its fetch as page_done.lua does: a robots.txt that timed out
    (retried or not) is a strike, the third gives the host up and its robots.txt entry is
    promoted at once, marked; an answered one ends the strikes."""
    await seed_crawl(redis, settings, spec(obey_robots=True))
    frontier = Judged(redis, settings)
    robots, origin = robots_job_id("c1", fingerprint(origin_of(SEED))), origin_of(SEED)

    async def time_out(backoff_s: float) -> None:
        await make_due(redis, settings, robots)
        assert await frontier.start(robots) is Verdict.RUN
        sent = now_ms()
        await asyncio.sleep(0.002)  # sent after the last strike: a strike of its own
        took = timed_out(now_ms() - sent)
        assert await frontier.robots_retry(robots, origin, 0, backoff_s, took)

    for strikes in ("1", "2"):
        await time_out(0.0)
        assert (await host_state(redis))["strikes"] == strikes
    await time_out(30.0)
    assert (await host_state(redis))["c1:gave_up"] == "1"
    jobs = await queued(redis, settings)
    assert jobs[robots] <= now_ms()  # not held by its 30 s backoff
    assert deserialize(await redis.get(job_key(robots)) or b"")["a"][2] is True
    # another crawl's robots.txt of the same host answered: the run of strikes ends
    await seed_crawl(redis, settings, spec(crawl_id="c2", obey_robots=True))
    other = robots_job_id("c2", fingerprint(origin))
    await make_due(redis, settings, other)
    assert await frontier.start(other) is Verdict.RUN
    assert await frontier.robots_done(other, origin, b"{}", 0.0, 60, answered(20))
    assert (await host_state(redis))["strikes"] == "0"


async def test_without_adaptive_nothing_adapts(redis: Redis, settings: Settings) -> None:
    """--no-adaptive: slow answers and timeouts change nothing of the host: no pace, all its
    slots, no hold, never given up."""
    urls = [f"{SEED}{i}" for i in range(40)]
    await seed_crawl(redis, settings, spec(seeds=urls, per_host_concurrency=4, adaptive=False))
    frontier = Judged(redis, settings)
    for _ in range(4):
        before = now_ms()
        for job_id in await queued(redis, settings):
            await make_due(redis, settings, job_id)
            assert await frontier.start(job_id) is Verdict.RUN
            url = deserialize(await redis.get(job_key(job_id)) or b"")["a"][0]
            await frontier.retry(page(url, 0), 0.0, fetched=timed_out(10))
        jobs = await queued(redis, settings)
        assert len(jobs) == 4 and max(jobs.values()) <= before + 1000
    await run_all(frontier, redis, settings, fetched=answered(5000))
    assert len(await queued(redis, settings)) == 4
    assert set(await host_state(redis)) <= {"next", "ahead", "crawls", "c1:pages"}
    assert (await redis.hget(CrawlKeys("c1").meta, "adaptive")) == b"0"  # type: ignore[misc]


async def test_a_seeds_sitemap_waits_behind_robots_txt_and_goes_before_pages(
    redis: Redis, settings: Settings
) -> None:
    """--sitemaps: seeding queues the /sitemap.xml of each seed's origin once, behind the
    origin's robots.txt and before its pages; it is promoted as fetch_sitemap(url, level 0,
    retried 0, discover) and a cancelled crawl's is stopped."""
    seeds = [SEED, SEED + "b"]
    await seed_crawl(redis, settings, spec(seeds=seeds, obey_robots=True, sitemaps=True))
    sitemap = f"{origin_of(SEED)}/sitemap.xml"
    robots = robots_job_id("c1", fingerprint(origin_of(SEED)))
    assert await backlog(redis) == [f"S 0 0 0 1 {sitemap}", f"0 0 0 0 {SEED}", f"0 0 0 0 {SEED}b"]
    assert await redis.smembers(CrawlKeys("c1").sitemaps) == {sitemap.encode()}  # type: ignore[misc]
    assert (await load_status(redis, "c1")).counters.pending == 4
    frontier = Judged(redis, settings)
    assert await frontier.start(robots) is Verdict.RUN
    assert await frontier.robots_done(robots, origin_of(SEED), b"{}", 0.0, 60)
    job_id = sitemap_job_id("c1", fingerprint(sitemap))
    raw = deserialize(await redis.get(job_key(job_id)) or b"")
    assert (raw["f"], raw["a"]) == (FETCH_SITEMAP, [sitemap, 0, 0, True])
    await seed_crawl(redis, settings, spec(seeds=[SEED + "c"], obey_robots=True, sitemaps=True))
    assert await redis.scard(CrawlKeys("c1").sitemaps) == 1  # type: ignore[misc]
    await cancel_crawl(redis, settings, "c1")
    await redis.zadd(settings.queue_name, {job_id: now_ms() - 1})
    await redis.set(job_key(job_id), b"\x80")  # as if claimed before the sweep
    assert await frontier.start(job_id) is Verdict.STOPPED


async def test_a_sitemap_admits_its_pages_at_depth_0_and_its_sitemaps(
    redis: Redis, settings: Settings
) -> None:
    """sitemap_done.lua: the sitemap is counted, its reasons too; its page URLs are admitted
    at depth 0 (parent: the sitemap) up to the crawl's cap, the rest counted as capped; the
    sitemaps it names go to their hosts' backlogs once; a re-run changes nothing."""
    crawl = spec(sitemaps=True, max_sitemap_urls=3, seeds=[SEED], depth=2)
    await seed_crawl(redis, settings, crawl)
    frontier = Judged(redis, settings)
    sitemap = f"{origin_of(SEED)}/sitemap.xml"
    job = SitemapJob("c1", sitemap, 0, discover=True)
    assert await frontier.start(job.job_id) is Verdict.RUN
    pages = [SitemapEntry(f"{SEED}p{i}") for i in range(5)] + [SitemapEntry(SEED)]
    others = [SitemapRef("http://other.test/s.xml.gz", 1), SitemapRef(sitemap, 0)]
    admitted = await frontier.sitemap_done(job, "read", pages, others, ["sitemap: why"])
    assert admitted == 3
    status = await load_status(redis, "c1")
    c = status.counters
    assert (c.sitemaps, c.sitemaps_skipped, c.sitemap_urls, c.capped) == (1, 0, 3, 2)
    capped = sitemap_reason(FailureKind.SITEMAP_URL_CAP)  # sitemap_done.lua counts it
    assert c.reasons == {"sitemap: why": 1, capped: 1}
    fps = [fingerprint(p.url) for p in pages]
    assert await frontier.best_depths("c1", fps) == [0, 0, 0, None, None, 0]
    raw = deserialize(await redis.get(job_key(page(f"{SEED}p0", 0).job_id)) or b"")
    assert raw["a"][:3] == [f"{SEED}p0", 0, "/sitemap.xml"]
    other = sitemap_job_id("c1", fingerprint("http://other.test/s.xml.gz"))
    raw = deserialize(await redis.get(job_key(other)) or b"")
    assert raw["a"] == ["http://other.test/s.xml.gz", 1, 0, False]
    assert not await redis.exists(job_key(job.job_id))  # closed, and not admitted again
    assert await frontier.sitemap_done(job, "read", pages, others) is None
    assert (await load_status(redis, "c1")).counters == c


async def test_a_sitemap_retried_goes_to_the_back_and_a_skipped_one_is_counted(
    redis: Redis, settings: Settings
) -> None:
    """A transient failure puts the sitemap back (its try counted, not before the backoff); a
    sitemap not read counts as skipped with its reason, and the crawl ends with its sitemaps
    and their set dropped."""
    await seed_crawl(redis, settings, spec(sitemaps=True, depth=0))
    frontier = Judged(redis, settings)
    sitemap = f"{origin_of(SEED)}/sitemap.xml"
    job = SitemapJob("c1", sitemap, 0, discover=True)
    assert await frontier.start(job.job_id) is Verdict.RUN
    before = now_ms()
    assert await frontier.sitemap_retry(job, 5.0)
    jobs = await queued(redis, settings)
    assert jobs[job.job_id] >= before + 5000
    raw = deserialize(await redis.get(job_key(job.job_id)) or b"")
    assert raw["a"] == [sitemap, 0, 1, True]
    await make_due(redis, settings, job.job_id)
    assert await frontier.start(job.job_id) is Verdict.RUN
    retried = SitemapJob("c1", sitemap, 0, retried=1, discover=True)
    assert await frontier.sitemap_done(retried, "skipped", reasons=["sitemap: http 404"]) == 0
    assert await run(frontier, page(SEED, 0)) == 0
    c = (await load_status(redis, "c1")).counters
    assert (c.sitemaps, c.sitemaps_skipped, c.pending, c.reasons) == (
        0, 1, 0, {"sitemap: http 404": 1}
    )  # fmt: skip
    assert await frontier.finish("c1", "/data/c1/manifest.jsonl")
    assert not await redis.exists(CrawlKeys("c1").sitemaps)


async def test_a_crawl_reads_no_more_sitemaps_than_its_cap(
    redis: Redis, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past SITEMAPS_PER_CRAWL sitemaps admitted, the crawl takes no more; each refused one is
    counted in its reasons."""
    monkeypatch.setattr("crawlfleet.scheduler.control.SITEMAPS_PER_CRAWL", 3)
    await seed_crawl(redis, settings, spec(sitemaps=True, depth=0))
    frontier = Judged(redis, settings)
    sitemap = f"{origin_of(SEED)}/sitemap.xml"
    job = SitemapJob("c1", sitemap, 0, discover=True)
    assert await frontier.start(job.job_id) is Verdict.RUN
    listed = [SitemapRef(f"{SEED}s{i}.xml", 1) for i in range(4)]
    await frontier.sitemap_done(job, "read", [], listed)
    assert await redis.scard(CrawlKeys("c1").sitemaps) == 3  # type: ignore[misc]
    reasons = (await load_status(redis, "c1")).counters.reasons
    assert reasons == {sitemap_reason(FailureKind.SITEMAP_FILE_CAP): 2}  # frontier.lua's


async def lastmods_kept(redis: Redis, crawl_id: str, urls: list[str]) -> list[int | None]:
    """The sitemap lastmod kept for each URL (Unix seconds), None where none is."""
    keys, kept = CrawlKeys(crawl_id), []
    for url in urls:
        fp = fingerprint(url)
        value = await redis.hget(keys.lastmod_bucket(fp), seen_field(fp))  # type: ignore[misc]
        kept.append(None if value is None else int(value))
    return kept


async def hget_calls(redis: Redis) -> int:
    """The HGET commands Redis has run (those of scripts included)."""
    stats = await redis.info("commandstats")
    return int(stats.get("cmdstat_hget", {}).get("calls", 0))


async def claimed_lastmods(frontier: Judged) -> dict[str, int | None]:
    """Claim every due job: the lastmod claim.lua gives each page job to run, by URL."""
    claim = await frontier.scripts.claim(want=10_000, in_progress_ms=60_000, scan_max=10_000)
    lastmods = {}
    for job in claim.jobs:
        args = deserialize(job.payload or b"")["a"]
        if re.fullmatch(r"[^:]+:[0-9a-f]+:\d+", job.job_id):  # a page job
            lastmods[args[0]] = job.lastmod
    return lastmods


async def test_a_sitemap_lastmod_is_kept_for_its_pages_claim(
    redis: Redis, settings: Settings
) -> None:
    """sitemap_done.lua keeps the lastmod the worker sends for a page URL at depth 0 (admitted
    from the sitemap, or a seed), rounded up to the second, the later of two (past the crawl's
    cap too), none for a URL past the cap; claim.lua gives each page job its URL's; cancelling
    the crawl drops them."""
    await seed_crawl(redis, settings, spec(sitemaps=True, max_sitemap_urls=3))
    frontier = Judged(redis, settings)
    sitemap = f"{origin_of(SEED)}/sitemap.xml"
    job = SitemapJob("c1", sitemap, 0, discover=True)
    assert await frontier.start(job.job_id) is Verdict.RUN
    t = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
    at = int(t.timestamp())
    urls = [SEED, f"{SEED}p0", f"{SEED}p1", f"{SEED}p2", f"{SEED}p3"]
    lastmods = [t, t + timedelta(seconds=0.5), None, t, t]
    pages = [SitemapEntry(u, m) for u, m in zip(urls, lastmods, strict=True)]
    second = SitemapRef(f"{SEED}s2.xml", 1)
    await frontier.sitemap_done(job, "read", pages, [second], lastmods=True)
    assert await lastmods_kept(redis, "c1", urls) == [at, at + 1, None, at, None]
    again = SitemapJob("c1", second.url, 1)  # closed unclaimed: the pages' jobs stay due
    later = [SitemapEntry(SEED, t - timedelta(days=1)), SitemapEntry(f"{SEED}p0", t + timedelta(1))]
    await frontier.sitemap_done(again, "read", later, lastmods=True)
    kept = await lastmods_kept(redis, "c1", urls)
    assert kept == [at, at + 86_400, None, at, None]
    hgets = await hget_calls(redis)
    # the seed's job was claimed with the sitemap's (Judged.start claims every due job)
    assert await claimed_lastmods(frontier) == dict(zip(urls[1:4], kept[1:4], strict=True))
    assert await hget_calls(redis) - hgets == 2 * 3  # its seen depth and its lastmod, each
    encoding = await redis.object("encoding", CrawlKeys("c1").lastmod_bucket(fingerprint(SEED)))
    assert encoding in (b"ziplist", b"listpack")
    assert await redis.hget(CrawlKeys("c1").meta, "lastmods") == b"1"  # type: ignore[misc]
    await cancel_crawl(redis, settings, "c1")
    left = await crawl_keys_left(redis, "c1")
    assert not [k for k in left if k.startswith(CrawlKeys("c1").lastmods)]


async def test_without_lastmods_nothing_is_kept_or_looked_up(
    redis: Redis, settings: Settings
) -> None:
    """A crawl that is no recrawl (the worker sends no lastmod) keeps none, and its page jobs
    are claimed without one and without a command more to look for one (Redis's count)."""
    await seed_crawl(redis, settings, spec(sitemaps=True))
    frontier = Judged(redis, settings)
    job = SitemapJob("c1", f"{origin_of(SEED)}/sitemap.xml", 0, discover=True)
    assert await frontier.start(job.job_id) is Verdict.RUN
    when = datetime(2026, 12, 1, tzinfo=UTC)
    await frontier.sitemap_done(job, "read", [SitemapEntry(f"{SEED}p0", when)])
    assert await lastmods_kept(redis, "c1", [f"{SEED}p0"]) == [None]
    assert await redis.hget(CrawlKeys("c1").meta, "lastmods") is None  # type: ignore[misc]
    hgets = await hget_calls(redis)
    assert await claimed_lastmods(frontier) == {f"{SEED}p0": None}
    assert await hget_calls(redis) - hgets == 1  # its seen depth, as ever


async def test_a_done_crawl_drops_its_sitemap_lastmods(redis: Redis, settings: Settings) -> None:
    """finish.lua drops the lastmod buckets with the seen ones: nothing of them is left."""
    await seed_crawl(redis, settings, spec(sitemaps=True, depth=0))
    frontier = Judged(redis, settings)
    job = SitemapJob("c1", f"{origin_of(SEED)}/sitemap.xml", 0, discover=True)
    assert await frontier.start(job.job_id) is Verdict.RUN
    when = datetime(2026, 12, 1, tzinfo=UTC)
    listed = [SitemapEntry(f"{SEED}p{i}", when) for i in range(50)]
    await frontier.sitemap_done(job, "read", listed, lastmods=True)
    assert await redis.exists(CrawlKeys("c1").lastmod_bucket(fingerprint(listed[0].url)))
    closing = [SEED]  # claimed with the sitemap's job
    while closing:  # the host's slots promote the rest as jobs close
        for url in closing:
            await frontier.close(page(url, 0), 0, "fetched", 1, [])
        closing = list(await claimed_lastmods(frontier))
    assert await frontier.finish("c1", "/data/c1/manifest.jsonl")
    left = await crawl_keys_left(redis, "c1")
    assert not [k for k in left if k.startswith(CrawlKeys("c1").lastmods)]
    assert not [k for k in left if k.startswith(CrawlKeys("c1").seen)]
