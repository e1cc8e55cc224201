"""The benchmark's report: rows grouped by scenario, and the latency ratio taken per round."""

from __future__ import annotations

from bench.report import ratios, summarize
from bench.result import RunResult
from bench.scenarios import FULL, Report


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
