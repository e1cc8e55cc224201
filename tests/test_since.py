"""A crawl --since another, unit by unit: what a fetch is against the earlier record, which
validators are sent, and how long a worker keeps an earlier crawl open."""

from __future__ import annotations

import contextlib
import hashlib
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from crawlfleet.shared.crawl import CrawlSpec
from crawlfleet.shared.errors import EarlierMissing
from crawlfleet.shared.failures import Failure, FailureKind
from crawlfleet.shared.page_index import write_page_index
from crawlfleet.shared.settings import Settings
from crawlfleet.shared.storage import CrawlLayout, PageRecord, manifest_line
from crawlfleet.shared.urls import fingerprint
from crawlfleet.workers.fetch import FetchResult
from crawlfleet.workers.record_logs import RecordLogs
from crawlfleet.workers.since import EarlierCrawl, EarlierCrawls, EarlierPage, against

URL = "http://h.test/page"
BODY = b"<html>same</html>"
SHA = hashlib.sha256(BODY).hexdigest()


def record(url: str = URL, status: int | None = 200, **kw: object) -> PageRecord:
    values: dict[str, object] = {
        "url": url, "final_url": url, "depth": 1, "parent": None, "status": status,
        "content_type": "text/html", "length": len(BODY), "sha256": SHA,
        "fetched_at": datetime.now(UTC), "duration_ms": 1, "path": None,
        "fingerprint": fingerprint(url), "worker": "w", "links": [], **kw,
    }  # fmt: skip
    return PageRecord.model_validate(values)


def finished(data: Path, crawl_id: str, records: list[PageRecord], bodies: bool = True) -> None:
    """A finished crawl on disk: body files, record log, manifest, index."""
    layout = CrawlLayout(data, crawl_id)
    kept = []
    with RecordLogs(Settings(data_dir=data, worker_id="w")) as logs:
        for r in records:
            if bodies and r.status is not None:
                path = layout.body_path(r.fingerprint, r.depth, r.content_type)
                layout.write(path, BODY)
                r = r.model_copy(update={"path": path.relative_to(layout.root).as_posix()})
            kept.append((r, logs.append(layout, r)))
    layout.write(layout.manifest, b"".join(manifest_line(r) for r, _ in kept))
    write_page_index(layout, kept)


def result(status: int | None, body: bytes = BODY, redirect: str | None = None) -> FetchResult:
    return FetchResult(
        url=URL, final_url=URL, status=status, content_type="text/html", body=body,
        truncated=False, error=None if status else Failure(FailureKind.CONNECT, "refused"),
        duration_ms=1,
        redirect=redirect,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("earlier_status", "status", "validated", "body", "change"),
    [
        (200, 304, True, b"", "unchanged"),
        (200, 200, False, BODY, "unchanged"),
        (200, 200, True, b"other", "changed"),
        (None, 200, False, BODY, "new"),
        (404, 200, False, BODY, "new"),
        (200, 404, False, b"", "gone"),
        (301, 410, False, b"", "gone"),
        (404, 404, False, b"", None),
        (200, 500, False, b"", None),
        (200, None, False, b"", None),
        (200, 304, False, b"", "changed"),
    ],
)
def test_a_fetch_against_the_earlier_record(
    tmp_path: Path, earlier_status: int | None, status: int | None, validated: bool,
    body: bytes, change: str | None,
) -> None:  # fmt: skip
    """304 to validators or the same body: unchanged; another body: changed; a response below
    400 where the earlier crawl had none: new; 404/410 where it had one: gone; the rest none."""
    finished(tmp_path, "e", [])
    crawl = EarlierCrawl(tmp_path, "e")
    earlier = None
    if earlier_status is not None:
        earlier = EarlierPage(
            crawl, record(status=earlier_status, sha256=hashlib.sha256(BODY).hexdigest())
        )
    got = result(status, body)
    sha = hashlib.sha256(body).hexdigest() if status else None
    assert against(got, earlier, validated, sha).change == change
    crawl.close()


def test_a_redirect_is_unchanged_while_it_points_to_the_same_target(tmp_path: Path) -> None:
    """A redirect is compared by its target."""
    finished(tmp_path, "e", [])
    crawl = EarlierCrawl(tmp_path, "e")
    earlier = EarlierPage(crawl, record(status=301, redirect="http://h.test/a", sha256=None))
    same = result(301, b"", redirect="http://h.test/a")
    other = result(302, b"", redirect="http://h.test/b")
    assert against(same, earlier, False, SHA).change == "unchanged"
    assert against(other, earlier, False, SHA).change == "changed"
    crawl.close()


def test_validators_only_where_a_304_leaves_nothing_missing(tmp_path: Path) -> None:
    """ETag and Last-Modified are sent for a 2xx page whose record kept its links and whose
    body is still there; not for one without links (an older crawl's), nor one whose body
    file is gone unless the new crawl does not store its type."""
    pages = [
        record("http://h.test/both", etag='"e1"', last_modified="Wed, 02 Dec 2026 10:00:00 GMT"),
        record("http://h.test/nolinks", etag='"e2"', links=None),
        record("http://h.test/gone-body", etag='"e3"'),
        record("http://h.test/none"),
        record("http://h.test/missing", status=404, etag='"e4"'),
    ]
    finished(tmp_path, "e", pages)
    layout = CrawlLayout(tmp_path, "e")
    lost = fingerprint("http://h.test/gone-body")
    layout.body_path(lost, 1, "text/html").unlink()
    crawl = EarlierCrawl(tmp_path, "e")
    spec = CrawlSpec(crawl_id="n", seeds=[URL], since="e")
    sent = {p.url: crawl.validators(crawl.page(p.url), spec) for p in pages}
    assert sent["http://h.test/both"] == {
        "If-None-Match": '"e1"',
        "If-Modified-Since": "Wed, 02 Dec 2026 10:00:00 GMT",
    }
    assert sent["http://h.test/nolinks"] == sent["http://h.test/gone-body"] == {}
    assert sent["http://h.test/none"] == sent["http://h.test/missing"] == {}
    only_text = spec.model_copy(update={"content_types": ["text/plain"]})
    gone = crawl.page("http://h.test/gone-body")
    assert crawl.validators(gone, only_text) == {"If-None-Match": '"e3"'}
    assert crawl.page("http://h.test/never") is None
    crawl.close()


def test_a_sitemap_lastmod_spares_a_request_only_where_a_304_would_do(tmp_path: Path) -> None:
    """A lastmod no later than the earlier fetch (to the second, rounded up) takes a page as
    unchanged without a request, with or without validators, where a 304 would leave nothing
    missing; a later lastmod, none, a page without links, gone body, error status or no
    earlier record does not."""
    fetched = datetime(2026, 12, 2, 10, 0, 0, 250000, tzinfo=UTC)
    pages = [
        record("http://h.test/etag", etag='"e1"', fetched_at=fetched),
        record("http://h.test/none", fetched_at=fetched),
        record("http://h.test/nolinks", links=None, fetched_at=fetched),
        record("http://h.test/gone-body", fetched_at=fetched),
        record("http://h.test/missing", status=404, fetched_at=fetched),
    ]
    finished(tmp_path, "e", pages)
    layout = CrawlLayout(tmp_path, "e")
    layout.body_path(fingerprint("http://h.test/gone-body"), 1, "text/html").unlink()
    crawl = EarlierCrawl(tmp_path, "e")
    spec = CrawlSpec(crawl_id="n", seeds=[URL], since="e")
    at = int(fetched.timestamp())  # 10:00:00, a quarter second before the fetch

    def by(url: str, lastmod_s: int | None) -> datetime | None:
        return crawl.unchanged_by(crawl.page(url), lastmod_s, spec)

    assert by("http://h.test/etag", at) == datetime(2026, 12, 2, 10, 0, 0, tzinfo=UTC)
    assert by("http://h.test/none", at - 86_400) is not None
    assert by("http://h.test/etag", at + 1) is None
    assert by("http://h.test/etag", None) is None
    for url in ("http://h.test/nolinks", "http://h.test/gone-body", "http://h.test/missing"):
        assert by(url, at - 86_400) is None, url
    assert by("http://h.test/never", at) is None
    only_text = spec.model_copy(update={"content_types": ["text/plain"]})
    gone = crawl.page("http://h.test/gone-body")
    assert crawl.unchanged_by(gone, at, only_text) is not None
    crawl.close()


def open_fds(folder: Path) -> int:
    """This process's descriptors open on ``folder`` or below it (others come and go with
    whatever else the test process runs)."""
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            target = os.readlink(f"/proc/self/fd/{fd}")
            count += target == str(folder) or target.startswith(f"{folder}/")
    return count


async def test_an_idle_earlier_crawl_is_closed(tmp_path: Path) -> None:
    """A worker keeps an earlier crawl (its index and folders) open while jobs ask for it,
    and closes it once none has for longer than a job may take."""
    finished(tmp_path, "e1", [record()])
    finished(tmp_path, "e2", [record()])
    crawls = EarlierCrawls(tmp_path, idle_s=100)
    before = open_fds(tmp_path)
    first = await crawls.get("e1", now=0)
    assert first.page(URL) is not None and open_fds(tmp_path) > before
    assert await crawls.get("e1", now=90) is first
    await crawls.get("e2", now=150)
    assert crawls.open == ["e1", "e2"]
    await crawls.get("e2", now=191)
    assert crawls.open == ["e2"]
    crawls.close()
    assert crawls.open == [] and open_fds(tmp_path) == before
    with pytest.raises(EarlierMissing, match="--since nope: no finished crawl 'nope'"):
        await crawls.get("nope")
