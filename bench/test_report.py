"""The benchmark's report: rows grouped by scenario, and the latency ratio taken per round."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

import pytest

from bench.disk import disk_figures
from bench.ideal import best_latency_ratio, model_crawl
from bench.measure import machine_speed
from bench.report import WARC_ON, WARC_PLAIN, machine_spread, ratios, scenario_lines, summarize
from bench.result import RunResult
from bench.resume import ResumeResult, ResumeRound, run_resume
from bench.scenarios import FULL, QUICK, Bench, Report
from crawlfleet.shared.crawl import CrawlSpec
from crawlfleet.shared.settings import Settings
from tests.support.crawling import crawl_in_process, read_manifest
from tests.support.synthetic import SCENARIO_A, SyntheticSite
from tests.support.testweb import TestWeb, star_site
from tests.support.warcs import CAP, warc_site


def _run(scenario: str, tool: str, processes: int, pages_per_s: float) -> RunResult:
    # 1,000 pages in 1,000 / pages_per_s seconds, 1 CPU-second a run
    return RunResult(
        scenario=scenario,
        tool=tool,
        processes=processes,
        concurrency=128,
        depth=4,
        pages=1000,
        wall_s=1000 / pages_per_s,
        cpu_crawler_s=1.0,
    )


def test_rows_stay_grouped_by_scenario_when_rounds_interleave_them() -> None:
    """Rounds run a then b for each worker count; the table still lists a's rows, then b's."""
    runs = []
    for _ in range(2):
        for workers in (2, 1):
            runs += [_run("a", "crawlfleet", workers, 500), _run("b", "crawlfleet", workers, 450)]
        runs.append(_run("a", "scrapy", 1, 200))
    rows = [(s.scenario, s.tool, s.processes, s.runs) for s in summarize(runs)]
    assert rows == [
        ("a", "crawlfleet", 2, 2),
        ("a", "crawlfleet", 1, 2),
        ("a", "scrapy", 1, 2),
        ("b", "crawlfleet", 2, 2),
        ("b", "crawlfleet", 1, 2),
    ]


def test_latency_ratio_is_the_median_of_each_rounds_own_ratio() -> None:
    """A slow spell that hits one round's pair alike leaves that round's ratio alone: the
    ratio of the medians would read it as latency not hidden."""
    pairs = [(1000, 950), (1000, 900), (600, 570)]  # 0 ms, then 50 ms, in each round
    runs = []
    for fast, slow in pairs:
        runs += [_run("a", "crawlfleet", 2, fast), _run("b", "crawlfleet", 2, slow)]
    got = ratios(Report(plan=FULL, runs=runs))
    assert got["latency hidden (2 workers): pages/s 50 ms / 0 ms"] == 0.95
    # the medians' ratio would have been 900 / 1000
    assert "latency hidden (1 workers): pages/s 50 ms / 0 ms" not in got


def test_a_failed_run_leaves_its_round_out_of_the_latency_ratio() -> None:
    """A round whose 0 ms run failed is dropped whole: the rounds after it stay paired with
    their own 50 ms runs."""
    failed = _run("a", "crawlfleet", 2, 1000)
    failed.error = "timeout"
    runs = [failed, _run("b", "crawlfleet", 2, 500)]
    for fast, slow in [(1000, 950), (600, 570)]:
        runs += [_run("a", "crawlfleet", 2, fast), _run("b", "crawlfleet", 2, slow)]
    got = ratios(Report(plan=FULL, runs=runs))
    assert got["latency hidden (2 workers): pages/s 50 ms / 0 ms"] == 0.95


def test_the_pooled_latency_ratio_is_the_median_of_every_pair() -> None:
    """Each worker count has few pairs; the target's figure takes every pair of every count."""
    runs = []
    for workers, pairs in {1: [(1000, 800), (1000, 990)], 2: [(1000, 930), (1000, 970)]}.items():
        for fast, slow in pairs:
            runs += [_run("a", "crawlfleet", workers, fast), _run("b", "crawlfleet", workers, slow)]
    got = ratios(Report(plan=FULL, runs=runs))
    assert got["latency hidden (1 workers): pages/s 50 ms / 0 ms"] == 0.9  # (0.8 + 0.99) / 2
    assert got["latency hidden (2 workers): pages/s 50 ms / 0 ms"] == 0.95
    assert got["latency hidden (all pairs): pages/s 50 ms / 0 ms"] == 0.95  # of 0.8 .93 .97 .99


def test_the_latency_ratio_splits_into_cores_kept_busy_and_cpu_per_page() -> None:
    """pages/s at 50 ms over 0 ms is the cores kept busy times the CPU per page, both as
    ratios: a crawl that waits shows in the first, pages that cost more in the second."""
    runs = []
    # (wall s, CPU s) at 0 ms, then at 50 ms, of 1,000 pages in each round
    rounds = [((1.0, 1.0), (1.25, 1.1)), ((1.0, 1.0), (1.0, 0.9)), ((2.0, 2.0), (2.5, 2.5))]
    for prompt, late in rounds:
        for scenario, (wall, cpu) in (("a", prompt), ("b", late)):
            run = _run(scenario, "crawlfleet", 2, 1000 / wall)
            run.cpu_crawler_s = cpu
            runs.append(run)
    got = ratios(Report(plan=FULL, runs=runs))
    assert got["latency hidden (all pairs): pages/s 50 ms / 0 ms"] == 0.8  # .8 1 .8
    assert got["latency hidden (all pairs): cores busy 50 ms / 0 ms"] == 0.9  # .88 .9 1
    assert got["latency hidden (all pairs): CPU per page 0 ms / 50 ms"] == 0.91  # .91 1.11 .8


def test_the_pairs_run_in_turned_order_every_other_round(tmp_path: Path) -> None:
    """a then b in even rounds, b then a in odd ones, so that a drift of the machine's speed
    within a pair favours neither side; the peers and the fast extractor run in the first
    ``repeat`` rounds only."""
    plan = replace(FULL, repeat=2, pair_rounds=1, scaling=(1, 2), workers=2)
    bench = Bench(plan, tmp_path, keep=False, log=lambda line: None)
    order: list[tuple[str, int, str]] = []

    def fleet(scenario: str, seeds: list[str], depth: int, workers: int, *args: object,
              **kwargs: object) -> None:  # fmt: skip
        extractor = args[2] if len(args) > 2 else "bs4"  # (expected, pid, extractor)
        order.append((scenario, workers, str(extractor)))

    bench._synthetic_site = lambda servers, scenario, config: ([], set(), 0)  # type: ignore[method-assign]
    bench._fleet = fleet  # type: ignore[method-assign,assignment]
    bench._scrapy = lambda *args: order.append(("peer", 0, "scrapy"))  # type: ignore[method-assign,assignment]
    bench._peer = lambda *args, **kwargs: order.append(("peer", 0, "other"))  # type: ignore[method-assign,assignment]
    bench.synthetic([("a", FULL.site, True, True), ("b", FULL.site, True, True)])
    crawls = [(s, w) for s, w, e in order if s != "peer" and e == "bs4"]
    assert crawls == [
        ("a", 2), ("b", 2), ("a", 1), ("b", 1),  # round 0
        ("b", 2), ("a", 2), ("b", 1), ("a", 1),  # round 1, turned
        ("a", 2), ("b", 2), ("a", 1), ("b", 1),  # round 2: pairs only
    ]  # fmt: skip
    fast = [i for i, (_, _, e) in enumerate(order) if e == "fast"]
    assert len(fast) == plan.repeat
    assert order[-4:] == [("a", 2, "bs4"), ("b", 2, "bs4"), ("a", 1, "bs4"), ("b", 1, "bs4")]


def test_the_machine_speed_is_measured_and_summed_up() -> None:
    speed = machine_speed(cpu_s=0.02)
    assert speed > 0
    runs = [_run("a", "crawlfleet", 1, 500) for _ in range(3)]
    for run, mops in zip(runs, (12.0, 18.0, 10.0), strict=True):
        run.machine_mops = mops
    assert machine_spread(runs) == (10.0, 12.0, 18.0)
    assert machine_spread([_run("a", "crawlfleet", 1, 500)]) is None


def test_the_model_crawler_finds_the_ground_truth_and_pays_only_the_waits_it_cannot_hide() -> None:
    """At 0 ms the model takes pages / rate; with latency, longer but by less than one wait
    per level; the bound lands in the report next to the measured ratio."""
    config, depth = QUICK.site, QUICK.depth
    pages = len(SyntheticSite(config, port=1).ground_truth(depth))
    at_zero, found = model_crawl(config, depth, 500.0, 0.0)
    assert found == pages and at_zero == pytest.approx(pages / 500.0)
    with_latency, found = model_crawl(config, depth, 500.0, 0.05)
    assert found == pages
    assert at_zero + 0.05 < with_latency < at_zero + (depth + 1) * 0.05
    # the faster the CPU, the larger the share of the crawl spent waiting
    assert best_latency_ratio(config, depth, 2000.0, 0.05) < best_latency_ratio(
        config, depth, 200.0, 0.05
    )
    latency = replace(config, latency_s=0.05)
    report = Report(plan=QUICK, runs=[_run("a", "crawlfleet", 1, 500)])
    report.sites["b"] = {"config": latency.to_dict(), "depth": depth}
    got = ratios(report)["latency hidden, best possible (1 workers): model crawler"]
    assert got == round(at_zero / with_latency, 2)


def test_the_slow_scenario_reports_the_ordinary_hosts_ratio_and_the_slow_urls_requests() -> None:
    """slow: the ordinary hosts' done time beside the slow hosts over alone, the requests per
    slow URL and when the crawl with them ended, from the runs' own figures; a line says it."""
    alone = _run("slow", "crawlfleet (defaults)", 2, 700)
    alone.figures["ordinary_hosts_done_s"] = 3.0
    beside = _run("slow", "crawlfleet (defaults, + slow hosts)", 2, 10)
    beside.figures.update(
        ordinary_hosts_done_s=3.3, slow_requests_per_url=0.7, slow_urls_recorded=1000
    )
    report = Report(plan=FULL, runs=[alone, beside])
    report.sites["slow"] = {
        "ordinary_hosts": ["127.0.0.2"] * 7, "pages_expected": 2036, "slow_hosts": 50,
        "slow_urls": 1000, "slow_after_s": 60.0,
    }  # fmt: skip
    got = ratios(report)
    assert got["slow: ordinary hosts done s with / without slow hosts"] == 1.1
    assert got["slow: requests per slow URL"] == 0.7
    assert got["slow: crawl done s with slow hosts"] == 100.0
    (line,) = [x for x in scenario_lines(report) if x.startswith("slow:")]
    assert "0.70 requests per slow URL, 1000 of 1000 recorded, crawl done at 100.0 s" in line


def test_the_real_site_compares_adaptive_politeness_on_and_off() -> None:
    """pgdocs: crawlfleet at its defaults over the same crawl with --no-adaptive, in pages
    per CPU-second and wall time."""
    on = _run("pgdocs", "crawlfleet (defaults)", 2, 800)  # 1.25 s, 1 CPU-s
    off = _run("pgdocs", "crawlfleet (defaults, no adaptive)", 2, 1000)  # 1 s
    off.cpu_crawler_s = 1.25
    got = ratios(Report(plan=FULL, runs=[on, off]))
    assert got["pgdocs: pages/CPU-s crawlfleet (defaults) / (defaults, no adaptive)"] == 1.25
    assert got["pgdocs: wall s crawlfleet (defaults) / (defaults, no adaptive)"] == 1.25


def test_the_recrawl_scenario_reports_the_cpu_ratio_and_the_bodies_sent() -> None:
    """recrawl: the median of the rounds' CPU ratios (recrawl over first crawl) and what the
    server sent the recrawl, per site; a line says it."""
    runs = []
    for ratio in (0.3, 0.25, 0.5):
        first = _run("recrawl-docs", "crawlfleet", 2, 100)
        first.figures.update(bodies_sent=518, not_modified=0)
        again = replace(_run("recrawl-docs", "crawlfleet (since)", 2, 700), cpu_crawler_s=ratio)
        again.figures.update(bodies_sent=0, not_modified=518, unchanged=517, cpu_of_first=ratio)
        runs += [first, again]
    report = Report(plan=FULL, runs=runs)
    report.sites["recrawl-docs"] = {"pages_expected": 518, "depth": 2}
    got = ratios(report)
    assert got["recrawl-docs: CPU (crawler + Redis) unchanged recrawl / first crawl"] == 0.3
    assert got["recrawl-docs: bodies sent to the recrawl"] == 0
    assert got["recrawl-docs: 304s sent to the recrawl"] == 518
    (line,) = [x for x in scenario_lines(report) if x.startswith("recrawl-docs:")]
    assert "0 bodies and 518 304s sent; 517 pages unchanged" in line
    assert "is 0.30 of the first crawl's" in line


def test_the_warc_scenario_pairs_its_rounds_and_reports_the_disk_against_the_content() -> None:
    """warc: pages per CPU-second with --warc over without, the median of each round's own
    pair (a slow spell over one round cancels out), and each row's disk use over the gzipped
    content, with a line per row of what the space went to."""
    runs = []
    for plain_cpu, warc_cpu in [(1.0, 1.25), (2.0, 2.2), (1.0, 1.1)]:
        plain, warc = _run("warc", WARC_PLAIN, 2, 500), _run("warc", WARC_ON, 2, 500)
        plain.cpu_crawler_s, warc.cpu_crawler_s = plain_cpu, warc_cpu
        plain.figures.update(disk_files_bytes=7 * 2**20, disk_over_content_gzip=7.0)
        warc.figures.update(disk_files_bytes=1.5 * 2**20, disk_records_bytes=2**20,
                            record_files=256, disk_over_content_gzip=1.5)  # fmt: skip
        runs += [plain, warc]
    got = ratios(Report(plan=FULL, runs=runs))
    # rounds: 0.8, 0.909, 0.909; the medians' ratio would be 1.0 / 1.25
    assert got["warc: pages/CPU-s with / without --warc (median of rounds)"] == 0.91
    assert got["warc: pages/CPU-s with / without --warc (medians)"] == 0.8
    assert got["warc: disk (files) / gzipped content, with --warc"] == 1.5
    assert got["warc: disk (files) / gzipped content, without --warc"] == 7.0
    lines = [x for x in scenario_lines(Report(plan=FULL, runs=runs)) if x.startswith("warc:")]
    assert len(lines) == 2
    assert "1.50 MiB in files (page records 1.00 in 256 files" in lines[1]


async def test_the_disk_figures_sum_the_blocks_of_a_crawls_files(
    web: TestWeb, settings: Settings
) -> None:
    """bench.disk: the files' blocks by kind (the record logs, one per worker process), their
    sum, and the stored bodies gzipped, from a real --warc crawl's folder."""
    seed, served = warc_site(web)
    spec = CrawlSpec(crawl_id="dk", seeds=[seed], depth=1, warc=True, max_bytes_per_page=CAP)
    await crawl_in_process(settings, spec)
    root = settings.data_dir / "dk"
    figures = disk_figures(settings.data_dir, "dk")
    files = [p for p in root.rglob("*") if p.is_file()]
    assert figures["disk_files_bytes"] == sum(p.stat().st_blocks * 512 for p in files)
    logs = [p for p in files if p.parent == root / "records"]
    assert figures["record_files"] == len(logs) == 1  # one worker process
    assert figures["disk_records_bytes"] == logs[0].stat().st_blocks * 512 > 0
    assert not (root / "pages").exists()  # with --warc, no body files and no record files
    assert figures["disk_warc_bytes"] == sum(
        p.stat().st_blocks * 512 for p in files if p.name.endswith(".warc.gz")
    )
    assert figures["disk_bodies_bytes"] == 0
    # the bodies as stored: decoded, cut at the cap (the manifest's lengths)
    stored = [
        r for r in read_manifest(settings.data_dir, "dk") if r["status"] and not r["redirect"]
    ]
    assert figures["content_bytes"] == sum(r["length"] for r in stored) > len(served[seed])
    assert 0 < figures["content_gzip_bytes"] < figures["content_bytes"]
    ratio = figures["disk_files_bytes"] / figures["content_gzip_bytes"]
    assert figures["disk_over_content_gzip"] == round(ratio, 3)


def test_the_resume_scenario_reports_seconds_per_page_resumed_over_fresh() -> None:
    """resume: each round's (resumed s / its pages) / (fresh s / pages), whole and from each
    run's first page to its last; their medians are the ratios, and a line says them."""
    rounds = [
        ResumeRound(
            fresh_s=10.0,
            fresh_pages=1000,
            resumed_s=9.0,
            resumed_pages=900,
            fresh_first_s=1.0,
            fresh_tail_s=1.0,
            resumed_first_s=1.5,
            resumed_tail_s=0.3,
        ),
        ResumeRound(fresh_s=10.0, fresh_pages=1000, resumed_s=11.0, resumed_pages=900),
        ResumeRound(fresh_s=10.0, fresh_pages=1000, resumed_s=18.0, resumed_pages=900),
    ]
    assert rounds[0].ratio == pytest.approx(1.0)
    assert rounds[0].crawling_ratio == pytest.approx((7.2 / 900) / (8.0 / 1000))
    report = Report(plan=FULL, resume=ResumeResult(rounds=rounds, pages_expected=1000))
    got = ratios(report)
    assert got["resume: seconds per page resumed / fresh"] == round(11.0 / 9.0, 2)
    assert "resume: seconds per page resumed / fresh, first page to last" in got
    assert "(rounds: 1.00, 1.22, 2.00)" in report.resume.line()  # type: ignore[union-attr]


@pytest.mark.slow
async def test_the_resume_scenario_stops_a_run_and_resumes_it_to_the_whole_crawl(
    web: TestWeb, tmp_path: Path
) -> None:
    """run_resume on a real site: a fresh `crawlfleet run`, one stopped by SIGTERM after its
    first page and the same command again; the pages of the two parts add up to the whole
    crawl, and each part's times are measured."""
    seed = star_site(web, pages=120, latency=0.2)
    result = await asyncio.to_thread(run_resume, tmp_path, [seed], 1, 1, 0.5, 240)
    assert result.error is None, result.error
    (got,) = result.rounds
    assert got.fresh_pages == got.total_pages == 121
    assert got.stopped_pages >= 1 and got.stopped_pages + got.resumed_pages == 121
    assert got.resumed_s > 0 and got.resumed_first_s > 0 and got.fresh_first_s > 0
    assert got.ratio > 0


def test_scenario_a_is_the_synthetic_web_the_figures_were_measured_on() -> None:
    """Scenario (a) crawls the shared synthetic web's 2,320 pages within 4 links: the bench's
    figures stay comparable from one run to the next only while it does."""
    assert FULL.site == SCENARIO_A and FULL.depth == 4
    assert len(SyntheticSite(FULL.site, port=1).ground_truth(FULL.depth)) == 2320
