"""The Lua scripts in shared/lua, each against a real redis-server."""

from __future__ import annotations

import msgpack
import pytest
from redis.asyncio import Redis

from scheduler.control import cancel_crawl, pause_crawl, resume_crawl, seed_crawl
from shared.catalog import load_status
from shared.crawl import CrawlSpec, CrawlState
from shared.errors import CrawlNotRunning, UnknownCrawl
from shared.jobs import finalize_job_id, page_job_args, parent_url
from shared.keys import CrawlKeys, HostKeys, job_key, seen_field
from shared.scripts import script_source
from shared.settings import Settings
from shared.urls import fingerprint
from workers.frontier import Frontier, PageJob, Start, Verdict
from workers.politeness import Politeness

SEED = "http://example.org/"


def spec(**kw: object) -> CrawlSpec:
    return CrawlSpec.model_validate({"crawl_id": "c1", "seeds": [SEED], "depth": 3, **kw})


async def queue(redis: Redis, settings: Settings, *closed: PageJob) -> list[str]:
    """Job ids in the arq queue, less those of ``closed`` jobs (arq removes them, not us)."""
    ids = [m.decode() for m in await redis.zrange(settings.queue_name, 0, -1)]
    return [i for i in ids if i not in {j.job_id for j in closed}]


def test_admit_is_prepended_where_used() -> None:
    """Scripts that queue pages carry the admit() fragment; the others do not."""
    assert "local function admit" in script_source("seed")
    assert "local function admit" in script_source("page_done")
    assert "local function admit" not in script_source("cancel")


async def test_seed_creates_crawl_and_queues_arq_jobs(redis: Redis, settings: Settings) -> None:
    """Seeding writes the crawl, its seen set, pending set and a msgpack arq job per seed."""
    result = await seed_crawl(redis, settings, spec())
    assert result.created and result.queued == 1
    job_id = f"c1:{fingerprint(SEED)}:0"
    assert await queue(redis, settings) == [job_id]
    payload = msgpack.unpackb(await redis.get(job_key(job_id)))
    assert payload["f"] == "crawl_page"
    assert payload["a"] == [SEED, 0, None]
    assert await redis.pttl(job_key(job_id)) == -1  # lives as long as the crawl
    status = await load_status(redis, "c1")
    assert status.state is CrawlState.RUNNING
    assert status.counters.pending == 1 and status.counters.queued == 1


async def test_seed_again_adds_only_new_seeds(redis: Redis, settings: Settings) -> None:
    """Seeding a running crawl again queues only seeds it has not seen."""
    await seed_crawl(redis, settings, spec())
    again = await seed_crawl(redis, settings, spec(seeds=[SEED, "http://example.org/b"]))
    assert not again.created and again.queued == 1
    assert len(await queue(redis, settings)) == 2


async def test_seed_refuses_ended_crawl(redis: Redis, settings: Settings) -> None:
    """A cancelled crawl takes no more seeds."""
    await seed_crawl(redis, settings, spec())
    await cancel_crawl(redis, settings, "c1")
    with pytest.raises(CrawlNotRunning):
        await seed_crawl(redis, settings, spec())


async def test_page_done_queues_new_links_once_and_counts_once(
    redis: Redis, settings: Settings
) -> None:
    """Closing a job queues unseen links at depth+1; running the close again changes nothing."""
    s = spec()
    await seed_crawl(redis, settings, s)
    frontier = Frontier(redis, settings)
    job = PageJob("c1", SEED, 0, None)
    links = ["http://example.org/a", "http://example.org/b", SEED]
    assert (await frontier.start(job)).verdict is Verdict.RUN
    # what arq holds for a running job: its clean-up is page_done's
    await redis.set(f"arq:in-progress:{job.job_id}", b"1")
    await redis.set(f"arq:retry:{job.job_id}", b"1")
    await redis.zadd("arq:abort", {job.job_id: 1})
    assert await frontier.close(job, s, "fetched", 100, links) == 2
    assert not await redis.exists(f"arq:in-progress:{job.job_id}", f"arq:retry:{job.job_id}")
    assert await redis.zscore(settings.queue_name, job.job_id) is None
    assert await redis.zcard("arq:abort") == 0
    assert await frontier.close(job, s, "fetched", 100, links) is None  # a re-run
    assert (await frontier.start(job)).verdict is Verdict.DONE_ALREADY
    status = await load_status(redis, "c1")
    assert status.counters.fetched == 1 and status.counters.bytes == 100
    assert status.counters.pending == 2 and status.counters.seen == 3
    assert sorted(await queue(redis, settings, job)) == sorted(
        f"c1:{fingerprint(u)}:1" for u in links[:2]
    )


async def test_shorter_path_requeues_page_and_marks_old_job_stale(
    redis: Redis, settings: Settings
) -> None:
    """A page reached by a shorter path is queued at the better depth; the old job is stale."""
    s = spec(seeds=[SEED, "http://example.org/b"])
    await seed_crawl(redis, settings, s)
    frontier = Frontier(redis, settings)
    far, near = "http://example.org/far", "http://example.org/x"
    # the seed links to x (depth 1); x links to far (depth 2)
    await frontier.close(PageJob("c1", SEED, 0, None), s, "fetched", 1, [near])
    await frontier.close(PageJob("c1", near, 1, SEED), s, "fetched", 1, [far])
    old = PageJob("c1", far, 2, near)
    assert (await frontier.start(old)).verdict is Verdict.RUN
    # now the other seed links to far directly: depth 1 beats 2
    await frontier.close(PageJob("c1", "http://example.org/b", 0, None), s, "fetched", 1, [far])
    assert (await frontier.start(old)).verdict is Verdict.STALE
    assert (await frontier.start(PageJob("c1", far, 1, SEED))).verdict is Verdict.RUN
    assert f"c1:{fingerprint(far)}:1" in await queue(redis, settings)
    assert await frontier.best_depths("c1", [fingerprint(far)]) == [1]


async def test_refetch_at_better_depth_counts_once(redis: Redis, settings: Settings) -> None:
    """A page fetched at depth 2 and again at depth 1 adds one to ``fetched``."""
    s = spec()
    await seed_crawl(redis, settings, s)
    frontier = Frontier(redis, settings)
    page = "http://example.org/p"
    await frontier.close(PageJob("c1", SEED, 0, None), s, "fetched", 1, ["http://example.org/m"])
    await frontier.close(PageJob("c1", "http://example.org/m", 1, SEED), s, "fetched", 1, [page])
    await frontier.close(PageJob("c1", page, 2, "http://example.org/m"), s, "fetched", 1, [])
    # improve p to depth 1 by seeding a page that links to it
    await seed_crawl(redis, settings, spec(seeds=["http://example.org/q"]))
    await frontier.close(PageJob("c1", "http://example.org/q", 0, None), s, "fetched", 1, [page])
    await frontier.close(PageJob("c1", page, 1, "http://example.org/q"), s, "fetched", 1, [])
    status = await load_status(redis, "c1")
    assert status.counters.fetched == 4  # seed, m, p, q: p counted once


async def test_depth_limit_is_applied(redis: Redis, settings: Settings) -> None:
    """Links of a page at the depth limit are not queued."""
    s = spec(depth=0)
    await seed_crawl(redis, settings, s)
    frontier = Frontier(redis, settings)
    assert await frontier.close(PageJob("c1", SEED, 0, None), s, "fetched", 1, [SEED + "a"]) == 0


async def test_max_pages_caps_admitted_urls(redis: Redis, settings: Settings) -> None:
    """No more than max_pages distinct URLs are ever queued."""
    s = spec(max_pages=3)
    await seed_crawl(redis, settings, s)
    frontier = Frontier(redis, settings)
    links = [f"http://example.org/{i}" for i in range(10)]
    assert await frontier.close(PageJob("c1", SEED, 0, None), s, "fetched", 1, links) == 2
    assert (await load_status(redis, "c1")).counters.seen == 3


async def test_last_job_queues_finalize_and_finish_marks_done(
    redis: Redis, settings: Settings
) -> None:
    """When the pending set empties the finalize job is queued; finish() then marks it done."""
    s = spec()
    await seed_crawl(redis, settings, s)
    frontier = Frontier(redis, settings)
    assert not await frontier.finish("c1")  # still pending
    await frontier.close(PageJob("c1", SEED, 0, None), s, "failed", 0, [])
    # the closed job left the queue with the close (arq's clean-up, done by page_done.lua)
    assert await queue(redis, settings) == [finalize_job_id("c1")]
    assert await frontier.finish("c1")
    status = await load_status(redis, "c1")
    assert status.state is CrawlState.DONE and status.finished_at is not None
    assert status.counters.failed == 1
    assert not await frontier.finish("c1")


async def test_cancel_drops_queued_jobs(redis: Redis, settings: Settings) -> None:
    """Cancel removes the crawl's jobs from the queue and their payloads, nothing else."""
    await seed_crawl(redis, settings, spec(crawl_id="other"))
    s = spec()
    await seed_crawl(redis, settings, s)
    frontier = Frontier(redis, settings)
    seed_job = PageJob("c1", SEED, 0, None)
    await frontier.close(seed_job, s, "fetched", 1, [SEED + "a", SEED + "b"])
    assert (await cancel_crawl(redis, settings, "c1")).dropped == 2
    assert await queue(redis, settings, seed_job) == [f"other:{fingerprint(SEED)}:0"]
    assert (await load_status(redis, "c1")).counters.pending == 0
    assert await redis.keys("arq:job:c1:*") == []  # closed (the seed) or dropped
    assert (await load_status(redis, "c1")).state is CrawlState.CANCELLED
    assert (await frontier.start(PageJob("c1", SEED + "a", 1, SEED))).verdict is Verdict.STOPPED
    with pytest.raises(CrawlNotRunning):
        await cancel_crawl(redis, settings, "c1")
    with pytest.raises(UnknownCrawl):
        await cancel_crawl(redis, settings, "nope")


async def test_start_counts_tries_until_closed(redis: Redis, settings: Settings) -> None:
    """Each start of an unclosed job counts; a hand-back on purpose is taken back; close clears."""
    s = spec()
    await seed_crawl(redis, settings, s)
    frontier = Frontier(redis, settings)
    job = PageJob("c1", SEED, 0, None)
    assert await frontier.start(job) == Start(Verdict.RUN, 1, 0)
    assert await frontier.start(job) == Start(Verdict.RUN, 2, 0)  # its worker died
    await frontier.hand_back(job)
    assert await frontier.start(job) == Start(Verdict.RUN, 2, 0)
    await frontier.hand_back(job, fetch_failed=True)
    assert await frontier.start(job) == Start(Verdict.RUN, 2, 1)
    await frontier.close(job, s, "fetched", 1, [])
    assert await redis.hlen(CrawlKeys("c1").tries) == 0  # type: ignore[misc]


async def test_pause_parks_queue_and_new_links_resume_requeues(
    redis: Redis, settings: Settings
) -> None:
    """Pause moves queued jobs aside and sends new links there; resume puts all back."""
    s = spec()
    await seed_crawl(redis, settings, s)
    frontier = Frontier(redis, settings)
    seed_job = PageJob("c1", SEED, 0, None)
    await frontier.close(seed_job, s, "fetched", 1, [SEED + "a", SEED + "b"])
    running = PageJob("c1", SEED + "a", 1, SEED)
    await redis.set(f"arq:in-progress:{running.job_id}", b"1")  # a worker has taken it
    assert await pause_crawl(redis, settings, "c1") == 1
    assert await queue(redis, settings, seed_job, running) == []
    assert (await load_status(redis, "c1")).state is CrawlState.PAUSED
    assert (await frontier.start(PageJob("c1", SEED + "b", 1, SEED))).verdict is Verdict.PAUSED
    # the page that was running when the crawl was paused: its links are parked too
    await frontier.close(running, s, "fetched", 1, [SEED + "c"])
    assert await redis.zcard(CrawlKeys("c1").parked) == 2
    assert await queue(redis, settings, seed_job, running) == []
    with pytest.raises(CrawlNotRunning):
        await pause_crawl(redis, settings, "c1")
    assert await resume_crawl(redis, settings, "c1") == 2
    assert len(await queue(redis, settings, seed_job, running)) == 2
    assert (await load_status(redis, "c1")).state is CrawlState.RUNNING
    with pytest.raises(CrawlNotRunning):
        await resume_crawl(redis, settings, "c1")


async def test_cancel_aborts_running_jobs(redis: Redis, settings: Settings) -> None:
    """Jobs that a worker has started are put in arq's abort set, not dropped."""
    s = spec()
    await seed_crawl(redis, settings, s)
    job_id = PageJob("c1", SEED, 0, None).job_id
    await redis.set(f"arq:in-progress:{job_id}", b"1")
    result = await cancel_crawl(redis, settings, "c1")
    assert (result.dropped, result.aborted) == (0, 1)
    assert await redis.zrange("arq:abort", 0, -1) == [job_id.encode()]


async def test_claim_takes_due_jobs_not_running_elsewhere(redis: Redis, settings: Settings) -> None:
    """claim.lua is arq's start rule for a batch: due, queued jobs that no worker runs, in
    queue order, each claimed once, as many as asked for; and arq's start of each: its
    payload read, one more try counted, its abort mark taken off."""
    claim = redis.register_script(script_source("claim"))
    queue_name = settings.queue_name
    args: list[str | int] = ["arq:in-progress:", 100, "arq:job:", "arq:retry:", 60]

    async def take(want: int) -> list[tuple[str, int, bytes | None, int, int]]:
        got = await claim(keys=[queue_name, "arq:abort"], args=[1000, 5000, want, *args])
        return [
            (got[i].decode(), int(float(got[i + 1])), got[i + 2], got[i + 3], got[i + 4])
            for i in range(0, len(got), 5)
        ]

    assert await take(5) == []
    await redis.zadd(queue_name, {"a": 900, "b": 950, "c": 990, "d": 995, "later": 2000})
    await redis.set("arq:in-progress:b", b"1")  # another worker runs it
    await redis.set("arq:job:a", b"payload-a")
    await redis.set("arq:retry:a", 2)  # started twice before
    await redis.set("arq:job:c", b"payload-c")
    await redis.zadd("arq:abort", {"c": 1})  # cancelled while queued
    assert await take(1) == [("a", 900, b"payload-a", 3, 0)]
    assert 0 < await redis.pttl("arq:in-progress:a") <= 5000
    assert 0 < await redis.ttl("arq:retry:a") <= 60
    # not b (running), not later (deferred), not a again; d's payload is gone
    assert await take(5) == [("c", 990, b"payload-c", 1, 1), ("d", 995, None, 1, 0)]
    assert await redis.zcard("arq:abort") == 0
    assert await take(5) == []


async def test_start_takes_host_slot_and_page_done_gives_it_back(
    redis: Redis, settings: Settings
) -> None:
    """A job can take its host slot in its start round trip; closing the page frees it."""
    s = spec()
    await seed_crawl(redis, settings, s)
    await frontier_close_seed_with_links(redis, settings, s, ["a", "b"])
    frontier = Frontier(redis, settings)
    politeness = Politeness(redis, lease_s=30)
    first, second = (PageJob("c1", SEED + name, 1, SEED) for name in "ab")
    ask_first = politeness.ask("example.org", 1, 0)
    started = await frontier.start(first, ask_first)
    assert started == Start(Verdict.RUN, 1, 0, 0)
    slots = HostKeys("example.org").slots
    assert await redis.zrange(slots, 0, -1) == [ask_first.token.encode()]
    # the host's one slot is taken: the next job is told to wait, and holds nothing
    assert (await frontier.start(second, politeness.ask("example.org", 1, 0))).slot_wait_ms
    assert await redis.zcard(slots) == 1
    assert (await frontier.start(second)).slot_wait_ms is None  # nothing asked
    await frontier.close(first, s, "fetched", 1, [], slot=ask_first)
    assert await redis.zcard(slots) == 0


async def frontier_close_seed_with_links(
    redis: Redis, settings: Settings, s: CrawlSpec, names: list[str]
) -> None:
    """Close the seed job of ``s`` with links to ``SEED + name`` for each name."""
    await Frontier(redis, settings).close(
        PageJob("c1", SEED, 0, None), s, "fetched", 1, [SEED + n for n in names]
    )


async def test_seen_urls_live_in_compact_buckets(redis: Redis, settings: Settings) -> None:
    """Each seen URL is one small field of its bucket hash: 2 * depth, + 1 once fetched."""
    s = spec()
    await seed_crawl(redis, settings, s)
    keys = CrawlKeys("c1")
    fp = fingerprint(SEED)
    assert await redis.hget(keys.seen_bucket(fp), seen_field(fp)) == b"0"  # type: ignore[misc]
    link = SEED + "a"
    await frontier_close_seed_with_links(redis, settings, s, ["a"])
    assert await redis.hget(keys.seen_bucket(fp), seen_field(fp)) == b"1"  # type: ignore[misc]
    link_fp = fingerprint(link)
    assert await redis.hget(keys.seen_bucket(link_fp), seen_field(link_fp)) == b"2"  # type: ignore[misc]
    assert await Frontier(redis, settings).best_depths("c1", [fp, link_fp, "0" * 16]) == [
        0,
        1,
        None,
    ]
    encoding = await redis.object("encoding", keys.seen_bucket(fp))
    assert encoding in (b"ziplist", b"listpack")


async def test_crawlfleet_redis_keeps_large_buckets_compact(redis: Redis) -> None:
    """The Redis crawlfleet starts keeps hashes of up to 1,024 fields compact (default 128)."""
    config = await redis.config_get("hash-max-ziplist-entries")
    assert int(config["hash-max-ziplist-entries"]) == 1024


async def test_cancel_sweeps_a_long_shared_queue_in_batches(
    redis: Redis, settings: Settings
) -> None:
    """A cancel finds all of its crawl's jobs in the shared queue, over several scan batches,
    and none of another crawl's, even one whose id starts the same."""
    links = [f"{SEED}p{n}" for n in range(1200)]
    for crawl_id in ("c1", "c10"):
        s = spec(crawl_id=crawl_id)
        await seed_crawl(redis, settings, s)
        await Frontier(redis, settings).close(
            PageJob(crawl_id, SEED, 0, None), s, "fetched", 1, links
        )
    result = await cancel_crawl(redis, settings, "c1")
    assert (result.dropped, result.aborted) == (1200, 0)
    left = {m.decode().split(":")[0] for m in await redis.zrange(settings.queue_name, 0, -1)}
    assert left == {"c10"}
    assert len(await redis.keys("arq:job:c10:*")) == 1200
    assert (await load_status(redis, "c10")).counters.pending == 1200


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
