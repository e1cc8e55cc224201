"""Crawling again --since an earlier crawl: validators sent, 304s and same bodies recorded as
unchanged with the earlier body and links, new, changed, gone and unreached pages counted, WARC
revisits, and the errors of a --since that names no finished crawl."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from crawlfleet.scheduler.control import seed_crawl
from crawlfleet.scheduler.local import LocalWorkers
from crawlfleet.scheduler.readback import FinishedCrawl
from crawlfleet.shared.connections import connected
from crawlfleet.shared.crawl import CrawlSpec, CrawlState, CrawlStatus
from crawlfleet.shared.settings import Settings
from crawlfleet.shared.storage import CrawlLayout
from tests.support.crawling import crawl_in_process, read_manifest, wait_done
from tests.support.records import stored_records
from tests.support.testweb import Page, Site, TestWeb
from tests.support.warcs import read_warc, warcio_check

LAST_MODIFIED = "Wed, 02 Dec 2026 10:00:00 GMT"
DEPTH = 3


def first_site(web: TestWeb) -> dict[str, Page]:
    """The site of the first crawl: pages with an ETag, with a Last-Modified only, with no
    validator, a redirect, a text file; /a/child is reachable only through /a, /a/deep only
    through /a/child, both at the depth limit's edge; /d/old only through /d."""
    u: Callable[[str], str] = lambda path: web.url(0, path)  # noqa: E731
    hrefs = ["/a", "/b", "/c", "/d", "/e", "/f", "/go", "/file.txt"]
    return {
        u("/"): Page(etag='"root-1"', hrefs=hrefs),
        u("/a"): Page(etag='"a-1"', hrefs=["/a/child"]),
        u("/a/child"): Page(etag='"child-1"', hrefs=["/a/deep"]),
        u("/a/deep"): Page(hrefs=["/a/too-deep"]),
        u("/a/too-deep"): Page(),
        u("/b"): Page(last_modified=LAST_MODIFIED, hrefs=["/b/child"]),
        u("/b/child"): Page(last_modified=LAST_MODIFIED),
        u("/c"): Page(hrefs=["/"]),
        u("/d"): Page(etag='"d-1"', hrefs=["/", "/d/old"]),
        u("/d/old"): Page(),
        u("/e"): Page(etag='"e-1"'),
        u("/f"): Page(),
        u("/go"): Page(status=301, redirect_to=u("/c")),
        u("/file.txt"): Page(content_type="text/plain", etag='"file-1"'),
    }


def second_site(web: TestWeb, first: dict[str, Page]) -> dict[str, Page]:
    """The same site a while later: /d changed and links to a new page instead of /d/old (still
    served: unreached), /e is 404, /f 410."""
    u: Callable[[str], str] = lambda path: web.url(0, path)  # noqa: E731
    second = dict(first)
    second[u("/d")] = replace(first[u("/d")], etag='"d-2"', hrefs=["/", "/new"])
    second[u("/new")] = Page()
    second[u("/e")] = Page(status=404)
    second[u("/f")] = Page(status=410)
    return second


CHANGES = {
    "/": "unchanged",
    "/a": "unchanged",
    "/a/child": "unchanged",
    "/a/deep": "unchanged",
    "/b": "unchanged",
    "/b/child": "unchanged",
    "/c": "unchanged",
    "/go": "unchanged",
    "/file.txt": "unchanged",
    "/d": "changed",
    "/new": "new",
    "/e": "gone",
    "/f": "gone",
}
NOT_MODIFIED = {"/", "/a", "/a/child", "/b", "/b/child", "/file.txt"}


def by_path(web: TestWeb, records: list[dict[str, object]]) -> dict[str, dict[str, object]]:
    origin = web.url(0, "")
    return {str(r["url"]).removeprefix(origin): r for r in records}


def conditionals_since(web: TestWeb, mark: int) -> dict[str, tuple[str | None, str | None]]:
    """Per path, the (If-None-Match, If-Modified-Since) its request sent after ``mark``."""
    origin = web.url(0, "")
    return {
        url.removeprefix(origin): (inm, ims)
        for url, inm, ims in web.conditionals[mark:]
        if not url.endswith("/robots.txt")
    }


def answered_304(web: TestWeb, answers: int) -> set[str]:
    """The paths answered 304 after the first ``answers`` responses."""
    return {u.removeprefix(web.url(0, "")) for u, s in web.statuses[answers:] if s == 304}


def warc_records(settings: Settings, crawl_id: str, kind: str) -> list[Any]:
    """The records of ``kind`` in every WARC file of a crawl."""
    files = CrawlLayout(settings.data_dir, crawl_id).warc_files()
    return [r for path in files for r in read_warc(path) if r.kind == kind]


async def crawl_and_recrawl_in_process(
    web: TestWeb, settings: Settings, first_id: str, again_id: str, warc: bool
) -> tuple[dict[str, Page], CrawlSpec, CrawlStatus]:
    """The first site crawled as ``first_id``, then the second crawled ``--since`` it as
    ``again_id``, each by one in-process worker: the first site, the first spec and the
    second crawl's status."""
    site = first_site(web)
    web.site = Site(site)
    root = web.url(0, "/")
    first = CrawlSpec(crawl_id=first_id, seeds=[root], depth=DEPTH, allow_private=True, warc=warc)
    assert (await crawl_in_process(settings, first)).state is CrawlState.DONE
    web.site = Site(second_site(web, site))
    again = first.model_copy(update={"crawl_id": again_id, "since": first_id})
    status = await crawl_in_process(settings, again)
    assert status.state is CrawlState.DONE
    return site, first, status


async def crawl_twice_with_processes(
    web: TestWeb, settings: Settings, first: CrawlSpec, again: CrawlSpec, workers: int
) -> tuple[CrawlStatus, CrawlStatus, tuple[int, int]]:
    """Both crawls on the same ``workers`` worker processes, the site changed in between;
    the statuses and where the second crawl's requests start in ``web.conditionals`` and its
    answers in ``web.statuses``."""
    site = first_site(web)
    web.site = Site(site)
    with LocalWorkers(settings, workers, settings.data_dir / "logs"):
        async with connected(settings.redis_url) as redis:
            await seed_crawl(redis, settings, first)
        before = await wait_done(settings, first.crawl_id)
        web.site = Site(second_site(web, site))
        mark = len(web.conditionals), len(web.statuses)
        async with connected(settings.redis_url) as redis:
            await seed_crawl(redis, settings, again)
        after = await wait_done(settings, again.crawl_id)
    return before, after, mark


@pytest.mark.slow
async def test_a_recrawl_sends_validators_and_counts_each_change(
    web: TestWeb, settings: Settings
) -> None:
    """With 2 worker processes, a crawl --since an earlier one sends each page's ETag or
    Last-Modified back (nothing for pages without, nothing in the first crawl), records 304s
    and same bodies as unchanged, a new body as changed, a new URL as new and 404 / 410 as
    gone, counts them exactly (and /d/old, no longer linked, as unreached), and reaches every
    page at its depth of the first crawl, those only reachable through 304 pages too."""
    root = web.url(0, "/")
    first = CrawlSpec(crawl_id="first", seeds=[root], depth=DEPTH, allow_private=True)
    again = first.model_copy(update={"crawl_id": "again", "since": "first"})
    before, after, (mark, answers) = await crawl_twice_with_processes(
        web, settings, first, again, 2
    )
    assert before.state is after.state is CrawlState.DONE, (before.reason, after.reason)
    assert web.conditionals[:mark] and not any(
        inm or ims for _, inm, ims in web.conditionals[:mark]
    )

    sent = conditionals_since(web, mark)
    assert set(sent) == set(CHANGES)
    for path in ("/", "/a", "/a/child", "/file.txt", "/d", "/e"):
        etag = first_site(web)[web.url(0, path)].etag
        assert sent[path] == (etag, None), path
    assert sent["/b"] == sent["/b/child"] == (None, LAST_MODIFIED)
    for path in ("/a/deep", "/c", "/f", "/go", "/new"):
        assert sent[path] == (None, None), path
    assert answered_304(web, answers) == NOT_MODIFIED

    c = after.counters
    assert (c.new, c.changed, c.unchanged, c.gone, c.unreached) == (1, 1, 9, 2, 1)
    assert (c.fetched, c.failed) == (13, 0)
    assert (before.counters.new, before.counters.unchanged, before.counters.unreached) == (0, 0, 0)
    assert web.url(0, "/d/old") not in {u for u, _, _ in web.conditionals[mark:]}

    earlier = by_path(web, read_manifest(settings.data_dir, "first"))
    records = by_path(web, read_manifest(settings.data_dir, "again"))
    assert {p: r["change"] for p, r in records.items()} == CHANGES
    assert all(r["change"] is None for r in earlier.values())
    for path, record in records.items():
        if path in earlier:
            assert record["depth"] == earlier[path]["depth"], path
    assert (records["/a/child"]["depth"], records["/a/deep"]["depth"]) == (2, 3)
    assert (records["/new"]["depth"], records["/e"]["status"], records["/f"]["status"]) == (
        2,
        404,
        410,
    )
    for path in NOT_MODIFIED:
        record, was = records[path], earlier[path]
        assert record["status"] == 304, path
        for field in ("content_type", "length", "sha256", "etag", "last_modified"):
            assert record[field] == was[field], (path, field)
    assert "links" not in records["/"]


@pytest.mark.slow
async def test_an_unchanged_pages_body_is_the_earlier_crawls(
    web: TestWeb, settings: Settings
) -> None:
    """A 304 page's body file is a hard link of the earlier crawl's (same inode) that `cat`
    prints, and still prints once the earlier crawl is deleted (README: the linked files need
    no such care as a WARC revisit's); its record keeps the earlier record's links (before
    scope), and finalizing the first crawl wrote the index a recrawl looks records up in."""
    root = web.url(0, "/")
    first = CrawlSpec(crawl_id="first", seeds=[root], depth=DEPTH, allow_private=True)
    again = first.model_copy(update={"crawl_id": "again", "since": "first"})
    await crawl_twice_with_processes(web, settings, first, again, 1)
    assert (settings.data_dir / "first" / "pages.idx").is_file()
    old, new = (FinishedCrawl(settings.data_dir, c) for c in ("first", "again"))
    url = web.url(0, "/a")
    was, now = old.page(url), new.page(url)
    assert now.status == 304 and now.path is not None
    old_file, new_file = (
        settings.data_dir / c / str(r.path) for c, r in (("first", was), ("again", now))
    )
    assert new_file.stat().st_ino == old_file.stat().st_ino
    assert new.body(now) == old.body(was) == first_site(web)[url].render()
    data = str(settings.data_dir)
    shown = subprocess.run(
        [sys.executable, "-m", "crawlfleet.scheduler", "cat", "again", url, "--data-dir", data],
        capture_output=True, timeout=60, stdin=subprocess.DEVNULL, check=False,
    )  # fmt: skip
    assert shown.returncode == 0 and shown.stdout == first_site(web)[url].render()
    stored = [r for r in stored_records(settings.data_dir, "again") if r.url == url][-1]
    assert stored.links == ["/a/child"] and stored.link_urls() == [web.url(0, "/a/child")]
    shutil.rmtree(settings.data_dir / "first")
    shown = subprocess.run(
        [sys.executable, "-m", "crawlfleet.scheduler", "cat", "again", url, "--data-dir", data],
        capture_output=True, timeout=60, stdin=subprocess.DEVNULL, check=False,
    )  # fmt: skip
    assert shown.returncode == 0 and shown.stdout == first_site(web)[url].render()


async def test_a_crawl_of_an_older_crawlfleet_is_recrawled_by_digest(
    web: TestWeb, settings: Settings
) -> None:
    """A crawl finalized before page indexes, validators and links were kept: a recrawl
    makes its index from its manifest, sends no validator, and still tells each change, the
    unchanged pages by their bodies' digests, their links read again."""
    site = first_site(web)
    web.site = Site(site)
    first = CrawlSpec(crawl_id="old", seeds=[web.url(0, "/")], depth=DEPTH, allow_private=True)
    assert (await crawl_in_process(settings, first)).state is CrawlState.DONE
    layout = CrawlLayout(settings.data_dir, "old")
    layout.page_index.unlink()
    # as an older crawlfleet wrote it: a record file per page, without links or validators
    for record in stored_records(settings.data_dir, "old"):
        older = record.model_dump(mode="json", exclude={"links", "etag", "last_modified"})
        layout.write(
            layout.record_path(record.fingerprint, record.depth), json.dumps(older).encode()
        )
    shutil.rmtree(layout.records_dir)
    web.site = Site(second_site(web, site))
    mark = len(web.conditionals)
    again = first.model_copy(update={"crawl_id": "new", "since": "old"})
    status = await crawl_in_process(settings, again)
    assert status.state is CrawlState.DONE
    assert layout.page_index.is_file()
    assert not any(inm or ims for _, inm, ims in web.conditionals[mark:])
    c = status.counters
    assert (c.new, c.changed, c.unchanged, c.gone, c.unreached) == (1, 1, 9, 2, 1)
    records = by_path(web, read_manifest(settings.data_dir, "new"))
    assert {p: r["change"] for p, r in records.items()} == CHANGES


async def test_a_recrawl_follows_stored_links_in_its_own_scope(
    web: TestWeb, settings: Settings
) -> None:
    """Links are stored before scope: a first crawl that denied /a/child keeps the link in /a's
    record, and a recrawl without the deny, to which /a answers 304, fetches /a/child from it."""
    site = first_site(web)
    web.site = Site(site)
    root = web.url(0, "/")
    first = CrawlSpec(
        crawl_id="narrow", seeds=[root], depth=DEPTH, allow_private=True, deny=["/a/child"]
    )
    assert (await crawl_in_process(settings, first)).state is CrawlState.DONE
    assert web.url(0, "/a/child") not in {
        r["url"] for r in read_manifest(settings.data_dir, "narrow")
    }
    mark = len(web.statuses)
    wide = first.model_copy(update={"crawl_id": "wide", "since": "narrow", "deny": []})
    status = await crawl_in_process(settings, wide)
    assert status.state is CrawlState.DONE
    assert (web.url(0, "/a"), 304) in web.statuses[mark:]
    records = by_path(web, read_manifest(settings.data_dir, "wide"))
    assert records["/a/child"]["change"] == "new" and records["/a/child"]["depth"] == 2
    assert records["/a/deep"]["depth"] == 3


async def test_a_recrawl_with_warc_writes_revisit_records(web: TestWeb, settings: Settings) -> None:
    """With --warc, a 304 page is a revisit (server-not-modified) and a 200 with the same
    payload one too (identical-payload-digest), each referring to the earlier response record
    by id, URI, date and digest; `cat` gets their bodies from the earlier crawl, the index
    lists them as pywb does, and the files pass `warcio check`."""
    site, _, status = await crawl_and_recrawl_in_process(web, settings, "w1", "w2", warc=True)
    assert (status.counters.unchanged, status.counters.changed) == (9, 1)
    earlier = {r.url: r for r in warc_records(settings, "w1", "response")}
    revisits = {r.url: r for r in warc_records(settings, "w2", "revisit")}
    not_modified = {web.url(0, p) for p in NOT_MODIFIED}
    same_payload = {web.url(0, p) for p in ("/a/deep", "/c")}
    assert set(revisits) == not_modified | same_payload
    for url, revisit in revisits.items():
        h, was = revisit.warc_headers, earlier[url]
        profile = "server-not-modified" if url in not_modified else "identical-payload-digest"
        assert h["WARC-Profile"] == f"http://netpreserve.org/warc/1.1/revisit/{profile}"
        assert h["WARC-Refers-To"] == was.record_id
        assert h["WARC-Refers-To-Target-URI"] == url
        assert h["WARC-Refers-To-Date"] == was.warc_headers["WARC-Date"]
        assert h["WARC-Payload-Digest"] == was.warc_headers["WARC-Payload-Digest"]
        assert revisit.http_line is not None
        assert revisit.http_line.split()[1] == ("304" if url in not_modified else "200")
        assert revisit.payload == b""
    for path in CrawlLayout(settings.data_dir, "w2").warc_files():
        checked = warcio_check(path)
        assert checked.returncode == 0, checked.stdout + checked.stderr
    index = (settings.data_dir / "w2" / "index.cdxj").read_text()
    assert index.count('"mime": "warc/revisit"') == len(revisits)
    crawl = FinishedCrawl(settings.data_dir, "w2")
    for url in revisits:
        record = crawl.page(url)
        assert (
            record.path is None and record.body_in is not None and record.body_in.crawl_id == "w1"
        )
        assert crawl.body(record) == site[url].render()
    assert (
        crawl.body(crawl.page(web.url(0, "/d")))
        == second_site(web, site)[web.url(0, "/d")].render()
    )


async def test_a_crawl_since_a_crawl_its_workers_cannot_read_fails(
    web: TestWeb, settings: Settings
) -> None:
    """A crawl --since a crawl that is not in the workers' data directory (seeded past the
    CLI's check) fails with the reason, and fetches nothing."""
    web.site = Site(first_site(web))
    spec = CrawlSpec(
        crawl_id="orphan", seeds=[web.url(0, "/")], since="elsewhere", allow_private=True
    )
    status = await crawl_in_process(settings, spec)
    assert status.state is CrawlState.FAILED
    assert status.reason is not None and "--since elsewhere: no finished crawl" in status.reason
    assert web.requested() == []


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "crawlfleet.scheduler", *args],
        capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
        env={**os.environ, "CRAWLFLEET_LOG_FORMAT": "json", **(env or {})},
    )  # fmt: skip


def assert_one_line_error(result: subprocess.CompletedProcess[str], *words: str) -> None:
    assert result.returncode == 2, result
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), result.stderr
    for word in words:
        assert word in lines[0], lines[0]


def test_run_since_a_missing_crawl_is_one_line_exit_2(tmp_path: Path) -> None:
    """`run --since` a crawl that is not finished in the data directory stops before anything
    starts: one error line, exit 2; so does --since the crawl itself."""
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    data = tmp_path / "data"
    missing = cli("run", "http://127.0.0.2:9/", "--since", "nope", "--data-dir", str(data), env=env)
    assert_one_line_error(missing, "--since nope: no finished crawl 'nope'", str(data))
    assert not (data / ".redis").exists()
    itself = cli(
        "run", "http://127.0.0.2:9/", "--since", "x", "--crawl-id", "x", "--data-dir", str(data)
    )
    assert_one_line_error(itself, "--since x")


async def test_seed_since_a_crawl_that_is_not_done_is_one_line_exit_2(
    redis_url: str, settings: Settings, tmp_path: Path
) -> None:
    """`seed --since` a crawl Redis knows as running, or one neither Redis nor the data
    directory knows, is one error line, exit 2, and seeds nothing."""
    spec = CrawlSpec(crawl_id="live", seeds=["http://127.0.0.2:9/"])
    async with connected(redis_url) as redis:
        await seed_crawl(redis, settings, spec)
    env = {"CRAWLFLEET_DATA_DIR": str(tmp_path)}
    running = cli(
        "--redis-url", redis_url, "seed", "http://127.0.0.2:9/", "--since", "live", env=env
    )
    assert_one_line_error(running, "crawl 'live' is running, not done")
    unknown = cli(
        "--redis-url", redis_url, "seed", "http://127.0.0.2:9/", "--since", "gone", env=env
    )
    assert_one_line_error(unknown, "no finished crawl 'gone'", str(tmp_path))
    async with connected(redis_url) as redis:
        assert await redis.zcard("cf:crawls") == 1


@pytest.mark.slow
def test_summary_and_status_show_the_changes(web: TestWeb, tmp_path: Path) -> None:
    """`run --since` prints the changes in its summary, and `status` (table and JSON) shows
    them: the same counts as the crawl's counters, unreached pages too (0 for a crawl that is
    not --since another)."""
    site = first_site(web)
    web.site = Site(site)
    data = tmp_path / "cli-data"
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    root = web.url(0, "/")
    args = ["--depth", str(DEPTH), "--data-dir", str(data), "--workers", "1"]
    assert cli("run", root, "--crawl-id", "c1", *args, env=env).returncode == 0
    web.site = Site(second_site(web, site))
    done = cli("run", root, "--crawl-id", "c2", "--since", "c1", *args, env=env)
    assert done.returncode == 0, done.stderr
    summary = done.stdout.splitlines()
    at = next(i for i, line in enumerate(summary) if line.startswith("  pages "))
    assert summary[at + 1 : at + 4] == [
        "  changes   1 new, 1 changed, 9 unchanged, 2 gone, 1 unreached since c1",
        "  errors    1 http 404",
        "  errors    1 http 410",
    ]
    assert summary[at + 4].startswith("  files ")
    table = cli("status", "--data-dir", str(data), env=env)
    assert "c2: 1 new, 1 changed, 9 unchanged, 2 gone, 1 unreached since c1" in table.stdout
    shown = cli("status", "c2", "--json", "--data-dir", str(data), env=env)
    counters = json.loads(shown.stdout)["counters"]
    changes = [counters[k] for k in ("new", "changed", "unchanged", "gone", "unreached")]
    assert changes == [1, 1, 9, 2, 1]
    first = json.loads(cli("status", "c1", "--json", "--data-dir", str(data), env=env).stdout)
    assert first["counters"]["unreached"] == 0
    assert json.loads(shown.stdout)["spec"]["since"] == "c1"


@pytest.mark.parametrize("warc", [False, True])
async def test_a_recrawl_of_a_recrawl_revalidates_its_unchanged_pages(
    web: TestWeb, settings: Settings, warc: bool
) -> None:
    """A crawl --since a recrawl sends the validators its 304 records kept and records the
    answers as unchanged, not fetched in full every other time: bodies are still the first
    crawl's (with --warc, the revisit refers to the response record that holds the body, never
    to a revisit)."""
    site, first, _ = await crawl_and_recrawl_in_process(web, settings, "r1", "r2", warc)
    mark, answers = len(web.conditionals), len(web.statuses)
    third = first.model_copy(update={"crawl_id": "r3", "since": "r2"})
    status = await crawl_in_process(settings, third)
    assert status.state is CrawlState.DONE

    revalidated = NOT_MODIFIED | {"/d"}  # /d changed in r2, the same since
    sent = conditionals_since(web, mark)
    for path in revalidated:
        assert sent[path] != (None, None), path
    assert answered_304(web, answers) == revalidated
    records = by_path(web, read_manifest(settings.data_dir, "r3"))
    assert {p for p, r in records.items() if r["change"] == "unchanged"} >= revalidated
    crawl, served = FinishedCrawl(settings.data_dir, "r3"), second_site(web, site)
    for path in revalidated:
        url = web.url(0, path)
        assert crawl.body(crawl.page(url)) == served[url].render(), path
    if warc:
        responses = {
            r.record_id
            for crawl_id in ("r1", "r2")
            for r in warc_records(settings, crawl_id, "response")
        }
        for r in warc_records(settings, "r3", "revisit"):
            assert r.warc_headers["WARC-Refers-To"] in responses, r.url
