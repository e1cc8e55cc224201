"""A data directory that takes no file: a crawl whose folder cannot take files fails with the
reason before it fetches anything; on a full disk pages wait for room (handed back, never lost)
for a while, then the crawl fails."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
import os
import random
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from crawlfleet.scheduler.control import seed_crawl
from crawlfleet.scheduler.local import LocalWorkers
from crawlfleet.shared.catalog import load_status
from crawlfleet.shared.connections import connected
from crawlfleet.shared.crawl import CrawlSpec, CrawlState, CrawlStatus
from crawlfleet.shared.settings import Settings
from crawlfleet.shared.storage import CrawlLayout
from crawlfleet.shared.warc_index import whole_records
from tests.support.checks import assert_stored_exactly_once
from tests.support.crawling import read_manifest, wait_done
from tests.support.synthetic import shortest_depths
from tests.support.testweb import Page, Site, TestWeb, make_site
from tests.support.tmpfs import small_tmpfs
from tests.support.warcs import read_warc, warcio_check

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("blocked_by", ["a file", "a read-only mount"])
async def test_a_crawl_folder_that_takes_no_file_fails_the_crawl_unfetched(
    web: TestWeb, fault_settings: Settings, tmp_path: Path, blocked_by: str
) -> None:
    """A crawl folder that cannot take files (a file in its place, a read-only file system)
    fails the crawl with the reason before any request, robots.txt's included: no page is
    fetched again and again."""
    web.site = make_site(web.port, seed=10, pages_per_host=10)
    seeds = [web.url(h, "/p/0.html") for h in range(3)]
    folder = fault_settings.data_dir / "blocked"
    folder.parent.mkdir(parents=True)
    with contextlib.ExitStack() as stack:
        if blocked_by == "a file":
            folder.write_text("a file where the crawl folder should be")
            why = "Not a directory"
        else:
            stack.enter_context(small_tmpfs(folder))
            subprocess.run(["mount", "-o", "remount,ro", str(folder)], check=True)
            why = "Read-only file system"
        with LocalWorkers(fault_settings, 2, fault_settings.data_dir / "logs"):
            async with connected(fault_settings.redis_url) as redis:
                spec = CrawlSpec(crawl_id="blocked", seeds=seeds)
                await seed_crawl(redis, fault_settings, spec)
            status = await wait_done(fault_settings, "blocked", timeout=60)
    assert status.state is CrawlState.FAILED
    assert status.reason == f"storage: {folder} cannot take files: {why}"
    assert web.requested() == []
    assert status.counters.pending == 0
    logs = "".join(p.read_text() for p in (fault_settings.data_dir / "logs").iterdir())
    assert '"crawl failed"' in logs


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 48 KiB tmpfs (root only): a disk that fills up."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    mount = tmp_path / "small"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=48k", "tmpfs", str(mount)]).returncode:
        pytest.skip("cannot mount a tmpfs here")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


async def fill_then_enlarge(
    fault_settings: Settings, small_disk: Path, spec: CrawlSpec, looks: int
) -> CrawlStatus:
    """Crawl ``spec`` with one worker onto ``small_disk`` until its log says the disk is full
    (looked at every 0.1 s, ``looks`` times at most) while the crawl still runs, then enlarge
    the disk to 16 MiB; the crawl's status once it has ended."""
    settings = fault_settings.model_copy(update={"data_dir": small_disk})
    logs = fault_settings.data_dir / "logs"
    with LocalWorkers(settings, 1, logs):
        async with connected(settings.redis_url) as redis:
            await seed_crawl(redis, settings, spec)
            for _ in range(looks):
                if "No space left" in (logs / "worker-1.log").read_text():
                    break
                await asyncio.sleep(0.1)
            else:
                raise AssertionError("the disk never filled up")
            assert (await load_status(redis, spec.crawl_id)).state is CrawlState.RUNNING
        subprocess.run(["mount", "-o", "remount,size=16m", str(small_disk)], check=True)
        return await wait_done(settings, spec.crawl_id, timeout=90)


@pytest.mark.parametrize("warc", [False, True], ids=["files", "warc"])
async def test_full_disk_retries_until_space(
    web: TestWeb, fault_settings: Settings, small_disk: Path, warc: bool
) -> None:
    """ENOSPC: pages wait (no record without its file, or its WARC record) until there is
    room, then complete; WARC files stay whole, with no empty file left by a failed start."""
    web.site = make_site(web.port, seed=11, pages_per_host=30, links_per_page=3)
    seeds = [web.url(h, "/p/0.html") for h in range(3)]
    spec = CrawlSpec(crawl_id="full", seeds=seeds, depth=4, warc=warc)
    status = await fill_then_enlarge(fault_settings, small_disk, spec, looks=100)
    assert status.state is CrawlState.DONE
    expected = set(shortest_depths(web.site, seeds, 4, only_seed_hosts=True))
    assert_stored_exactly_once(small_disk, "full", expected)
    layout = CrawlLayout(small_disk, "full")
    assert bool(layout.warc_files()) is warc
    for path in layout.warc_files():
        assert warcio_check(path).returncode == 0
        assert whole_records(layout, path)[1] == path.stat().st_size > 0, path.name
    if warc:
        responses = {(p.name, r.offset): r.url for p in layout.warc_files() for r in read_warc(p)}
        for page in read_manifest(small_disk, "full"):
            if page["status"] is not None:
                assert responses[(page["warc"]["filename"], page["warc"]["offset"])] == page["url"]


async def test_a_disk_that_stays_full_fails_the_crawl(
    web: TestWeb, fault_settings: Settings, small_disk: Path
) -> None:
    """ENOSPC that does not mend: pages wait for room for storage_wait_s, then the crawl
    fails with the reason, its jobs dropped, where it waited for ever."""
    web.site = make_site(web.port, seed=11, pages_per_host=30, links_per_page=3)
    seeds = [web.url(h, "/p/0.html") for h in range(3)]
    settings = fault_settings.model_copy(update={"data_dir": small_disk, "storage_wait_s": 2})
    logs = fault_settings.data_dir / "logs"
    with LocalWorkers(settings, 1, logs):
        async with connected(settings.redis_url) as redis:
            await seed_crawl(redis, settings, CrawlSpec(crawl_id="full", seeds=seeds, depth=4))
        status = await wait_done(settings, "full", timeout=90)
    assert status.state is CrawlState.FAILED and status.counters.pending == 0
    assert (
        status.reason
        == f"storage: {small_disk / 'full'} cannot take files: No space left on device"
    )
    log = (logs / "worker-1.log").read_text()
    assert '"page handed back"' in log and '"crawl failed"' in log


async def test_a_sitemap_record_that_finds_no_room_waits_for_it(
    web: TestWeb, fault_settings: Settings, small_disk: Path
) -> None:
    """--warc --sitemaps on a full disk: a sitemap whose WARC record finds no room is handed
    back as a page is (not lost, not given up), and once there is room it is recorded whole,
    read and its page crawled."""
    root, listed = web.url(0, "/"), web.url(0, "/listed")
    # an XML comment of random text: a gzip body larger than the disk, incompressible
    noise = random.Random(5).randbytes(60 * 1024).hex().encode()
    sitemap = (
        b'<?xml version="1.0"?><!-- ' + noise + b" --><urlset xmlns="
        b'"http://www.sitemaps.org/schemas/sitemap/0.9"><url><loc>/listed</loc></url></urlset>'
    )
    big = gzip.compress(sitemap, mtime=0)
    assert len(big) > 48 * 1024
    web.site = Site({
        root: Page(), listed: Page(),
        web.url(0, "/robots.txt"): Page(content_type="text/plain",
                                        body=b"User-agent: *\nSitemap: /big.xml.gz\n"),
        web.url(0, "/big.xml.gz"): Page(content_type="application/x-gzip", body=big),
    })  # fmt: skip
    logs = fault_settings.data_dir / "logs"
    spec = CrawlSpec(crawl_id="smfull", seeds=[root], warc=True, sitemaps=True)
    status = await fill_then_enlarge(fault_settings, small_disk, spec, looks=300)
    assert status.state is CrawlState.DONE
    lines = [json.loads(line) for line in (logs / "worker-1.log").read_text().splitlines()]
    assert any(e["event"] == "page handed back" and e.get("url") == web.url(0, "/big.xml.gz")
               and "No space left" in e["reason"] for e in lines)  # fmt: skip
    assert not any(" lost, " in e["event"] for e in lines)  # handed back, no try lost
    assert (status.counters.sitemaps, status.counters.sitemap_urls) == (1, 1)
    assert status.counters.reasons == {}
    assert {r["url"] for r in read_manifest(small_disk, "smfull")} == {root, listed}
    layout = CrawlLayout(small_disk, "smfull")
    records = [r for path in layout.warc_files() for r in read_warc(path)]
    (response,) = [r for r in records if r.kind == "response" and r.url.endswith("/big.xml.gz")]
    assert response.payload == big
    for path in layout.warc_files():
        assert warcio_check(path).returncode == 0
        assert whole_records(layout, path)[1] == path.stat().st_size
