"""A --warc crawl replayed by pywb: every page's original bytes back, and pywb's own index of
the files is crawlfleet's index.cdxj.

pywb runs from its own venv (``make replay-env``: it pins a Redis client crawlfleet cannot use).
"""

from __future__ import annotations

import asyncio
import gzip
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from crawlfleet.shared.crawl import CrawlSpec, CrawlState
from crawlfleet.shared.settings import Settings
from crawlfleet.shared.storage import CrawlLayout
from tests.support.crawling import crawl_in_process, read_manifest
from tests.support.testweb import Page, TestWeb, free_port
from tests.support.warcs import CAP, warc_site

PYWB = Path(__file__).resolve().parent.parent / ".venv-pywb" / "bin"


@pytest.fixture
def pywb() -> Path:
    """The folder of pywb's commands."""
    if not (PYWB / "wayback").is_file():
        pytest.skip("pywb is not installed: run `make replay-env`")
    return PYWB


def start_wayback(pywb: Path, root: Path, port: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [str(pywb / "wayback"), "-p", str(port), "-b", "127.0.0.1"],
        cwd=root,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


async def wait_serving(client: httpx.AsyncClient, url: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 120
    while True:
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else b""
        try:
            await client.get(url)
            return
        except httpx.TransportError:
            assert time.monotonic() < deadline, "wayback did not start in 120 s"
            await asyncio.sleep(0.2)


async def raw_get(client: httpx.AsyncClient, url: str) -> tuple[httpx.Response, bytes]:
    """A response and its body as sent (content coding kept)."""
    async with client.stream("GET", url) as response:
        return response, b"".join([chunk async for chunk in response.aiter_raw()])


async def test_pywb_replays_each_page_byte_for_byte(
    web: TestWeb, settings: Settings, pywb: Path, tmp_path: Path
) -> None:
    """`wb-manager init/add` takes the crawl's WARC files, its index equals index.cdxj, and
    `wayback` serves each page in identity mode (/COLL/2000id_/URL) with the bytes the test
    server sent: gzip-coded as sent, a cut body as stored, a redirect as a redirect; and the
    gzip sitemap that robots.txt names, as served."""
    seed, served = warc_site(web)
    sitemap_url = web.url(0, "/sitemap.xml.gz")
    sitemap = gzip.compress(f"{web.url(0, '/a')}\n".encode(), mtime=0)
    web.site.pages[web.url(0, "/robots.txt")] = Page(
        content_type="text/plain", body=b"Sitemap: /sitemap.xml.gz\n"
    )
    web.site.pages[sitemap_url] = Page(content_type="application/x-gzip", body=sitemap)
    spec = CrawlSpec(crawl_id="replay", seeds=[seed], depth=1, warc=True, max_bytes_per_page=CAP,
                     sitemaps=True)  # fmt: skip
    assert (await crawl_in_process(settings, spec)).state is CrawlState.DONE
    layout = CrawlLayout(settings.data_dir, "replay")
    root = tmp_path / "pywb"
    root.mkdir()

    def manage(*args: str) -> None:
        done = subprocess.run(
            [str(pywb / "wb-manager"), *args], cwd=root, capture_output=True, timeout=300
        )
        assert done.returncode == 0, done.stderr

    manage("init", "coll")
    manage("add", "coll", *map(str, layout.warc_files()))
    pywb_index = (root / "collections" / "coll" / "indexes" / "index.cdxj").read_text()
    assert pywb_index == layout.index.read_text()

    port = free_port()
    proc = start_wayback(pywb, root, port)
    base = f"http://127.0.0.1:{port}/coll/2000id_/"
    try:
        async with httpx.AsyncClient(timeout=30, trust_env=False) as client:
            await wait_serving(client, f"http://127.0.0.1:{port}/", proc)
            pages = read_manifest(settings.data_dir, "replay")
            for page in (p for p in pages if p["status"] is not None):
                url = page["url"]
                response, body = await raw_get(client, base + url)
                assert response.status_code == page["status"], url
                if page["redirect"]:
                    assert response.headers["location"].endswith(page["redirect"])
                    continue
                assert body == served.get(url, b"not found\n")[:CAP], url
            gz = next(u for u in served if u.endswith("/gz"))
            response, _ = await raw_get(client, base + gz)
            assert response.headers["content-encoding"] == "gzip"
            response, body = await raw_get(client, base + sitemap_url)
            assert (response.status_code, body) == (200, sitemap)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stderr:
            proc.stderr.close()
