"""What a watched crawl looks like: a rich panel for a terminal, one plain line for a log."""

from __future__ import annotations

from dataclasses import dataclass

from rich.console import Group
from rich.panel import Panel
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from crawlfleet.scheduler.rates import Rates
from crawlfleet.shared.crawl import CrawlCounters, CrawlStatus
from crawlfleet.shared.keys import BUSIEST_HOSTS

# busiest hosts the panel lists, failure reasons the panel and the plain line name
HOSTS_SHOWN = 5
REASONS_SHOWN = 5
_REASONS_IN_LINE = 3
# the panel's width (at most the terminal's): fixed, so it does not change with every look
PANEL_WIDTH = 100


def human_bytes(n: float) -> str:
    """``1536`` -> ``1.5 KiB``."""
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def human_seconds(seconds: float) -> str:
    """``372`` -> ``6m12s``."""
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def state_text(status: CrawlStatus, stall_after_s: float) -> str:
    """The crawl's state, and for a running crawl that has not moved in ``stall_after_s``,
    how long it has been stalled."""
    stalled = status.stalled_s(stall_after_s)
    if stalled is None:
        return status.state.value
    return f"{status.state.value}, stalled {human_seconds(stalled)}"


@dataclass(frozen=True, slots=True)
class View:
    """One look at a crawl: its status, how long it has been watched, the jobs its workers
    hold, and its rates."""

    status: CrawlStatus
    elapsed_s: float
    in_flight: int
    rates: Rates

    @property
    def done(self) -> int:
        """Pages done: fetched, failed or excluded by robots.txt."""
        return self.status.counters.done

    @property
    def found(self) -> int:
        """The distinct URLs the crawl has found so far within its depth and scope (and
        ``--max-pages``): every crawl has a depth limit, so this stops growing once the pages
        one level short of it are done. Not done + to do: the pages to do count a URL found
        again nearer twice, and the robots.txt to fetch."""
        return self.status.counters.seen


def excluded_text(c: CrawlCounters) -> str:
    """``, 3 excluded by robots.txt`` when there are any."""
    return f", {c.excluded} excluded by robots.txt" if c.excluded else ""


def sitemaps_text(c: CrawlCounters) -> str:
    """``3 read, 1 skipped, 250 URLs taken``: the sitemaps of a crawl that reads them."""
    return f"{c.sitemaps} read, {c.sitemaps_skipped} skipped, {c.sitemap_urls} URLs taken"


def changes_text(status: CrawlStatus) -> str:
    """``3 new, 1 changed, 40 unchanged, 2 gone, 1 unreached since c1``: a crawl --since
    another's pages against the earlier crawl's."""
    return f"{changes_counts(status.counters)} since {status.spec.since}"


def changes_counts(c: CrawlCounters) -> str:
    """``3 new, 1 changed, 40 unchanged, 2 gone, 1 unreached`` (unreached pages are counted
    once the crawl is finalized: 0 until then)."""
    return (
        f"{c.new} new, {c.changed} changed, {c.unchanged} unchanged, {c.gone} gone, "
        f"{c.unreached} unreached"
    )


def reasons_text(reasons: dict[str, int], at_most: int) -> str:
    """``2 http 404, 1 timeout``: the commonest reasons first, and how many more there are."""
    ranked = sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0]))
    text = ", ".join(f"{n} {reason}" for reason, n in ranked[:at_most])
    more = len(ranked) - at_most
    return f"{text} (+{more} more)" if more > 0 else text


def plain_line(view: View, stall_after_s: float) -> str:
    """The crawl in one line, for a log: state, time, pages, in flight, rates, bytes,
    failures and errors by reason."""
    s, c, r = view.status, view.status.counters, view.rates
    line = (
        f"{s.crawl_id}  {state_text(s, stall_after_s)}  {human_seconds(view.elapsed_s)}  "
        f"pages {view.done}/{view.found}  in flight {view.in_flight}  "
        f"{r.pages_now:.1f} pages/s now, {r.pages_avg:.1f} avg  {human_bytes(c.bytes)}  "
        f"failed {c.failed}"
    )
    if c.excluded:
        line += f"  excluded {c.excluded}"
    if s.spec.since is not None:
        line += f"  {changes_counts(c)}"
    if c.reasons:
        line += f"  errors {reasons_text(c.reasons, _REASONS_IN_LINE)}"
    return line


def panel(view: View, stall_after_s: float) -> Panel:
    """The crawl as a panel: pages done of those found (with a bar), what was fetched, errors
    by reason, rates now and on average, jobs in flight, the busiest hosts."""
    s, c, r = view.status, view.status.counters, view.rates
    rows = Table.grid(padding=(0, 2))
    rows.add_column(style="bold", no_wrap=True)
    rows.add_column()
    rows.add_row("pages", _pages(view))
    capped = f", {c.capped} not fetched (page caps)" if c.capped else ""
    fetched = (
        f"{c.fetched} pages ({human_bytes(c.bytes)}), {c.failed} failed{excluded_text(c)}{capped}"
    )
    rows.add_row("fetched", fetched)
    if s.spec.sitemaps:
        rows.add_row("sitemaps", sitemaps_text(c))
    if s.spec.since is not None:
        rows.add_row("changes", changes_text(s))
    if c.reasons:
        rows.add_row("errors", reasons_text(c.reasons, REASONS_SHOWN))
    rows.add_row(
        "rate",
        f"{r.pages_now:.1f} pages/s, {human_bytes(r.bytes_now)}/s now; "
        f"{r.pages_avg:.1f} pages/s, {human_bytes(r.bytes_avg)}/s on average",
    )
    rows.add_row("in flight", f"{view.in_flight} pages held by workers, {c.pending} to do")
    parts: list[Table | Text] = [rows]
    if c.busiest:
        parts.append(_hosts(c.busiest, view.done, c.hosts_dropped))
    elapsed = human_seconds(view.elapsed_s)
    title = f"crawl {s.crawl_id} · {state_text(s, stall_after_s)} · elapsed {elapsed}"
    return Panel(Group(*parts), title=title, title_align="left", width=PANEL_WIDTH)


def _pages(view: View) -> Table:
    found = max(view.found, 1)
    line = Table.grid(padding=(0, 1), expand=True)
    line.add_column(no_wrap=True)
    line.add_column(ratio=1)
    line.add_column(no_wrap=True, justify="right")
    so_far = " so far" if view.status.state.live else ""
    line.add_row(
        f"{view.done} done of {view.found} found{so_far} within depth {view.status.spec.depth}",
        ProgressBar(total=found, completed=view.done),
        f"{100 * view.done // found}%",
    )
    return line


def _hosts(busiest: dict[str, int], done: int, dropped: int) -> Table:
    approximate = f" (counts approximate: over {BUSIEST_HOSTS} hosts)" if dropped else ""
    table = Table(
        "busiest hosts" + approximate, "pages", "share", box=None, padding=(0, 2), pad_edge=False
    )
    table.columns[1].justify = table.columns[2].justify = "right"
    for host, pages in list(busiest.items())[:HOSTS_SHOWN]:
        # an approximate count may be above the pages done so far
        table.add_row(host, str(pages), f"{min(100, 100 * pages // max(done, 1))}%")
    return table
