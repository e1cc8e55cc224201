"""The progress of a watched crawl: the live panel on a terminal, a plain line elsewhere, and
the counters they show, against the manifest of a real crawl."""

from __future__ import annotations

import asyncio
import io
import os
import re
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import pytest
from redis.asyncio import Redis
from rich.console import Console

from crawlfleet.scheduler.control import cancel_crawl, seed_crawl
from crawlfleet.scheduler.panel import View, panel, plain_line
from crawlfleet.scheduler.progress import watch
from crawlfleet.scheduler.rates import RateMeter, Rates
from crawlfleet.shared.connections import connected
from crawlfleet.shared.crawl import CrawlCounters, CrawlSpec, CrawlState, CrawlStatus
from crawlfleet.shared.keys import BUSIEST_HOSTS
from crawlfleet.shared.settings import Settings
from crawlfleet.workers.build import build_worker
from tests.support.crawling import read_manifest
from tests.support.terminal import ERASE_LINE, plain, run_on_terminal
from tests.support.testweb import Page, Site, TestWeb, make_site

RATES = Rates(pages_now=43.5, bytes_now=320_000, pages_avg=40.1, bytes_avg=300_000)


def status(state: CrawlState = CrawlState.RUNNING, **counters: Any) -> CrawlStatus:
    values: dict[str, Any] = {
        "fetched": 47, "failed": 2, "bytes": 37_400, "pending": 75, "seen": 120,
        "reasons": {"http 404": 2, "timeout": 1},
        "busiest": {"127.0.0.2": 20, "127.0.0.3": 18, "127.0.0.4": 11},
    }  # fmt: skip
    return CrawlStatus(
        crawl_id="demo",
        state=state,
        spec=CrawlSpec(crawl_id="demo", seeds=["http://127.0.0.2/"], depth=2),
        created_at=datetime.now(UTC),
        progress_at=datetime.now(UTC),
        counters=CrawlCounters(**{**values, **counters}),
    )


def rendered(view: View) -> str:
    console = Console(record=True, width=100)
    console.print(panel(view, stall_after_s=300))
    return console.export_text()


def test_the_panel_shows_every_figure_of_the_crawl() -> None:
    """The panel: state and elapsed time, pages done of found with a bar and its share,
    fetched and failed pages, errors by reason, rates now and on average, jobs in flight and
    to do, the busiest hosts with their pages and share."""
    text = rendered(View(status(), elapsed_s=754, in_flight=8, rates=RATES))
    assert "crawl demo · running · elapsed 12m34s" in text
    pages = next(line for line in text.splitlines() if "found so far" in line)
    assert "49 done of 120 found so far within depth 2" in pages and pages.endswith("40% │")
    assert "━" in pages
    assert "fetched    47 pages (36.5 KiB), 2 failed" in text
    assert "errors     2 http 404, 1 timeout" in text
    assert "rate       43.5 pages/s, 312.5 KiB/s now; 40.1 pages/s, 293.0 KiB/s on average" in text
    assert "in flight  8 pages held by workers, 75 to do" in text
    hosts = [line.strip("│ ").split() for line in text.splitlines() if "127.0.0." in line]
    assert hosts == [["127.0.0.2", "20", "40%"], ["127.0.0.3", "18", "36%"],
                     ["127.0.0.4", "11", "22%"]]  # fmt: skip
    assert "approximate" not in text


def test_the_panel_shows_the_sitemaps_of_a_crawl_that_reads_them() -> None:
    """A crawl with --sitemaps has a row of its sitemaps read and skipped and the URLs they
    gave; one without has none."""
    assert "sitemaps" not in rendered(View(status(), 1, 0, RATES))
    reads = status(sitemaps=3, sitemaps_skipped=1, sitemap_urls=250)
    reads.spec.sitemaps = True
    text = rendered(View(reads, 1, 0, RATES))
    assert "sitemaps   3 read, 1 skipped, 250 URLs taken" in text


def test_the_panel_and_plain_line_show_the_changes_of_a_crawl_since_another() -> None:
    """A crawl --since another has a row of its pages against the earlier crawl's, unreached
    pages last (a 0 shown as the others are), and so has its plain line; one without has none."""
    assert "changes" not in rendered(View(status(), 1, 0, RATES))
    again = status(new=1, changed=2, unchanged=40, gone=0, unreached=3)
    again.spec.since = "c1"
    text = rendered(View(again, 1, 0, RATES))
    assert "changes    1 new, 2 changed, 40 unchanged, 0 gone, 3 unreached since c1" in text
    line = plain_line(View(again, 65, 8, RATES), stall_after_s=300)
    assert "  failed 2  1 new, 2 changed, 40 unchanged, 0 gone, 3 unreached  errors " in line


def test_the_bar_fills_with_the_pages_done_of_those_found() -> None:
    """The bar is the pages done of the URLs found: empty before any page is done, half for
    half, full once all are done."""
    widths = []
    for done in (0, 5, 10):
        view = View(status(fetched=done, failed=0, seen=10), 1, 0, RATES)
        line = next(ln for ln in rendered(view).splitlines() if "found so far" in ln)
        assert f"{done} done of 10 found so far" in line
        widths.append(line.count("━") + line.count("╸"))
    assert widths[0] == 0 and 0 < widths[1] < widths[2]
    assert 0.4 < widths[1] / widths[2] < 0.6


def test_the_panel_says_what_it_leaves_out() -> None:
    """No errors row without errors; past five reasons, how many more; more than
    BUSIEST_HOSTS hosts make the counts approximate, and it says so; five hosts at most."""
    quiet = rendered(View(status(reasons={}), 1, 0, RATES))
    assert "errors" not in quiet
    many = {f"reason {i}": 10 - i for i in range(7)}
    busiest = {f"h{i}.test": 50 - i for i in range(BUSIEST_HOSTS)}
    text = rendered(View(status(reasons=many, busiest=busiest, hosts_dropped=3), 1, 0, RATES))
    assert (
        "errors     10 reason 0, 9 reason 1, 8 reason 2, 7 reason 3, 6 reason 4 (+2 more)" in text
    )
    assert f"busiest hosts (counts approximate: over {BUSIEST_HOSTS} hosts)" in text
    assert "h4.test" in text and "h5.test" not in text


def test_the_plain_line_names_failures_by_reason() -> None:
    """The plain line for a log: state, elapsed time, pages done of found, in flight, rates,
    bytes, failures and the commonest errors by reason, compactly."""
    reasons = {"http 404": 2, "timeout": 1, "connect": 1, "tls": 1}
    line = plain_line(View(status(reasons=reasons), 65, 8, RATES), stall_after_s=300)
    assert line == (
        "demo  running  1m05s  pages 49/120  in flight 8  43.5 pages/s now, 40.1 avg  "
        "36.5 KiB  failed 2  errors 2 http 404, 1 connect, 1 timeout (+1 more)"
    )


def test_rates_now_are_over_the_last_window_and_on_average_over_all() -> None:
    """The rate now is that of the last window (5 s): a crawl that stopped moving shows 0
    now, and its average over the whole watch."""
    meter = RateMeter(window_s=5)
    for second in range(12):
        pages = 10 * min(second, 6)  # 10 pages/s for 6 s, then none
        rates = meter.add(float(second), pages, 1000 * pages)
        if second == 6:
            assert rates.pages_now == pytest.approx(10) and rates.bytes_now == 10_000
    assert rates.pages_now == 0 and rates.bytes_now == 0
    assert rates.pages_avg == pytest.approx(60 / 11) and rates.bytes_avg == pytest.approx(
        60_000 / 11
    )


def _reason(record: dict[str, Any]) -> str:
    """The reason a crawl counts for a manifest record (workers/fetch.py FetchResult.reason):
    its failure's kind, or its error status."""
    if record["kind"]:
        return str(record["kind"])
    if record["status"] is None:  # excluded by robots.txt: no failure
        return ""
    return f"http {record['status']}" if record["status"] >= 400 else ""


def _site_with_failures(web: TestWeb) -> list[str]:
    """The generated site with a slow page, a 404 and a plain file that robots.txt refuses
    linked from the seeds; returns the seeds."""
    site = make_site(web.port, pages_per_host=10)
    site.pages[web.url(0, "/robots.txt")] = Page(
        content_type="text/plain", body=b"User-agent: *\nDisallow: /files/\n"
    )
    slow = web.url(1, "/slow.html")
    site.pages[slow] = Page(latency=0.5)
    for seed, extra in [(web.url(0, "/p/0.html"), ["/missing/0.html", "/files/0.txt"]),
                        (web.url(1, "/p/0.html"), [slow])]:  # fmt: skip
        site.pages[seed].hrefs += extra
        site.pages[seed].edges += [urljoin(seed, link) for link in extra]
    web.site = site
    return [web.url(h, "/p/0.html") for h in range(len(web.hosts))]


async def test_a_watched_crawl_ends_with_the_counters_of_its_manifest(
    web: TestWeb, settings: Settings
) -> None:
    """A real crawl watched on a terminal: the watcher saw jobs in flight while it ran, and
    what the final panel shows (pages, bytes, errors by reason, pages per host) is what the
    manifest holds."""
    seeds = _site_with_failures(web)
    spec = CrawlSpec(crawl_id="seen", seeds=seeds, depth=2)
    console = Console(record=True, width=100, force_terminal=True, color_system=None)
    async with connected(settings.redis_url) as redis:
        await seed_crawl(redis, settings, spec)
        watching = asyncio.create_task(
            watch(redis, "seen", queue_name=settings.queue_name, console=console, interval=0.05)
        )
        worker = build_worker(settings, burst=True, handle_signals=False)
        try:
            await worker.async_run()
        finally:
            await worker.close()
        final = await asyncio.wait_for(watching, 60)
    records = read_manifest(settings.data_dir, "seen")
    c = final.counters
    assert final.state is CrawlState.DONE and c.pending == 0
    assert c.fetched == sum(r["status"] is not None for r in records)
    assert c.excluded == sum(r["skipped"] is not None for r in records) > 0
    assert c.failed == sum(r["status"] is None and r["skipped"] is None for r in records)
    assert c.bytes == sum(r["length"] for r in records)
    reasons = Counter(_reason(r) for r in records)
    del reasons[""]
    assert c.reasons == dict(reasons) and "http 404" in c.reasons
    hosts = Counter(urlsplit(r["url"]).hostname for r in records)
    assert c.busiest == dict(hosts) and len(hosts) == 3 and c.hosts_dropped == 0
    renders = console.export_text().split("╭─ crawl seen")
    assert any(re.search(r"in flight  [1-9]\d* pages held", r) for r in renders)
    last = renders[-1]
    assert "· done ·" in last and f"{len(records)} done of {len(records)} found" in last
    assert f"{c.fetched} pages" in last and f"{c.failed} failed" in last
    assert f"{c.excluded} excluded by robots.txt" in last
    for host, pages in hosts.items():
        assert re.search(rf"{re.escape(str(host))}\s+{pages}\s", last), last


def _run_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "COLUMNS", "LINES")}
    return {**env, "TERM": "xterm-256color", **extra}


def _refused_then_slow(web: TestWeb) -> str:
    """One host: a root linking first to 3 pages robots.txt refuses, then to 40 pages of
    0.2 s each; returns the root."""
    root = web.url(0, "/")
    pages = {
        root: Page(hrefs=[f"/private/{i}" for i in range(3)] + [f"/p{i}" for i in range(40)]),
        web.url(0, "/robots.txt"): Page(
            content_type="text/plain", body=b"User-agent: *\nDisallow: /private/\n"
        ),
    }
    for i in range(40):
        pages[web.url(0, f"/p{i}")] = Page(latency=0.2)
    web.site = Site(pages)
    return root


@pytest.mark.slow
def test_run_on_a_terminal_shows_the_live_panel_and_leaves_the_last(
    web: TestWeb, tmp_path: Path
) -> None:
    """`run` on a terminal (a real pseudo-terminal, embedded Redis) draws the live panel while
    it crawls and leaves the final one on screen, the summary under it; no plain lines."""
    seed = _refused_then_slow(web)
    command = [sys.executable, "-m", "crawlfleet.scheduler", "run", seed, "--depth", "1",
               "--data-dir", str(tmp_path), "--crawl-id", "tty"]  # fmt: skip
    code, out = run_on_terminal(command, _run_env(), timeout=180)
    assert code == 0, plain(out)
    assert "· running ·" in plain(out) and ERASE_LINE in out  # drawn live, then redrawn
    # what stays on screen: the last drawing, never erased, and the summary under it
    screen = plain(out[out.rindex(ERASE_LINE) :])
    panel_at, summary_at = (
        screen.index("╭─ crawl tty · done · elapsed"),
        screen.index("crawl tty done in"),
    )
    assert panel_at < screen.index("╰─") < summary_at
    assert "44 done of 44 found within depth 1" in screen
    assert "0 failed, 3 excluded by robots.txt" in screen and "errors" not in screen
    assert "in flight  0 pages held by workers" in screen
    assert re.search(r"127\.0\.0\.2\s+44\s+100%", screen)
    assert "  pages     41 fetched, 0 failed, 3 excluded by robots.txt" in screen[summary_at:]
    assert not re.search(r"pages \d+/\d+  in flight", plain(out))


@pytest.mark.slow
def test_run_without_a_terminal_prints_a_plain_line_now_and_then(
    web: TestWeb, tmp_path: Path
) -> None:
    """`run` with stderr not a terminal prints a plain progress line every
    CRAWLFLEET_PROGRESS_EVERY_S, with the pages excluded by robots.txt, and no panel."""
    seed = _refused_then_slow(web)
    result = subprocess.run(
        [sys.executable, "-m", "crawlfleet.scheduler", "run", seed, "--depth", "1",
         "--data-dir", str(tmp_path), "--crawl-id", "log"],
        env=_run_env(CRAWLFLEET_PROGRESS_EVERY_S="0.2"), capture_output=True, text=True,
        timeout=180, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    line = re.compile(
        r"log  running  \d+s  pages (\d+)/(\d+)  in flight \d+  [\d.]+ pages/s now, [\d.]+ avg  "
        r"[\d.]+ (B|KiB)  failed (0)(  excluded 3)?"
    )
    lines = result.stderr.splitlines()[1:]  # after `crawl log: 2 worker(s), depth 1`
    assert lines and all(line.fullmatch(text) for text in lines), result.stderr
    assert len(lines) >= 2 and line.fullmatch(lines[-1]).group(5)  # type: ignore[union-attr]
    assert "╭" not in result.stderr and ERASE_LINE not in result.stderr
    assert "crawl log done in" in result.stdout


async def test_the_watch_ends_as_soon_as_the_crawl_does(redis: Redis, settings: Settings) -> None:
    """The watcher notices the end between its refreshes: with an hour between two, a crawl
    cancelled meanwhile still ends the watch at once (no worker runs here)."""
    spec = CrawlSpec(crawl_id="ends", seeds=["http://127.0.0.2:9/"], depth=1)
    await seed_crawl(redis, settings, spec)
    console = Console(file=io.StringIO(), force_terminal=False)
    watching = asyncio.create_task(
        watch(redis, "ends", queue_name=settings.queue_name, console=console, interval=3600)
    )
    await asyncio.sleep(0.2)  # the watch has begun its wait
    assert not watching.done()
    await cancel_crawl(redis, settings, "ends")
    final = await asyncio.wait_for(watching, timeout=60)
    assert final.state is CrawlState.CANCELLED
