"""The bucket folders a worker keeps open per crawl for its bodies: opened once, made again if
removed while open, closed with the crawl's record log."""

from __future__ import annotations

import os
import shutil

from crawlfleet.shared.settings import Settings
from crawlfleet.shared.storage import CrawlLayout, PageRecord
from crawlfleet.workers.body_folders import BodyFolders
from crawlfleet.workers.fetch import FetchResult
from crawlfleet.workers.frontier import PageJob
from crawlfleet.workers.record_logs import RecordLogs
from crawlfleet.workers.store import store_page

SITE = "http://example.org"


def _store(logs: RecordLogs, layout: CrawlLayout, path: str, body: bytes) -> PageRecord:
    url = SITE + path
    result = FetchResult(url=url, final_url=url, status=200, content_type="text/html",
                         body=body, truncated=False, error=None, duration_ms=1)  # fmt: skip
    return store_page(layout, logs, PageJob(layout.root.name, url, 0, None), result, "w1")


def test_a_bucket_is_opened_once_per_crawl(settings: Settings) -> None:
    """A crawl's bucket is opened (and made) on first use, then the same descriptor serves
    every body of it; another crawl's bucket of the same name is its own."""
    one, two = CrawlLayout(settings.data_dir, "c1"), CrawlLayout(settings.data_dir, "c2")
    folders = BodyFolders()
    try:
        fd = folders.bucket(one, "ab12")
        assert folders.bucket(one, "ab34") == fd
        assert (one.pages / "ab").is_dir()
        assert folders.bucket(two, "ab12") != fd
        assert folders.open == [one.root, two.root]
        folders.drop(one.root)
        assert folders.open == [two.root]
    finally:
        folders.close()
    assert folders.open == []


def test_a_bucket_removed_while_open_is_made_again(settings: Settings) -> None:
    """A crawl folder removed while a worker held its buckets open: the next body goes to its
    bucket made anew in the crawl's folder, where its record says, not to the removed one."""
    layout = CrawlLayout(settings.data_dir, "c1")
    with RecordLogs(settings) as logs:
        _store(logs, layout, "/", b"first")
        shutil.rmtree(layout.root)
        again = _store(logs, layout, "/", b"again")
    assert again.path is not None and (layout.root / again.path).read_bytes() == b"again"


def test_buckets_close_with_the_crawls_log(settings: Settings) -> None:
    """A crawl's buckets are closed when its log is: once idle past twice the job timeout,
    and when the logs close; no descriptor of them is left."""
    one, two = CrawlLayout(settings.data_dir, "c1"), CrawlLayout(settings.data_dir, "c2")
    before = len(os.listdir("/proc/self/fd"))
    now = [0.0]
    with RecordLogs(settings, clock=lambda: now[0]) as logs:
        first = _store(logs, one, "/a", b"a")
        assert logs.bodies.open == [one.root]
        now[0] = 2 * settings.job_timeout_s + 1
        logs.append(two, first.model_copy(update={"url": SITE + "/b"}))
        assert logs.bodies.open == []
        _store(logs, one, "/c", b"c")
        assert logs.bodies.open == [one.root]
    assert logs.bodies.open == []
    assert len(os.listdir("/proc/self/fd")) == before
