"""The benchmark's output: the JSON file in ``bench/results/`` and the table printed at the end."""

from __future__ import annotations

import json
import os
import platform
import shutil
import statistics
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from bench.ideal import best_latency_ratio
from bench.result import PageSetCheck, RunResult
from bench.scenarios import Report
from tests.support.synthetic import SiteConfig

COLUMNS = [
    ("scen", 5), ("tool", 17), ("procs", 5), ("n", 2), ("pages", 5), ("set", 10), ("wall s", 6),
    ("pages/s", 13), ("inflt", 5), ("CPU s", 6), ("redis s", 7), ("cores", 5), ("pg/CPU-s", 15),
    ("redis ms/pg", 11), ("RSS MB", 6), ("B/seen", 6), ("cmds/pg", 7), ("rt/pg", 5),
]  # fmt: skip


@dataclass
class Summary:
    """The runs of one (scenario, tool, processes): medians, and the spread of the rates."""

    scenario: str
    tool: str
    processes: int
    concurrency: int
    runs: int
    errors: int
    pages: float
    page_set: str
    wall_s: float
    pages_per_s: float
    pages_per_s_range: tuple[float, float]
    avg_in_flight: float | None
    cpu_crawler_s: float
    cpu_redis_s: float | None
    cores: float
    pages_per_cpu_s: float
    pages_per_cpu_s_range: tuple[float, float]
    redis_ms_per_page: float | None
    peak_rss_mb: float | None
    redis_dedupe_bytes_per_seen: float | None
    redis_commands_per_page: float | None
    redis_round_trips_per_page: float | None
    cpu_s: float = 0.0  # crawler + Redis
    # medians of the runs' own figures (bench.result.RunResult.figures), where every run has one
    figures: dict[str, float] = field(default_factory=dict)
    vs_wget: str | None = None  # the page set against wget's of the same round, as page_set

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _median(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def _checks(checks: list[PageSetCheck]) -> str:
    """``exact``, or ``-missing+extra`` of the worst, prefixed by how many were exact."""
    worst = max(checks, key=lambda c: c.missing + c.extra)
    text = "exact" if worst.exact else f"-{worst.missing}+{worst.extra}"
    if not worst.exact and len(checks) > 1:
        text = f"{sum(c.exact for c in checks)}/{len(checks)} {text}"
    return text


def _page_set(runs: list[RunResult]) -> str:
    checks = [r.check for r in runs if r.check is not None]
    if not checks:
        return "-"
    worst = max(checks, key=lambda c: c.missing + c.extra)
    text = "exact" if worst.exact else f"-{worst.missing}+{worst.extra}"
    html = [r.html_check for r in runs if r.html_check is not None]
    if html:
        text += " H" if all(h.exact for h in html) else " H!"
    if not worst.exact and len(checks) > 1:
        text = f"{sum(c.exact for c in checks)}/{len(checks)} {text}"
    return text


def _vs_wget(runs: list[RunResult]) -> str | None:
    checks = [r.against_wget for r in runs if r.against_wget is not None]
    return _checks(checks) if checks else None


def _figures(runs: list[RunResult]) -> dict[str, float]:
    """The median of each figure every run has."""
    names = set.intersection(*(set(r.figures) for r in runs)) if runs else set()
    return {n: statistics.median(r.figures[n] for r in runs) for n in sorted(names)}


def summarize(runs: list[RunResult]) -> list[Summary]:
    """One summary per (scenario, tool, processes, concurrency): scenarios in the order they
    first ran, and within one, rows in the order they first ran (rounds interleave scenarios)."""
    groups: dict[tuple[str, str, int, int], list[RunResult]] = {}
    for r in runs:
        groups.setdefault((r.scenario, r.tool, r.processes, r.concurrency), []).append(r)
    scenarios = list(dict.fromkeys(r.scenario for r in runs))
    ordered = sorted(groups.items(), key=lambda item: scenarios.index(item[0][0]))
    out: list[Summary] = []
    for (scenario, tool, processes, _), group in ordered:
        ok = [r for r in group if r.error is None] or group
        rates = [r.pages_per_s for r in ok]
        per_cpu = [r.pages_per_cpu_s for r in ok]
        rss = [max(r.peak_rss_mb) for r in ok if r.peak_rss_mb]
        has_redis = any(r.redis_commands for r in ok)
        out.append(
            Summary(
                scenario=scenario,
                tool=tool,
                processes=processes,
                concurrency=group[0].concurrency,
                runs=len(group),
                errors=sum(r.error is not None for r in group),
                pages=statistics.median(r.pages for r in ok),
                page_set=_page_set(group),
                wall_s=statistics.median(r.wall_s for r in ok),
                pages_per_s=statistics.median(rates),
                pages_per_s_range=(min(rates), max(rates)),
                avg_in_flight=_median([r.avg_in_flight for r in ok]),
                cpu_crawler_s=statistics.median(r.cpu_crawler_s for r in ok),
                cpu_redis_s=statistics.median(r.cpu_redis_s for r in ok) if has_redis else None,
                cores=statistics.median(r.cpu_s / r.wall_s if r.wall_s else 0.0 for r in ok),
                pages_per_cpu_s=statistics.median(per_cpu),
                pages_per_cpu_s_range=(min(per_cpu), max(per_cpu)),
                redis_ms_per_page=_median([r.redis_ms_per_page for r in ok]),
                peak_rss_mb=max(rss) if rss else None,
                redis_dedupe_bytes_per_seen=_median([r.redis_dedupe_bytes_per_seen for r in ok]),
                redis_commands_per_page=_median([r.redis_commands_per_page for r in ok]),
                redis_round_trips_per_page=_median([r.redis_round_trips_per_page for r in ok]),
                cpu_s=statistics.median(r.cpu_s for r in ok),
                figures=_figures(ok),
                vs_wget=_vs_wget(ok),
            )
        )
    return out


def _versions() -> dict[str, str]:
    out: dict[str, str] = {}
    for name in ("crawlfleet", "scrapy", "scrapy-redis", "arq", "httpx", "redis", "psutil"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "missing"
    return out


def _fmt(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def _rate(value: float, spread: tuple[float, float], runs: int) -> str:
    if runs < 2:
        return f"{value:.0f}"
    return f"{value:.0f} ({spread[0]:.0f}-{spread[1]:.0f})"


def _row(s: Summary) -> list[str]:
    return [
        s.scenario,
        s.tool,
        f"{s.processes}x{s.concurrency}",
        str(s.runs),
        f"{s.pages:.0f}",
        s.page_set,
        _fmt(s.wall_s, 2),
        _rate(s.pages_per_s, s.pages_per_s_range, s.runs),
        _fmt(s.avg_in_flight),
        _fmt(s.cpu_crawler_s, 2),
        _fmt(s.cpu_redis_s, 2),
        _fmt(s.cores, 2),
        _rate(s.pages_per_cpu_s, s.pages_per_cpu_s_range, s.runs),
        _fmt(s.redis_ms_per_page, 3),
        _fmt(s.peak_rss_mb, 0),
        _fmt(s.redis_dedupe_bytes_per_seen, 0),
        _fmt(s.redis_commands_per_page),
        _fmt(s.redis_round_trips_per_page, 2),
    ]


def table(summaries: list[Summary]) -> str:
    rows = [_row(s) for s in summaries]
    # a column as wide as its widest cell, when one is wider than planned (long tool labels)
    widths = [max([w, *(len(r[i]) for r in rows)]) for i, (_, w) in enumerate(COLUMNS)]
    lines = ["  ".join(name.rjust(w) for (name, _), w in zip(COLUMNS, widths, strict=True))]
    for s, cells in zip(summaries, rows, strict=True):
        lines.append("  ".join(c.rjust(w) for c, w in zip(cells, widths, strict=True)))
        if s.errors:
            lines.append(f"    ^ {s.errors} of {s.runs} runs failed: see the JSON")
    return "\n".join(lines)


def _find(rows: list[Summary], scenario: str, tool: str, procs: int | None) -> Summary | None:
    """The first row of ``tool`` on ``scenario`` with ``procs`` processes, or the row with the
    most pages per CPU-second when ``procs`` is None (a peer at its best setting)."""
    found = [
        s
        for s in rows
        if s.scenario == scenario
        and s.tool == tool
        and s.errors < s.runs
        and (procs is None or s.processes == procs)
    ]
    if procs is None:
        return max(found, key=lambda s: s.pages_per_cpu_s or 0.0, default=None)
    return found[0] if found else None


def _pairs(runs: list[RunResult], top: str, bottom: str, workers: int) -> list[_Pair]:
    """crawlfleet's i-th run on scenario ``top`` with its i-th run on ``bottom`` (same workers,
    default extractor): runs of the same round, minutes apart at most. A round whose run on
    either side failed is left out, so a failure does not shift the pairing."""

    def in_order(scenario: str) -> list[RunResult]:
        return [
            r
            for r in runs
            if r.scenario == scenario and r.tool == "crawlfleet" and r.processes == workers
        ]

    return [
        _Pair(t, b)
        for t, b in zip(in_order(top), in_order(bottom), strict=False)
        if t.error is None and b.error is None and b.pages_per_s > 0 and t.cpu_s > 0
    ]


@dataclass(frozen=True)
class _Pair:
    """One round's crawl at 50 ms (``late``) and at 0 ms (``prompt``)."""

    late: RunResult
    prompt: RunResult

    @property
    def rate(self) -> float:
        """pages/s at 50 ms over pages/s at 0 ms: ``busy`` times ``cost``, exactly."""
        return self.late.pages_per_s / self.prompt.pages_per_s

    @property
    def busy(self) -> float:
        """Cores the crawl kept busy at 50 ms over those at 0 ms: what waiting cost."""
        return (self.late.cpu_s / self.late.wall_s) / (self.prompt.cpu_s / self.prompt.wall_s)

    @property
    def cost(self) -> float:
        """CPU per page at 0 ms over CPU per page at 50 ms: below 1 when the same pages cost
        more at 50 ms."""
        return (self.prompt.cpu_s / self.prompt.pages) / (self.late.cpu_s / self.late.pages)


def ratios(report: Report) -> dict[str, float]:
    """The issue's target ratios, from the medians, where both sides ran; the latency ratio
    is the median of the rounds' own ratios."""
    rows, plan = summarize(report.runs), report.plan
    out: dict[str, float] = {}
    for scenario in ("a", "b", "docs"):
        for tool in ("crawlfleet", "crawlfleet (fast)"):
            cf = _find(rows, scenario, tool, plan.workers)
            for peer in ("scrapy", "scrapy-redis"):
                other = _find(rows, scenario, peer, None)
                if cf and other and other.pages_per_cpu_s:
                    key = f"{scenario}: pages/CPU-s {tool} / {peer}"
                    out[key] = round(cf.pages_per_cpu_s / other.pages_per_cpu_s, 2)
    pooled: list[_Pair] = []
    for workers in plan.scaling:
        paired = _pairs(report.runs, "b", "a", workers)
        pooled += paired
        if paired:
            key = f"latency hidden ({workers} workers): pages/s 50 ms / 0 ms"
            out[key] = round(statistics.median(p.rate for p in paired), 2)
    if "b" in report.sites:
        # what a crawler with crawlfleet's 0 ms rate and no other cost could keep at 50 ms
        site = report.sites["b"]
        config = SiteConfig.from_dict(site["config"])
        for workers in plan.scaling:
            at_zero = _find(rows, "a", "crawlfleet", workers)
            if at_zero and at_zero.pages_per_s:
                key = f"latency hidden, best possible ({workers} workers): model crawler"
                out[key] = round(
                    best_latency_ratio(
                        config, site["depth"], at_zero.pages_per_s, config.latency_s
                    ),
                    2,
                )
    if len(pooled) > 1:
        # the target's figure: one pair's ratio swings by +-15% with the machine's speed, so a
        # median of the 8 pairs of one worker count lands 0.05 either side of the truth
        out["latency hidden (all pairs): pages/s 50 ms / 0 ms"] = round(
            statistics.median(p.rate for p in pooled), 2
        )
        # the same ratio in its two factors: the cores kept busy hold still from run to run,
        # the CPU a page costs is what the machine's speed swings
        out["latency hidden (all pairs): cores busy 50 ms / 0 ms"] = round(
            statistics.median(p.busy for p in pooled), 2
        )
        out["latency hidden (all pairs): CPU per page 0 ms / 50 ms"] = round(
            statistics.median(p.cost for p in pooled), 2
        )
    for scenario in ("a", "b", "c"):
        one = _find(rows, scenario, "crawlfleet", 1)
        for workers in plan.scaling:
            many = _find(rows, scenario, "crawlfleet", workers)
            if workers > 1 and one and many and one.pages_per_s:
                key = f"{scenario}: scaling pages/s {workers} workers / 1 worker"
                out[key] = round(many.pages_per_s / one.pages_per_s, 2)
    for scenario in ("docs", "pgdocs"):
        out.update(_defaults_ratios(rows, scenario, plan.workers))
    out.update(_polite_ratios(rows, plan.workers, plan.polite_delay_s))
    out.update(_fair_ratios(rows, plan.workers))
    out.update(_slow_ratios(rows, plan.workers))
    out.update(_recrawl_ratios(rows, plan.workers))
    out.update(_warc_ratios(report.runs, rows, plan.workers))
    resumed = report.resume
    if resumed is not None and resumed.error is None and resumed.rounds:
        out["resume: seconds per page resumed / fresh"] = round(resumed.median("ratio"), 2)
        out["resume: seconds per page resumed / fresh, first page to last"] = round(
            resumed.median("crawling_ratio"), 2
        )
    return out


def _ratio(top: float | None, bottom: float | None) -> float | None:
    return round(top / bottom, 2) if top is not None and bottom else None


def _defaults_ratios(rows: list[Summary], scenario: str, workers: int) -> dict[str, float]:
    """The tools at their defaults on a docs site: crawlfleet's pages/CPU-s over Scrapy's, its
    CPU over that of the same crawl at per-host concurrency = the total (``crawlfleet``), its
    wall time over wget's."""
    found = {
        tool: _find(rows, scenario, tool, workers if tool.startswith("crawlfleet") else None)
        for tool in (
            "crawlfleet (defaults)", "crawlfleet (fast, defaults)", "crawlfleet",
            "scrapy (defaults)", "wget",
        )
    }  # fmt: skip
    phc = found["crawlfleet"]
    per_host = int(phc.figures.get("per_host_concurrency", 0)) if phc else 0
    got: dict[str, float | None] = {}
    for tool in ("crawlfleet (defaults)", "crawlfleet (fast, defaults)"):
        cf, scrapy, wget = found[tool], found["scrapy (defaults)"], found["wget"]
        if cf is None:
            continue
        if scrapy:
            key = f"{scenario}: pages/CPU-s {tool} / scrapy (defaults)"
            got[key] = _ratio(cf.pages_per_cpu_s, scrapy.pages_per_cpu_s)
        if wget:
            got[f"{scenario}: wall s {tool} / wget"] = _ratio(cf.wall_s, wget.wall_s)
    cf = found["crawlfleet (defaults)"]
    plain = _find(rows, scenario, "crawlfleet (defaults, no adaptive)", workers)
    if cf and plain:
        key = f"{scenario}: pages/CPU-s crawlfleet (defaults) / (defaults, no adaptive)"
        got[key] = _ratio(cf.pages_per_cpu_s, plain.pages_per_cpu_s)
        got[f"{scenario}: wall s crawlfleet (defaults) / (defaults, no adaptive)"] = _ratio(
            cf.wall_s, plain.wall_s
        )
    if cf and phc:
        key = f"{scenario}: CPU s crawlfleet (defaults) / crawlfleet (per-host {per_host})"
        got[key] = _ratio(cf.cpu_s, phc.cpu_s)
    return {k: v for k, v in got.items() if v is not None}


def _polite_ratios(rows: list[Summary], workers: int, delay_s: float) -> dict[str, float]:
    """The per-host delay: what it costs in CPU, and how close the crawl keeps to its bound."""
    plain = _find(rows, "polite", "crawlfleet (defaults)", workers)
    delayed = _find(rows, "polite", f"crawlfleet (defaults, delay {delay_s:g})", workers)
    if delayed is None:
        return {}
    got = {
        f"polite: wall s delayed {delay_s:g} / politeness bound": _ratio(
            delayed.wall_s, delayed.figures.get("politeness_bound_s")
        ),
    }
    if plain:
        got[f"polite: CPU s (workers + Redis) delayed {delay_s:g} / undelayed"] = _ratio(
            delayed.cpu_s, plain.cpu_s
        )
        got[f"polite: Redis commands per page delayed {delay_s:g} / undelayed"] = _ratio(
            delayed.redis_commands_per_page, plain.redis_commands_per_page
        )
    return {k: v for k, v in got.items() if v is not None}


def _fair_ratios(rows: list[Summary], workers: int) -> dict[str, float]:
    """When the ordinary hosts' last page was stored, with the endless host over without."""
    alone = _find(rows, "fair", "crawlfleet (defaults)", workers)
    trapped = _find(rows, "fair", "crawlfleet (defaults, + endless host)", workers)
    if alone is None or trapped is None:
        return {}
    value = _ratio(
        trapped.figures.get("ordinary_hosts_done_s"), alone.figures.get("ordinary_hosts_done_s")
    )
    return {} if value is None else {"fair: ordinary hosts done s with / without trap": value}


def _slow_ratios(rows: list[Summary], workers: int) -> dict[str, float]:
    """When the ordinary hosts' last page was stored, beside the slow hosts over alone; the
    requests each slow URL drew; when the crawl with them ended."""
    alone = _find(rows, "slow", "crawlfleet (defaults)", workers)
    beside = _find(rows, "slow", "crawlfleet (defaults, + slow hosts)", workers)
    if beside is None:
        return {}
    got = {
        "slow: requests per slow URL": beside.figures.get("slow_requests_per_url"),
        "slow: crawl done s with slow hosts": round(beside.wall_s, 1),
    }
    if alone is not None:
        got["slow: ordinary hosts done s with / without slow hosts"] = _ratio(
            beside.figures.get("ordinary_hosts_done_s"), alone.figures.get("ordinary_hosts_done_s")
        )
    return {k: v for k, v in got.items() if v is not None}


def _recrawl_ratios(rows: list[Summary], workers: int) -> dict[str, float]:
    """Per recrawl site, the CPU (workers and Redis) of the crawl --since over the first
    crawl's (the median of the rounds' own ratios); the bodies and 304s the server sent the
    recrawl."""
    got: dict[str, float | None] = {}
    for scenario in ("recrawl", "recrawl-docs"):
        again = _find(rows, scenario, "crawlfleet (since)", workers)
        if again is None:
            continue
        cpu = again.figures.get("cpu_of_first")
        got |= {
            f"{scenario}: CPU (crawler + Redis) unchanged recrawl / first crawl": (
                None if cpu is None else round(cpu, 2)
            ),
            f"{scenario}: bodies sent to the recrawl": again.figures.get("bodies_sent"),
            f"{scenario}: 304s sent to the recrawl": again.figures.get("not_modified"),
        }
    return {k: v for k, v in got.items() if v is not None}


WARC_PLAIN, WARC_ON = "crawlfleet (defaults)", "crawlfleet (defaults, warc)"


def _warc_ratios(runs: list[RunResult], rows: list[Summary], workers: int) -> dict[str, float]:
    """What --warc costs on the docs at defaults: pages per CPU-second with over without (the
    median of each round's own pair, and of the medians), and each row's disk use over the
    gzipped size of its content."""

    def in_order(tool: str) -> list[RunResult]:
        return [r for r in runs if r.scenario == "warc" and r.tool == tool]

    pairs = [
        (on, plain)
        for on, plain in zip(in_order(WARC_ON), in_order(WARC_PLAIN), strict=False)
        if on.error is None and plain.error is None and plain.pages_per_cpu_s
    ]
    got: dict[str, float | None] = {}
    if pairs:
        got["warc: pages/CPU-s with / without --warc (median of rounds)"] = round(
            statistics.median(on.pages_per_cpu_s / plain.pages_per_cpu_s for on, plain in pairs),
            2,
        )
    on, plain = _find(rows, "warc", WARC_ON, workers), _find(rows, "warc", WARC_PLAIN, workers)
    if on and plain:
        key = "warc: pages/CPU-s with / without --warc (medians)"
        got[key] = _ratio(on.pages_per_cpu_s, plain.pages_per_cpu_s)
    for row, what in ((on, "with"), (plain, "without")):
        if row is not None:
            key = f"warc: disk (files) / gzipped content, {what} --warc"
            value = row.figures.get("disk_over_content_gzip")
            got[key] = None if value is None else round(value, 2)
    return {k: v for k, v in got.items() if v is not None}


def _mib(figures: dict[str, float], name: str) -> str:
    return f"{figures.get(name, 0) / 2**20:.2f}"


def _warc_lines(rows: list[Summary]) -> list[str]:
    """The warc scenario's disk use, by kind of file, for each row."""
    lines = []
    for s in rows:
        f = s.figures
        if s.scenario != "warc" or "disk_files_bytes" not in f:
            continue
        lines.append(
            f"warc: {s.tool}: {_mib(f, 'disk_files_bytes')} MiB in files (page records "
            f"{_mib(f, 'disk_records_bytes')} in {f.get('record_files', 0):.0f} files, bodies "
            f"{_mib(f, 'disk_bodies_bytes')}, WARC {_mib(f, 'disk_warc_bytes')}, manifest "
            f"{_mib(f, 'disk_manifest_bytes')}, other {_mib(f, 'disk_other_bytes')}), folders "
            f"{_mib(f, 'disk_folders_bytes')} MiB; content {_mib(f, 'content_bytes')} MiB, "
            f"gzipped {_mib(f, 'content_gzip_bytes')} MiB"
        )
    return lines


def _ordinary_done(rows: list[Summary], scenario: str) -> str:
    """When each run of ``scenario`` stored its ordinary hosts' last page (fair, slow)."""
    return ", ".join(
        f"{s.tool} {s.figures['ordinary_hosts_done_s']:.2f} s"
        for s in rows
        if s.scenario == scenario and "ordinary_hosts_done_s" in s.figures
    )


def scenario_lines(report: Report) -> list[str]:
    """What the table has no column for: page sets against wget's, the politeness bound, when
    the fair scenario's ordinary hosts were done."""
    rows = summarize(report.runs)
    lines: list[str] = []
    for scenario in ("docs", "pgdocs"):
        site = report.sites.get(scenario)
        if site is None:
            continue
        against = [f"{s.tool}: {s.vs_wget}" for s in rows if s.scenario == scenario and s.vs_wget]
        wget = next((s for s in rows if s.scenario == scenario and s.tool == "wget"), None)
        if against:
            lines.append(
                f"{scenario}: page sets against wget's (same round): " + "; ".join(against)
            )
        if wget and wget.figures:
            lines.append(
                f"{scenario}: wget fetched {wget.figures.get('urls_fetched', 0):.0f} URLs, "
                f"{wget.figures.get('non_page_urls', 0):.0f} of them not pages (stylesheets, "
                f"images, <link> targets), {wget.figures.get('error_statuses', 0):.0f} error "
                "statuses; its page set is the rest"
            )
        lines.append(f"{scenario}: served by {site.get('server', '?')}")
    polite = report.sites.get("polite")
    if polite:
        per_host = polite["urls_per_host"].values()
        walls = ", ".join(f"{s.tool} {s.wall_s:.2f} s" for s in rows if s.scenario == "polite")
        lines.append(
            f"polite: politeness bound {polite['politeness_bound_s']:.2f} s = (busiest host's "
            f"{max(per_host)} URLs - 1) x {polite['per_host_delay_s']:g} s "
            f"({min(per_host)}-{max(per_host)} URLs a host); wall: {walls}"
        )
        cold = polite.get("cold_work_us")
        if cold:
            lines.append(
                f"polite: one page's link extraction took {cold['back_to_back']:.0f} us of CPU "
                f"back to back and {cold['after_delay']:.0f} us after "
                f"{polite['per_host_delay_s']:g} s asleep: the machine's own price of work done "
                "after a wait"
            )
    fair = report.sites.get("fair")
    if fair:
        done = _ordinary_done(rows, "fair")
        lines.append(
            f"fair: {len(fair['ordinary_hosts'])} ordinary hosts ({fair['pages_expected']} "
            f"pages), the endless host {fair['trap_host']} ({fair['trap_pages_expected']} pages "
            f"within depth {fair['depth']}); the ordinary hosts' last page stored at: {done}"
        )
    slow = report.sites.get("slow")
    if slow:
        done = _ordinary_done(rows, "slow")
        beside = next((s for s in rows if s.scenario == "slow" and s.figures.get(
            "slow_requests_per_url") is not None), None)  # fmt: skip
        after = ""
        if beside is not None:
            after = (
                f"; with them {beside.figures['slow_requests_per_url']:.2f} requests per slow "
                f"URL, {beside.figures.get('slow_urls_recorded', 0):.0f} of {slow['slow_urls']} "
                f"recorded, crawl done at {beside.wall_s:.1f} s"
            )
        lines.append(
            f"slow: {len(slow['ordinary_hosts'])} ordinary hosts ({slow['pages_expected']} "
            f"pages), {slow['slow_hosts']} slow hosts ({slow['slow_urls']} URLs answered after "
            f"{slow['slow_after_s']:g} s); the ordinary hosts' last page stored at: {done}{after}"
        )
    for scenario in ("recrawl", "recrawl-docs"):
        site = report.sites.get(scenario)
        again = next(
            (s for s in rows if s.scenario == scenario and "cpu_of_first" in s.figures), None
        )
        first = next((s for s in rows if s.scenario == scenario and s.tool == "crawlfleet"), None)
        if site and again and first:
            lines.append(
                f"{scenario}: {site['pages_expected']} pages with ETags, crawled "
                f"({first.cpu_s:.2f} CPU-s, workers + Redis; "
                f"{first.figures.get('bodies_sent', 0):.0f} bodies sent), then again --since "
                f"that crawl, unchanged ({again.cpu_s:.2f} CPU-s; "
                f"{again.figures.get('bodies_sent', 0):.0f} bodies and "
                f"{again.figures.get('not_modified', 0):.0f} 304s sent; "
                f"{again.figures.get('unchanged', 0):.0f} pages unchanged): the recrawl's CPU "
                f"is {again.figures['cpu_of_first']:.2f} of the first crawl's (median of the "
                "rounds)"
            )
    return lines + _warc_lines(rows)


def machine_spread(runs: list[RunResult]) -> tuple[float, float, float] | None:
    """The machine's speed before the runs (``bench.measure.machine_speed``): min, median,
    max."""
    speeds = [r.machine_mops for r in runs if r.machine_mops is not None]
    if not speeds:
        return None
    return min(speeds), statistics.median(speeds), max(speeds)


def summary(report: Report, figures: dict[str, float]) -> str:
    """The table and the lines after it; ``figures`` are ``ratios(report)``."""
    parts = [table(summarize(report.runs))]
    parts.append(
        "medians of n runs (min-max); procs = processes x concurrency each; set = page set vs "
        "the BFS ground truth (exact, or -missing+extra in the worst run; H = HTML pages only); "
        "inflt = requests in flight on average (fetch time / wall time); "
        "CPU s = the crawler's processes over the crawl; cores = (crawler + Redis CPU) / wall; "
        "pg/CPU-s = pages / (crawler + Redis CPU); B/seen = MEMORY USAGE of the dedupe keys per "
        "seen URL; cmds/pg = Redis commands per page (inside Lua scripts included); "
        "rt/pg = round trips to Redis per page (reads Redis did: a pipeline or script is one)"
    )
    if report.frontier and report.frontier.final:
        f = report.frontier.final
        longest = max(c.queue_length for c in report.frontier.checkpoints)
        parts.append(
            f"d: large frontier: {f.seen:,} URLs seen, {f.queued:,} waiting: "
            f"{f.bytes_per_url:.1f} B of Redis per URL, {f.bytes_per_seen:.1f} B of it in the "
            f"seen buckets ({f.seen_encoding}); arq queue at most {longest} jobs "
            f"(the hosts' slots: {f.slots}); per checkpoint: "
            + ", ".join(
                f"{c.seen // 1000}k: {c.bytes_per_url:.0f}/{c.bytes_per_seen:.0f} B"
                for c in report.frontier.checkpoints
            )
        )
    speed = machine_spread(report.runs)
    if speed:
        low, mid, high = speed
        parts.append(
            f"machine: a fixed pure-Python loop ran {low:.1f}-{high:.1f} (median {mid:.1f}) "
            "million turns per CPU-second just before the runs: what the machine's own speed "
            "swung, whatever the crawlers did"
        )
    for ceiling in report.ceilings:
        parts.append(f"ceiling: {ceiling.line()}")
    if report.startup:
        parts.append(report.startup.line())
    if report.resume:
        parts.append(report.resume.line())
    parts += scenario_lines(report)
    for key, value in figures.items():
        parts.append(f"ratio: {key} = {value}")
    for skipped in report.skipped:
        parts.append(f"skipped: {skipped}")
    return "\n".join(parts)


def to_json(
    report: Report, figures: dict[str, float], started: datetime, seconds: float
) -> dict[str, Any]:
    return {
        "date": started.isoformat(timespec="seconds"),
        "duration_s": round(seconds, 1),
        "plan": report.plan.to_dict(),
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "versions": _versions(),
            "file_create_us": report.file_create_us,
            "speed_mops_min_median_max": machine_spread(report.runs),
        },
        "sites": report.sites,
        "ceilings": [c.to_dict() for c in report.ceilings],
        "summary": [s.to_dict() for s in summarize(report.runs)],
        "runs": [r.to_dict() for r in report.runs],
        "frontier": report.frontier.to_dict() if report.frontier else None,
        "startup": report.startup.to_dict() if report.startup else None,
        "resume": report.resume.to_dict() if report.resume else None,
        "ratios": figures,
        "skipped": report.skipped,
    }


def write(
    report: Report, figures: dict[str, float], out_dir: Path, started: datetime, seconds: float
) -> Path:
    """Write ``<date>.json`` (``<date>-quick.json`` for the quick plan) and a ``latest`` copy;
    ``figures`` are ``ratios(report)``, taken once for this and ``summary`` (the model
    crawler's bound alone runs two model crawls per worker count)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    suffix = "" if report.plan.name == "full" else f"-{report.plan.name}"
    day = started.astimezone(UTC).strftime("%Y-%m-%d")
    path = out_dir / f"{day}{suffix}.json"
    path.write_text(json.dumps(to_json(report, figures, started, seconds), indent=1) + "\n")
    shutil.copyfile(path, out_dir / f"latest{suffix}.json")
    return path
