"""Hostile pages and servers: the worker stays up, memory stays bounded, each is recorded."""

from __future__ import annotations

import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest

from crawlfleet.shared.crawl import CrawlSpec, CrawlState
from crawlfleet.shared.failures import FailureKind
from crawlfleet.shared.settings import Settings
from crawlfleet.shared.urls import ScopeRule
from crawlfleet.workers.fetch import fetch, make_client
from crawlfleet.workers.follow import followable_links
from crawlfleet.workers.links import extract_hrefs
from tests.support.crawling import crawl_in_process, read_manifest
from tests.support.hostile import DEEP_LEVELS, MANY_LINKS, HostileWeb

CAP = 1024 * 1024


@pytest.fixture
def hostile() -> Iterator[HostileWeb]:
    with HostileWeb() as web:
        yield web


@pytest.fixture
def tight(settings: Settings) -> Settings:
    return settings.model_copy(
        update={"max_page_bytes": CAP, "total_timeout": 2.0, "read_timeout": 1.0}
    )


async def fetch_measured(url: str, settings: Settings) -> tuple[object, int, float]:
    """Fetch ``url``; returns the result, the peak Python memory of the fetch, its seconds."""
    async with make_client(settings) as client:
        tracemalloc.start()
        began = time.monotonic()
        try:
            result = await fetch(client, url, settings)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    return result, peak, time.monotonic() - began


async def test_slowloris_times_out(hostile: HostileWeb, tight: Settings) -> None:
    """Bytes trickled forever: the fetch ends at the total timeout with reason timeout."""
    result, peak, took = await fetch_measured(hostile.url("/slowloris"), tight)
    assert result.error.kind is FailureKind.TIMEOUT  # type: ignore[attr-defined]
    # without the deadline the body trickles until the server stops: a generous margin still
    # tells the two apart on a loaded machine
    assert took < tight.total_timeout + 15
    assert peak < 2 * CAP, f"peak {peak} bytes"


@pytest.mark.parametrize("path", ["/endless", "/huge-length"])
async def test_endless_and_lying_bodies_are_capped(
    hostile: HostileWeb, tight: Settings, path: str
) -> None:
    """An endless body or a 2 GB Content-Length: cut at the cap, marked truncated."""
    result, peak, _ = await fetch_measured(hostile.url(path), tight)
    assert result.status == 200 and result.truncated  # type: ignore[attr-defined]
    assert len(result.body) == CAP  # type: ignore[attr-defined]
    assert peak < 4 * CAP, f"peak {peak} bytes"


async def test_gzip_bomb_is_inflated_only_up_to_the_cap(
    hostile: HostileWeb, tight: Settings
) -> None:
    """A 64 MiB gzip bomb: inflated up to the cap only, never whole in memory."""
    result, peak, _ = await fetch_measured(hostile.url("/gzip-bomb"), tight)
    assert result.status == 200 and result.truncated  # type: ignore[attr-defined]
    assert len(result.body) == CAP  # type: ignore[attr-defined]
    assert peak < 4 * CAP, f"peak {peak} bytes"  # measured: about 2.2 MiB for a 1 MiB cap


async def test_broken_gzip_is_a_recorded_failure(hostile: HostileWeb, tight: Settings) -> None:
    """A body that claims gzip but is not: a decoding failure, not a crash."""
    result, _, _ = await fetch_measured(hostile.url("/bad-gzip"), tight)
    assert result.error.kind is FailureKind.DECODING  # type: ignore[attr-defined]


async def test_redirect_with_an_endless_body_is_not_read(
    hostile: HostileWeb, tight: Settings
) -> None:
    """A 302 whose body never ends: its target is reported, its body never read."""
    result, peak, _ = await fetch_measured(hostile.url("/redirect-endless"), tight)
    assert result.error is None, result.error  # type: ignore[attr-defined]
    assert result.status == 302 and result.redirect.endswith("/dots")  # type: ignore[attr-defined]
    assert result.body == b""  # type: ignore[attr-defined]
    assert peak < 4 * CAP, f"peak {peak} bytes"


@pytest.mark.parametrize("path", ["/to-ftp", "/to-js"])
async def test_redirect_to_another_scheme_fails(
    hostile: HostileWeb, tight: Settings, path: str
) -> None:
    """A redirect to ftp: or javascript: is recorded as a failure with the reason."""
    result, _, _ = await fetch_measured(hostile.url(path), tight)
    assert result.status is None and result.error is not None  # type: ignore[attr-defined]
    kinds = (FailureKind.UNSUPPORTED_PROTOCOL, FailureKind.INVALID_URL)
    assert result.error.kind in kinds  # type: ignore[attr-defined]


def test_deeply_nested_html_yields_its_links() -> None:
    """100,000 nested <div>s: the link at the bottom is found, no recursion error."""
    html = b"<html><body>" + b"<div>" * DEEP_LEVELS + b'<a href="/bottom">x</a>'
    assert extract_hrefs(html, "http://h/") == ["http://h/bottom"]


def test_many_links_are_capped() -> None:
    """100,000 links on one page: at most the per-page limit is followed, in document order."""
    html = "".join(f'<a href="/l/{i}">.</a>' for i in range(MANY_LINKS)).encode()
    links = followable_links(extract_hrefs(html, "http://h/"), ScopeRule("any", []), 5000)
    assert len(links) == 5000 and links[0] == "http://h/l/0" and links[-1] == "http://h/l/4999"


async def test_hostile_site_crawl_completes(hostile: HostileWeb, tight: Settings) -> None:
    """A crawl meeting every hostile page completes; each page is recorded with its reason;
    a calendar trap stops at the depth limit; nothing is written outside the crawl folder."""
    # the 100,000-link page's parse shares the two cores with the fetches beside it: leave
    # them time to finish on a loaded machine
    settings = tight.model_copy(update={"max_links_per_page": 5000, "total_timeout": 6.0})
    root = hostile.url("/tricky")
    paths = ["/slowloris", "/endless", "/huge-length", "/gzip-bomb", "/bad-gzip", "/to-ftp",
             "/deep", "/many-links"]  # fmt: skip
    spec = CrawlSpec(crawl_id="hostile", seeds=[root, *map(hostile.url, paths)], depth=3,
                     scope="host", retries=0, obey_robots=False)  # fmt: skip
    status = await crawl_in_process(settings, spec)
    assert status.state is CrawlState.DONE
    records = {r["url"]: r for r in read_manifest(settings.data_dir, "hostile")}
    assert records[hostile.url("/slowloris")]["error"].startswith("timeout")
    assert records[hostile.url("/gzip-bomb")]["truncated"] is True
    assert records[hostile.url("/endless")]["length"] == CAP
    assert records[hostile.url("/to-ftp")]["error"].startswith("unsupported protocol")
    assert records[hostile.url("/deep-link")]["depth"] == 1
    many = [u for u in records if "/m/" in u]
    assert len(many) == 5000
    # the calendar trap: /calendar/0 at depth 1 (from the upper-case link), then 2 and 3 more
    assert sorted(u for u in records if "/calendar/" in u) == [
        hostile.url(f"/calendar/{m}") for m in range(3)
    ]
    assert hostile.url("/dots") in records  # /x/%2e%2e/dots is /dots
    assert all(len(u) <= 2048 for u in records)
    assert not any("\x00" in u for u in records)
    outside = [p for p in Path(settings.data_dir).iterdir() if p.name != "hostile"]
    assert outside == []


async def test_a_calendar_trap_ends_at_the_host_page_budget(
    hostile: HostileWeb, tight: Settings
) -> None:
    """A trap of endless next months, crawled 1,000 deep: the host's page budget ends it, the
    month past the budget counted as capped, never fetched."""
    spec = CrawlSpec(crawl_id="trap", seeds=[hostile.url("/calendar/0")], depth=1000,
                     max_pages_per_host=25, obey_robots=False)  # fmt: skip
    status = await crawl_in_process(tight, spec)
    assert status.state is CrawlState.DONE
    assert status.counters.fetched == 25 and status.counters.capped == 1
    records = {r["url"] for r in read_manifest(tight.data_dir, "trap")}
    assert records == {hostile.url(f"/calendar/{m}") for m in range(25)}
