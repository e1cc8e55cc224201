"""Reading finished crawls back with `pages`, `cat` and `export`, with no Redis running."""

from __future__ import annotations

import base64
import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from crawlfleet.shared.crawl import CrawlSpec, CrawlState
from crawlfleet.shared.settings import Settings
from tests.support.crawling import crawl_in_process, read_manifest
from tests.support.testweb import TestWeb, free_port
from tests.support.warcs import CAP, HTML, read_warc, warc_site, warcio_check


def cli(*args: str) -> subprocess.CompletedProcess[bytes]:
    """The command line, with a Redis URL nothing answers at: reading back needs none."""
    env = {**os.environ, "REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"}
    return subprocess.run(
        [sys.executable, "-m", "crawlfleet.scheduler", *args],
        capture_output=True, env=env, stdin=subprocess.DEVNULL, timeout=120,
    )  # fmt: skip


def one_error_line(result: subprocess.CompletedProcess[bytes], code: int, *words: str) -> None:
    assert result.returncode == code, result
    lines = result.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), result.stderr
    for word in words:
        assert word in lines[0], lines[0]


@pytest.fixture(params=[True, False], ids=["warc", "files"])
async def crawled(
    request: pytest.FixtureRequest, web: TestWeb, settings: Settings
) -> tuple[str, dict[str, bytes], Path]:
    """A finished crawl of the WARC test site, with --warc or without; its id, the bodies as
    served, its data directory."""
    seed, served = warc_site(web)
    crawl_id = "rb-warc" if request.param else "rb-files"
    spec = CrawlSpec(
        crawl_id=crawl_id, seeds=[seed], depth=1, warc=request.param, max_bytes_per_page=CAP
    )
    assert (await crawl_in_process(settings, spec)).state is CrawlState.DONE
    return crawl_id, served, settings.data_dir


def decoded(url: str, served: dict[str, bytes]) -> bytes:
    """What a page's body reads as once its content coding is undone and the cap applied."""
    body = served[url]
    return (gzip.decompress(body) if url.endswith("/gz") else body)[:CAP]


def test_pages_lists_what_the_crawl_stored(crawled: tuple[str, dict[str, bytes], Path]) -> None:
    """`pages` lists every manifest page (status, bytes, type, URL), `--status` filters them,
    `--json` prints the records."""
    crawl_id, _, data_dir = crawled
    manifest = read_manifest(data_dir, crawl_id)
    listed = cli("pages", crawl_id, "--data-dir", str(data_dir))
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.decode().splitlines()
    assert len(lines) == len(manifest)
    for line, record in zip(lines, manifest, strict=True):
        assert line.split()[:2] == [str(record["status"] or "-"), str(record["length"])]
        assert record["url"] in line
    ok = cli("pages", crawl_id, "--data-dir", str(data_dir), "--status", "200", "--json")
    records = [json.loads(line) for line in ok.stdout.decode().splitlines()]
    assert records == [r for r in manifest if r["status"] == 200] and len(records) >= 5


def test_cat_prints_each_stored_body(crawled: tuple[str, dict[str, bytes], Path]) -> None:
    """`cat` prints each page's body decoded, from its file or its WARC record."""
    crawl_id, served, data_dir = crawled
    for url in served:
        printed = cli("cat", crawl_id, url, "--data-dir", str(data_dir))
        assert printed.returncode == 0, printed.stderr
        assert printed.stdout == decoded(url, served), url
    gz = next(u for u in served if u.endswith("/gz"))
    assert decoded(gz, served) == HTML[:CAP]
    # a URL written another way that means the same page
    upper = gz.replace("http://", "HTTP://") + "#top"
    assert cli("cat", crawl_id, upper, "--data-dir", str(data_dir)).stdout == HTML[:CAP]


def test_export_jsonl_holds_every_page_with_its_body(
    crawled: tuple[str, dict[str, bytes], Path], tmp_path: Path
) -> None:
    """`export --format jsonl` writes each page record with its body, base64."""
    crawl_id, served, data_dir = crawled
    out = tmp_path / "all.jsonl"
    done = cli("export", crawl_id, "--format", "jsonl", "-o", str(out), "--data-dir", str(data_dir))
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["url"] for r in lines] == [r["url"] for r in read_manifest(data_dir, crawl_id)]
    for line in lines:
        body = line.pop("body_base64")
        if line["url"] in served:
            assert base64.b64decode(body) == decoded(line["url"], served)
        if line["redirect"]:
            assert body is None


def test_export_warc_passes_warcio_check(
    crawled: tuple[str, dict[str, bytes], Path], tmp_path: Path
) -> None:
    """`export --format warc` writes one WARC file that `warcio check` accepts, with a
    response record per page that got one: the crawl's own records, or, from page files, the
    decoded body with Content-Encoding and Content-Length masked."""
    crawl_id, served, data_dir = crawled
    out = tmp_path / "all.warc.gz"
    done = cli("export", crawl_id, "--format", "warc", "-o", str(out), "--data-dir", str(data_dir))
    assert done.returncode == 0, done.stderr
    assert warcio_check(out).returncode == 0
    records = read_warc(out)
    assert records[0].kind == "warcinfo"
    responses = {r.url: r for r in records if r.kind == "response"}
    answered = [r for r in read_manifest(data_dir, crawl_id) if r["status"] is not None]
    robots = {u for u in responses if u.endswith("/robots.txt")}
    assert set(responses) - robots == {r["url"] for r in answered}
    assert bool(robots) is (crawl_id == "rb-warc")  # page files hold no robots.txt
    gz = responses[next(u for u in served if u.endswith("/gz"))]
    headers = dict(gz.http_headers)
    if crawl_id == "rb-warc":  # the records as fetched
        assert gz.payload == served[gz.url] and headers["Content-Encoding"] == "gzip"
        # its robots.txt fetch too, which has no page record
        assert robots == {gz.url.rsplit("/", 1)[0] + "/robots.txt"}
        assert sum(r.kind == "request" for r in records) == len(answered) + 1
    else:
        assert gz.payload == HTML and "Content-Encoding" not in headers
        assert headers["X-Crawler-Content-Encoding"] == "gzip"
        assert headers["X-Crawler-Content-Length"] == str(len(served[gz.url]))
        assert headers["Content-Length"] == str(len(HTML))


def test_errors_are_one_line(crawled: tuple[str, dict[str, bytes], Path], tmp_path: Path) -> None:
    """An unknown crawl is one error line and exit 2; a URL the crawl did not store, or a page
    with no body, is one error line and exit 1; no output file is left by a failed export."""
    crawl_id, served, data_dir = crawled
    d = ("--data-dir", str(data_dir))
    one_error_line(cli("pages", "nope", *d), 2, "no finished crawl 'nope'")
    one_error_line(cli("cat", "../x", "http://a/", *d), 2, "invalid crawl id")
    seed = next(iter(served))
    one_error_line(cli("cat", crawl_id, seed + "nothing", *d), 1, "not a page of crawl")
    moved = seed.replace("/a", "/moved")
    one_error_line(cli("cat", crawl_id, moved, *d), 1, "no body stored", "redirect")
    out = tmp_path / "x.warc.gz"
    one_error_line(cli("export", "nope", "-o", str(out), *d), 2, "no finished crawl")
    assert not out.exists()


def test_run_with_warc_writes_files_that_read_back(web: TestWeb, tmp_path: Path) -> None:
    """`crawlfleet run --warc` (its embedded Redis, its worker processes) writes WARC files and
    an index, no body files (no pages folder), and says where they are; `cat` reads a page
    back from them."""
    seed, served = warc_site(web)
    data = tmp_path / "data"
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    run = subprocess.run(
        [sys.executable, "-m", "crawlfleet.scheduler", "run", seed, "--depth", "1",
         "--crawl-id", "cli", "--warc", "--max-bytes-per-page", str(CAP), "--data-dir", str(data)],
        capture_output=True, env=env, stdin=subprocess.DEVNULL, timeout=300,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    out = run.stdout.decode()
    assert f"warc      {data / 'cli' / 'warc'}" in out and "index.cdxj" in out
    assert "files " not in out  # no pages folder to name
    files = list((data / "cli" / "warc").glob("*.warc.gz"))
    assert files and all(warcio_check(f).returncode == 0 for f in files)
    # a line per page that got a response, and one for the robots.txt of its one origin
    assert (data / "cli" / "index.cdxj").read_text().count("\n") == 1 + len(
        [r for r in read_manifest(data, "cli") if r["status"] is not None]
    )
    assert not (data / "cli" / "pages").exists()
    gz = next(u for u in served if u.endswith("/gz"))
    assert cli("cat", "cli", gz, "--data-dir", str(data)).stdout == HTML
