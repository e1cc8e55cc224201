"""Page records in per-process logs: a cut last record is left out, finalizing keeps one
record per page, and a finished crawl is read back (``pages``, ``cat``, ``--since``) from them."""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path

import pytest
from redis.asyncio import Redis

from crawlfleet.scheduler.readback import FinishedCrawl
from crawlfleet.shared.errors import LinkRefused
from crawlfleet.shared.gzip_members import whole_members
from crawlfleet.shared.page_index import PageIndex
from crawlfleet.shared.record_log import member
from crawlfleet.shared.settings import Settings
from crawlfleet.shared.storage import CrawlLayout, PageRecord
from crawlfleet.workers.fetch import FetchResult
from crawlfleet.workers.finalize import write_manifest
from crawlfleet.workers.frontier import Frontier, PageJob
from crawlfleet.workers.record_logs import RecordLogs
from crawlfleet.workers.since import EarlierCrawl
from crawlfleet.workers.store import store_page

SITE = "http://example.org"


def _store(
    logs: RecordLogs, layout: CrawlLayout, path: str, depth: int, body: bytes = b"<p>x</p>"
) -> PageRecord:
    url = SITE + path
    result = FetchResult(url=url, final_url=url, status=200, content_type="text/html",
                         body=body, truncated=False, error=None, duration_ms=1)  # fmt: skip
    job = PageJob(layout.root.name, url, depth, None)
    return store_page(layout, logs, job, result, "w1", links=[f"{url}/next"])


def _manifest(layout: CrawlLayout) -> list[dict[str, object]]:
    return [json.loads(line) for line in layout.manifest.read_text().splitlines()]


async def test_a_cut_last_record_is_left_out_and_a_restart_writes_a_new_log(
    redis: Redis, settings: Settings
) -> None:
    """A worker killed mid-append leaves a cut last member: readers report and skip it, the
    records before it read whole (``zcat`` too), and the restarted worker (same id, same
    second) appends to a log of its own, never after the cut."""
    layout = CrawlLayout(settings.data_dir, "c1")
    with RecordLogs(settings) as logs:
        stored = [_store(logs, layout, f"/{i}", 1) for i in range(3)]
    [log] = layout.record_logs()
    cut = member(b'{"url": "http://example.org/lost"}\n')
    with (layout.records_dir / log).open("ab") as file:
        file.write(cut[: len(cut) // 2])
    with RecordLogs(settings) as logs:
        later = _store(logs, layout, "/after", 1)
    assert len(layout.record_logs()) == 2
    found = list(layout.records())
    assert [r for _, _, r in found if isinstance(r, PageRecord)] == [*stored, later]
    reasons = [r for _, _, r in found if isinstance(r, str)]
    assert reasons == [f"cut off: its last {len(cut) // 2} bytes are no whole record"]
    whole = gzip.decompress((layout.records_dir / log).read_bytes()[: -(len(cut) // 2)])
    assert [json.loads(line)["url"] for line in whole.splitlines()] == [r.url for r in stored]
    assert (await write_manifest(layout, Frontier(redis, settings), "c1")).pages == 4
    assert {p["url"] for p in _manifest(layout)} == {r.url for r in [*stored, later]}


def test_a_log_reads_to_its_last_whole_member_whatever_the_cut(tmp_path: Path) -> None:
    """Cut at any byte, a log of three records reads as the records wholly before the cut."""
    lines = [json.dumps({"n": n, "pad": "x" * 50 * n}).encode() + b"\n" for n in range(3)]
    data = b"".join(member(line) for line in lines)
    ends = [sum(len(member(line)) for line in lines[: n + 1]) for n in range(3)]
    path = tmp_path / "log"
    for size in range(len(data) + 1):
        path.write_bytes(data[:size])
        fd = os.open(path, os.O_RDONLY)
        try:
            found = list(whole_members(fd))
        finally:
            os.close(fd)
        whole = sum(1 for end in ends if end <= size)
        assert [m.data for m in found] == lines[:whole]
        assert [m.offset + m.length for m in found] == ends[:whole]


async def test_a_page_recorded_twice_keeps_the_shorter_depth_then_the_latest(
    redis: Redis, settings: Settings
) -> None:
    """A page recorded at depth 2, then at depth 1 by another process, then at depth 1 again
    (its job ran twice): the manifest and index keep the last depth-1 record, and the depth-2
    body is removed."""
    layout = CrawlLayout(settings.data_dir, "c1")
    with RecordLogs(settings) as one, RecordLogs(settings) as two:
        deeper = _store(one, layout, "/a", 2, b"deep")
        _store(two, layout, "/a", 1, b"first")
        rerun = _store(one, layout, "/a", 1, b"again")
    assert len(layout.record_logs()) == 2
    assert (await write_manifest(layout, Frontier(redis, settings), "c1")).pages == 1
    [kept] = _manifest(layout)
    assert kept["depth"] == 1 and kept["fetched_at"] == rerun.fetched_at.isoformat().replace(
        "+00:00", "Z"
    )
    assert not layout.body_path(deeper.fingerprint, 2, "text/html").exists()
    assert layout.body_path(rerun.fingerprint, 1, "text/html").read_bytes() == b"again"
    with PageIndex(layout) as index:
        found = index.find(rerun.fingerprint)
    assert found is not None and found.depth == 1
    earlier = EarlierCrawl(settings.data_dir, "c1")
    try:
        page = earlier.page(rerun.url)
    finally:
        earlier.close()
    assert page is not None and page.record == rerun


async def test_a_finished_crawl_reads_back_from_its_logs(redis: Redis, settings: Settings) -> None:
    """A finished crawl has no record file per page; its pages and bodies read back, and a
    later crawl --since it finds each record, links included, through the index."""
    layout = CrawlLayout(settings.data_dir, "c1")
    with RecordLogs(settings) as logs:
        stored = [_store(logs, layout, f"/{i}", i % 3, f"body {i}".encode()) for i in range(20)]
    assert (await write_manifest(layout, Frontier(redis, settings), "c1")).pages == 20
    assert not [p for p in layout.root.rglob("*.json")]
    crawl = FinishedCrawl(settings.data_dir, "c1")
    assert sorted(r.url for r in crawl.pages()) == sorted(r.url for r in stored)
    assert crawl.body(crawl.page(SITE + "/7")) == b"body 7"
    earlier = EarlierCrawl(settings.data_dir, "c1")
    try:
        for record in stored:
            page = earlier.page(record.url)
            assert page is not None and page.record == record
            assert page.record.link_urls() == [f"{record.url}/next"]
        assert earlier.page(SITE + "/none") is None
    finally:
        earlier.close()


async def test_a_records_folder_that_is_a_link_is_refused(
    redis: Redis, settings: Settings, tmp_path: Path
) -> None:
    """A records folder that is a symbolic link: no record is appended, the folder check
    fails and finalizing stops, and nothing is written where it points."""
    outside = tmp_path / "outside"
    outside.mkdir()
    layout = CrawlLayout(settings.data_dir, "c1")
    layout.root.mkdir(parents=True)
    layout.records_dir.symlink_to(outside)
    with RecordLogs(settings) as logs, pytest.raises(LinkRefused):
        _store(logs, layout, "/", 0)
    with pytest.raises(LinkRefused):
        layout.check_writable(bodies=False)
    with pytest.raises(LinkRefused):
        await write_manifest(layout, Frontier(redis, settings), "c1")
    assert not list(outside.iterdir())


def test_a_log_removed_while_open_is_made_again(settings: Settings) -> None:
    """A crawl folder removed while a worker held its log open: the next record goes to a
    new log in the crawl's folder, not to the removed file."""
    layout = CrawlLayout(settings.data_dir, "c1")
    with RecordLogs(settings) as logs:
        _store(logs, layout, "/", 0)
        [first] = layout.record_logs()
        (layout.records_dir / first).unlink()
        again = _store(logs, layout, "/b", 0)
    assert len(layout.record_logs()) == 1
    assert [r for _, _, r in layout.records()] == [again]


def test_a_log_idle_past_twice_the_job_timeout_is_closed(settings: Settings) -> None:
    """A crawl's log that no record has gone to for twice the job timeout is synced and closed
    when another crawl's record is appended; a later record of that crawl starts a new log,
    and both read back."""
    one, two = CrawlLayout(settings.data_dir, "c1"), CrawlLayout(settings.data_dir, "c2")
    idle = 2 * settings.job_timeout_s
    now = [0.0]
    with RecordLogs(settings, clock=lambda: now[0]) as logs:
        first = _store(logs, one, "/a", 0)
        logs.append(two, first.model_copy(update={"url": SITE + "/b"}))
        assert logs.open == [one.root, two.root]
        later = first.model_copy(update={"url": SITE + "/c"})
        now[0] = idle / 2
        logs.append(two, later)
        assert logs.open == [one.root, two.root]
        now[0] = idle + 1
        logs.append(two, later)
        assert logs.open == [two.root]
        again = _store(logs, one, "/d", 0)
        assert logs.open == [two.root, one.root]
    assert len(one.record_logs()) == 2
    assert [r for _, _, r in one.records()] == [first, again]


@pytest.mark.parametrize("why", ["idle", "removed"])
def test_a_log_started_anew_is_closed_once_idle_too(settings: Settings, why: str) -> None:
    """A crawl's log started anew (its last one went idle, or was removed while open) is kept
    on the books like any other: once idle past twice the job timeout, it is closed."""
    one, two = CrawlLayout(settings.data_dir, "c1"), CrawlLayout(settings.data_dir, "c2")
    idle = 2 * settings.job_timeout_s
    now = [0.0]
    with RecordLogs(settings, clock=lambda: now[0]) as logs:
        _store(logs, one, "/a", 0)
        if why == "idle":
            now[0] = idle + 1
        else:
            [first] = one.record_logs()
            (one.records_dir / first).unlink()
        _store(logs, one, "/b", 0)  # a new log
        assert logs.open == [one.root]
        now[0] += idle + 1
        logs.append(two, _a_record(one))
        assert logs.open == [two.root]


def _a_record(layout: CrawlLayout) -> PageRecord:
    """A record of ``layout``'s crawl, as its logs hold one."""
    return next(r for _, _, r in layout.records() if isinstance(r, PageRecord))
