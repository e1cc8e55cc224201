"""The progress of a watched crawl: the live panel on a terminal, a plain line elsewhere, and
the counters they show, against the manifest of a real crawl."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from rich.console import Console

from scheduler.panel import View, panel, plain_line
from scheduler.rates import RateMeter, Rates
from shared.crawl import CrawlCounters, CrawlSpec, CrawlState, CrawlStatus
from shared.keys import BUSIEST_HOSTS

RATES = Rates(pages_now=43.5, bytes_now=320_000, pages_avg=40.1, bytes_avg=300_000)


def status(state: CrawlState = CrawlState.RUNNING, **counters: Any) -> CrawlStatus:
    values: dict[str, Any] = {
        "fetched": 47, "failed": 2, "bytes": 37_400, "pending": 71,
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
    assert "in flight  8 pages held by workers, 71 to do" in text
    hosts = [line.strip("│ ").split() for line in text.splitlines() if "127.0.0." in line]
    assert hosts == [["127.0.0.2", "20", "40%"], ["127.0.0.3", "18", "36%"],
                     ["127.0.0.4", "11", "22%"]]  # fmt: skip
    assert "approximate" not in text


def test_the_bar_fills_with_the_pages_done_of_those_found() -> None:
    """The bar is the pages done of those found (done + to do): empty before any page is
    done, half for half, full once nothing is left to do."""
    widths = []
    for done, pending in [(0, 10), (5, 5), (10, 0)]:
        view = View(status(fetched=done, failed=0, pending=pending), 1, 0, RATES)
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
