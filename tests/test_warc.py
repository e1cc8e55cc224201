"""WARC output of a crawl: records, pairs, payloads as served, rotation, repair, the index."""

from __future__ import annotations

import io
import json
from functools import partial
from pathlib import Path

import pytest
from redis.asyncio import Redis
from warcio.archiveiterator import ArchiveIterator

from crawlfleet.shared.crawl import CrawlSpec, CrawlState
from crawlfleet.shared.keys import CrawlKeys
from crawlfleet.shared.settings import Settings
from crawlfleet.shared.storage import CrawlLayout
from crawlfleet.shared.warc_index import repair, surt_key, whole_records, write_index
from crawlfleet.workers.fetch import make_client
from crawlfleet.workers.metrics import WorkerMetrics
from crawlfleet.workers.robots import RobotsCache
from crawlfleet.workers.turns import FetchTurns
from crawlfleet.workers.warc import IN_LOOP_BYTES, SERVER_NOT_MODIFIED, RefersTo, WarcWriters
from tests.support.crawling import crawl_in_process, read_manifest
from tests.support.records import stored_records
from tests.support.testweb import Page, Site, TestWeb
from tests.support.warcs import CAP, WarcRecord, read_warc, warc_site, warcio_check


def warc_records(settings: Settings, crawl_id: str) -> list[WarcRecord]:
    layout = CrawlLayout(settings.data_dir, crawl_id)
    return [r for path in layout.warc_files() for r in read_warc(path)]


async def warc_crawl(web: TestWeb, settings: Settings, crawl_id: str = "wa") -> dict[str, bytes]:
    seed, served = warc_site(web)
    spec = CrawlSpec(crawl_id=crawl_id, seeds=[seed], depth=1, warc=True, max_bytes_per_page=CAP)
    status = await crawl_in_process(settings, spec)
    assert status.state is CrawlState.DONE
    return served


def header(record: WarcRecord, name: str) -> str | None:
    return next((v for k, v in record.http_headers if k.lower() == name.lower()), None)


async def test_every_file_passes_warcio_check_and_opens_with_warcinfo(
    web: TestWeb, settings: Settings
) -> None:
    """Each WARC file of the crawl passes `warcio check`, is whole to its last byte and opens
    with a warcinfo record naming the software and the crawl."""
    await warc_crawl(web, settings)
    layout = CrawlLayout(settings.data_dir, "wa")
    files = layout.warc_files()
    assert files and all(f.name.endswith(".warc.gz") for f in files)
    for path in files:
        checked = warcio_check(path)
        assert checked.returncode == 0, checked.stdout + checked.stderr
        assert "digest pass" in checked.stdout
        assert whole_records(layout, path)[1] == path.stat().st_size
        first = read_warc(path)[0]
        assert first.kind == "warcinfo" and first.warc_headers["WARC-Filename"] == path.name
        assert b"software: crawlfleet/" in first.payload and b"isPartOf: wa" in first.payload
        assert first.warc_headers["WARC-Type"] == "warcinfo"
        assert read_warc(path)[0].warc_headers.get("WARC-Date")
    assert all(r.warc_headers.get("WARC-Date") for r in warc_records(settings, "wa"))


async def test_each_page_has_one_response_paired_with_its_request(
    web: TestWeb, settings: Settings
) -> None:
    """Every manifest page that got a response has exactly one response record of its URL,
    and one request record (the request line and headers as sent) concurrent to it; the page
    record points at that response record."""
    await warc_crawl(web, settings)
    records = warc_records(settings, "wa")
    manifest = read_manifest(settings.data_dir, "wa")
    layout = CrawlLayout(settings.data_dir, "wa")
    answered = [m for m in manifest if m["status"] is not None]
    assert {m["status"] for m in answered} >= {200, 301, 404}
    for page in answered:
        responses = [r for r in records if r.kind == "response" and r.url == page["url"]]
        assert len(responses) == 1, page["url"]
        response = responses[0]
        assert response.http_status == str(page["status"])
        requests = [
            r for r in records
            if r.kind == "request" and r.warc_headers["WARC-Concurrent-To"] == response.record_id
        ]  # fmt: skip
        assert len(requests) == 1 and requests[0].url == page["url"]
        request = requests[0]
        path = page["url"].split(str(web.port), 1)[1]
        assert request.http_line == f"GET {path} HTTP/1.1"
        assert header(request, "host") == f"127.0.0.2:{web.port}"
        assert header(request, "user-agent") == settings.user_agent
        assert request.warc_headers["WARC-Date"] == response.warc_headers["WARC-Date"]
        for name in ("WARC-Block-Digest", "WARC-Payload-Digest"):
            assert response.warc_headers[name].startswith("sha1:")
        ref = page["warc"]
        assert (ref["filename"], ref["offset"], ref["length"]) == (
            response.file, response.offset, response.length,
        )  # fmt: skip
        assert layout.warc_path(ref["filename"]).is_file()


async def test_payloads_are_the_bytes_served(web: TestWeb, settings: Settings) -> None:
    """Response payloads are the bodies as the server sent them: gzip-coded still, chunks
    undone (Transfer-Encoding masked), cut at the size cap with WARC-Truncated, each with the
    server's address; no body files are written beside the records."""
    served = await warc_crawl(web, settings)
    responses = {r.url: r for r in warc_records(settings, "wa") if r.kind == "response"}
    u = lambda path: web.url(0, path)  # noqa: E731
    for url in (u("/"), u("/a"), u("/gz"), u("/chunked"), u("/file.txt")):
        assert responses[url].payload == served[url], url
        assert "WARC-Truncated" not in responses[url].warc_headers
        assert responses[url].warc_headers["WARC-IP-Address"] == "127.0.0.2"
    gz = responses[u("/gz")]
    assert header(gz, "Content-Encoding") == "gzip"
    assert header(gz, "Content-Length") == str(len(served[u("/gz")]))
    chunked = responses[u("/chunked")]
    assert header(chunked, "Transfer-Encoding") is None
    assert header(chunked, "X-Crawler-Transfer-Encoding") == "chunked"
    big = responses[u("/big")]
    assert big.payload == served[u("/big")][:CAP]
    assert big.warc_headers["WARC-Truncated"] == "length"
    assert header(big, "Content-Length") is None
    assert header(big, "X-Crawler-Content-Length") == str(CAP * 3)
    moved = responses[u("/moved")]
    assert moved.http_status == "301" and header(moved, "Location") == u("/a")
    # with --warc the bodies are in the WARC files only, the records in the record logs (no
    # pages folder at all); the records keep the headers
    root = settings.data_dir / "wa"
    assert not (root / "pages").exists() and list((root / "records").glob("*.jsonl.gz"))
    records = {m["url"]: m for m in read_manifest(settings.data_dir, "wa")}
    assert ["Content-Encoding", "gzip"] in records[u("/gz")]["headers"]
    assert all(m["path"] is None for m in records.values())


async def test_index_lines_are_sorted_and_point_at_their_records(
    web: TestWeb, settings: Settings
) -> None:
    """index.cdxj has one line per response record, sorted, each naming the file, offset and
    length of a response record of its URL, with its status, mime and payload digest."""
    await warc_crawl(web, settings)
    layout = CrawlLayout(settings.data_dir, "wa")
    lines = layout.index.read_text().splitlines()
    assert lines == sorted(lines)
    responses = [r for r in warc_records(settings, "wa") if r.kind == "response"]
    assert len(lines) == len(responses)
    for line in lines:
        key, date, fields = line.split(" ", 2)
        entry = json.loads(fields)
        assert key == surt_key(entry["url"]) and key.startswith("2,0,0,127:")
        assert len(date) == 14 and date.isdigit()
        with layout.warc_path(entry["filename"]).open("rb") as stream:
            stream.seek(int(entry["offset"]))
            member = stream.read(int(entry["length"]))
        record = next(iter(ArchiveIterator(io.BytesIO(member))))
        assert record.rec_type == "response"
        assert record.rec_headers.get_header("WARC-Target-URI") == entry["url"]
        assert record.http_headers.get_statuscode() == entry["status"]
        digest = record.rec_headers.get_header("WARC-Payload-Digest")
        assert digest == f"sha1:{entry['digest']}"
    mimes = {json.loads(line.split(" ", 2)[2])["mime"] for line in lines}
    assert {"text/html", "text/plain"} <= mimes


async def test_large_bodies_and_headers_are_recorded_and_indexed(
    web: TestWeb, settings: Settings
) -> None:
    """A body larger than what is recorded in the event loop (it goes to the WARC thread)
    beside small ones in the same file, and a response whose headers are larger than what the
    index reads of a record: each payload is the bytes served, the file passes `warcio
    check`, and the index gives each its status, mime and place."""
    big = bytes(range(256)) * (IN_LOOP_BYTES // 256 + 100)
    many = {f"X-Filler-{n}": "v" * 4000 for n in range(20)}  # 80 KB of headers
    u = lambda path: web.url(0, path)  # noqa: E731
    web.site = Site(
        {
            u("/"): Page(hrefs=["/big", "/headers", "/small"]),
            u("/big"): Page(content_type="application/octet-stream", body=big),
            u("/headers"): Page(status=404, headers=many),
            u("/small"): Page(content_type="text/plain", body=b"small\n"),
        }
    )
    spec = CrawlSpec(crawl_id="lg", seeds=[u("/")], depth=1, warc=True)
    assert (await crawl_in_process(settings, spec)).state is CrawlState.DONE
    layout = CrawlLayout(settings.data_dir, "lg")
    (path,) = layout.warc_files()
    checked = warcio_check(path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    responses = {r.url: r for r in read_warc(path) if r.kind == "response"}
    assert responses[u("/big")].payload == big
    assert responses[u("/small")].payload == b"small\n"
    assert header(responses[u("/headers")], "X-Filler-19") == "v" * 4000
    indexed = {
        entry["url"]: entry
        for entry in (
            json.loads(line.split(" ", 2)[2]) for line in layout.index.read_text().splitlines()
        )
    }
    assert (indexed[u("/big")]["mime"], indexed[u("/big")]["status"]) == (
        "application/octet-stream",
        "200",
    )
    assert (indexed[u("/headers")]["mime"], indexed[u("/headers")]["status"]) == (
        "text/html",
        "404",
    )
    records = {r["url"]: r for r in read_manifest(settings.data_dir, "lg")}
    for url, response in responses.items():
        if url in records:
            assert records[url]["warc"]["offset"] == response.offset
            assert indexed[url]["offset"] == str(response.offset)


async def test_files_rotate_at_the_size_limit(web: TestWeb, settings: Settings) -> None:
    """Past CRAWLFLEET_WARC_MAX_BYTES a worker starts its next file (sequence + 1), each
    opening with warcinfo and holding whole request/response pairs."""
    small = settings.model_copy(update={"warc_max_bytes": 3000})
    await warc_crawl(web, small, "rot")
    files = CrawlLayout(small.data_dir, "rot").warc_files()
    assert len(files) >= 3
    assert [f.name[-14:-8] for f in files] == [f"-{n:05d}" for n in range(len(files))]
    for path in files:
        assert warcio_check(path).returncode == 0
        records = read_warc(path)
        assert records[0].kind == "warcinfo"
        ids = {r.record_id for r in records if r.kind == "response"}
        concurrent = {r.warc_headers["WARC-Concurrent-To"] for r in records if r.kind == "request"}
        assert ids == concurrent, path.name  # no pair split across files


async def test_without_warc_the_page_files_stay_and_keep_headers(
    web: TestWeb, settings: Settings
) -> None:
    """A crawl without --warc writes body files as before and no WARC file or index; its
    records keep the response headers too."""
    seed, served = warc_site(web)
    spec = CrawlSpec(crawl_id="plain", seeds=[seed], depth=1, max_bytes_per_page=CAP)
    await crawl_in_process(settings, spec)
    layout = CrawlLayout(settings.data_dir, "plain")
    assert not layout.warc_dir.exists() and not layout.index.exists()
    records = {m["url"]: m for m in read_manifest(settings.data_dir, "plain")}
    a = records[web.url(0, "/a")]
    assert (layout.root / a["path"]).read_bytes() == served[web.url(0, "/a")]
    assert ["Content-Type", "text/html; charset=utf-8"] in a["headers"]
    assert a["warc"] is None


@pytest.mark.parametrize("keep", [0.5, 0.02])
async def test_a_record_cut_mid_write_is_cut_off(
    web: TestWeb, settings: Settings, tmp_path: Path, keep: float
) -> None:
    """A file whose last gzip member was cut mid-write (a writer killed in its write) still
    reads up to its last whole record; repair cuts the rest off, and it passes `warcio check`
    (which alone does not see a cut member)."""
    await warc_crawl(web, settings)
    layout = CrawlLayout(settings.data_dir, "wa")
    (path,) = layout.warc_files()
    whole = path.read_bytes()
    before = read_warc(path)
    member = whole[before[-1].offset : before[-1].offset + before[-1].length]
    cut = member[: max(1, int(len(member) * keep))]
    path.write_bytes(whole + cut)
    records, end = whole_records(layout, path)
    assert end == len(whole) and len(records) == len(before)
    assert repair(layout, path) == len(cut)
    assert path.read_bytes() == whole
    assert warcio_check(path).returncode == 0


async def test_the_index_skips_what_page_records_say_and_trusts_no_wrong_length(
    web: TestWeb, settings: Settings
) -> None:
    """Indexed with the lengths of the response records that page records name (only their
    heads read), a file gives the same index as read whole, its cut last member is still cut
    off; a length said wrongly is not trusted (nothing good is cut off)."""
    await warc_crawl(web, settings)
    layout = CrawlLayout(settings.data_dir, "wa")
    (path,) = layout.warc_files()
    whole = path.read_bytes()
    index = layout.index.read_bytes()
    refs = [r.warc for r in stored_records(settings.data_dir, "wa") if r.warc is not None]
    known = {path.name: {ref.offset: ref.length for ref in refs}}
    assert len(known[path.name]) == len(refs) >= 5
    path.write_bytes(whole + whole[refs[0].offset : refs[0].offset + refs[0].length // 2])
    assert write_index(layout, known) == (index.count(b"\n"), refs[0].length // 2)
    assert path.read_bytes() == whole and layout.index.read_bytes() == index
    off_by = [1, -1, 7, -7, 9]
    wrong = {path.name: {r.offset: r.length + off_by[n % 5] for n, r in enumerate(refs)}}
    assert write_index(layout, wrong) == (index.count(b"\n"), 0)
    assert path.read_bytes() == whole and layout.index.read_bytes() == index


ROBOTS = b"User-agent: *\nDisallow: /file.txt\n"


async def test_robots_txt_fetches_are_recorded_and_indexed(
    web: TestWeb, settings: Settings
) -> None:
    """Each origin's robots.txt fetch has its response record (status, headers and body as
    served, a 200 and a 404 alike) paired with its request record; the files pass `warcio
    check`, and index.cdxj lists the robots.txt responses as pywb's indexer does; the rules
    were obeyed all the same."""
    seed, _ = warc_site(web)
    web.site.pages[web.url(1, "/other")] = Page()
    web.site.pages[web.url(0, "/robots.txt")] = Page(content_type="text/plain", body=ROBOTS)
    seeds = [seed, web.url(1, "/other")]
    spec = CrawlSpec(crawl_id="rb", seeds=seeds, depth=1, warc=True, max_bytes_per_page=CAP)
    assert (await crawl_in_process(settings, spec)).state is CrawlState.DONE
    layout = CrawlLayout(settings.data_dir, "rb")
    for path in layout.warc_files():
        checked = warcio_check(path)
        assert checked.returncode == 0, checked.stdout + checked.stderr
    records = warc_records(settings, "rb")
    robots = {web.url(0, "/robots.txt"): (200, ROBOTS), web.url(1, "/robots.txt"): (404, None)}
    for url, (status, body) in robots.items():
        (response,) = [r for r in records if r.kind == "response" and r.url == url]
        assert response.http_status == str(status)
        assert response.payload == (body if body is not None else b"not found\n")
        assert response.warc_headers["WARC-IP-Address"] == url.split("//")[1].split(":")[0]
        (request,) = [
            r for r in records
            if r.kind == "request" and r.warc_headers["WARC-Concurrent-To"] == response.record_id
        ]  # fmt: skip
        assert request.url == url and request.http_line == "GET /robots.txt HTTP/1.1"
    indexed = {
        json.loads(line.split(" ", 2)[2])["url"]: line.split(" ", 1)[0]
        for line in layout.index.read_text().splitlines()
    }
    assert set(robots) <= set(indexed)
    assert indexed[web.url(0, "/robots.txt")] == surt_key(web.url(0, "/robots.txt"))
    # robots.txt is in the WARC files only: no page of its own
    manifest = {m["url"]: m for m in read_manifest(settings.data_dir, "rb")}
    assert not set(robots) & set(manifest)
    assert manifest[web.url(0, "/file.txt")]["skipped"] == "robots.txt: disallowed"
    assert manifest[web.url(1, "/other")]["status"] == 200


async def test_robots_txt_fetched_again_by_a_page_job_is_recorded_too(
    web: TestWeb, settings: Settings, redis: Redis
) -> None:
    """When Redis has lost an origin's rules (they expire), the page job that fetches them
    again hands that fetch to the crawl's WARC writer as well: one more response record of
    the robots.txt, with its body as served, and the rules kept again in Redis."""
    web.site = Site({web.url(0, "/robots.txt"): Page(content_type="text/plain", body=ROBOTS)})
    spec = CrawlSpec(crawl_id="again", seeds=[web.url(0, "/")], warc=True)
    layout = CrawlLayout(settings.data_dir, "again")
    cache = RobotsCache(redis, settings, FetchTurns(2, 0.5, 2), WorkerMetrics("t"))
    with WarcWriters(settings) as warcs:
        async with make_client(settings) as client:
            rules = await cache.rules(
                "again", web.url(0, "/file.txt"), client, partial(warcs.write, layout, spec)
            )
    assert not rules.allows(web.url(0, "/file.txt"), settings.robots_agent)
    (response,) = [r for r in warc_records(settings, "again") if r.kind == "response"]
    assert response.url == web.url(0, "/robots.txt") and response.payload == ROBOTS
    assert await redis.get(CrawlKeys("again").robots(web.url(0, "")))


async def test_a_file_idle_past_twice_the_job_timeout_is_closed(settings: Settings) -> None:
    """A crawl's WARC file that nothing has been appended to for twice the job timeout is
    synced and closed when another record is appended; a later record of that crawl starts
    a new file (the next sequence number, opening with warcinfo), and both pass warcio."""
    now = [0.0]
    idle = 2 * settings.job_timeout_s
    url = "http://127.0.0.1/"
    refers = RefersTo(SERVER_NOT_MODIFIED, url, "2026-01-01T00:00:00Z", None, None)
    layouts = {c: CrawlLayout(settings.data_dir, c) for c in ("idle1", "idle2")}

    async def record(crawl_id: str) -> None:
        spec = CrawlSpec(crawl_id=crawl_id, seeds=[url], warc=True)
        await warcs.write_unrequested(layouts[crawl_id], spec, url, refers)

    with WarcWriters(settings, clock=lambda: now[0]) as warcs:
        await record("idle1")
        await record("idle2")
        assert warcs.open == ["idle1", "idle2"]
        now[0] = idle / 2
        await record("idle2")
        assert warcs.open == ["idle1", "idle2"]
        now[0] = idle + 1
        await record("idle2")
        assert warcs.open == ["idle2"]
        await record("idle1")
        assert warcs.open == ["idle2", "idle1"]
    files = layouts["idle1"].warc_files()
    assert [f.name[-14:-8] for f in files] == ["-00000", "-00001"]
    for path in files:
        assert warcio_check(path).returncode == 0
        assert [r.kind for r in read_warc(path)] == ["warcinfo", "revisit"]
    assert len(layouts["idle2"].warc_files()) == 1
