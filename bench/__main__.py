"""``python -m bench [--quick]``: crawlfleet against Scrapy and scrapy-redis on loopback.

Prints progress as it goes and a table at the end; writes ``bench/results/<date>.json`` (the
quick plan: ``<date>-quick.json``) and a ``latest`` copy. See ``bench/README.md``.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from bench import report
from bench.scenarios import FULL, QUICK, SCENARIOS, Bench, default_work_dir, make_work_root


def _log(line: str) -> None:
    print(line, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sites, fewer runs (< 2 min)")
    parser.add_argument(
        "--only",
        help=f"comma-separated scenarios among {', '.join(SCENARIOS)} (default: all; "
        f"quick: {', '.join(QUICK.default_scenarios)}); any of them runs at the plan's sizes",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=Path(__file__).resolve().parent / "results",
        help="where the JSON goes (default: bench/results)",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        help=f"rounds of every crawl (full: {FULL.repeat}, quick: {QUICK.repeat})",
    )
    parser.add_argument(
        "--pair-rounds",
        type=int,
        help=f"extra rounds of crawlfleet's 0 ms / 50 ms pairs alone "
        f"(full: {FULL.pair_rounds}, quick: {QUICK.pair_rounds})",
    )
    parser.add_argument(
        "--work-dir",
        type=Path,
        default=default_work_dir(),
        help="where runs write pages, Redis files and logs (default: /dev/shm/crawlfleet-bench, "
        "a RAM disk, else bench/.work)",
    )
    parser.add_argument("--keep", action="store_true", help="keep each run's data and logs")
    args = parser.parse_args(argv)
    only = None
    if args.only:
        only = {s.strip() for s in args.only.split(",") if s.strip()}
        unknown = only - set(SCENARIOS)
        if unknown:
            parser.error(f"unknown scenarios: {', '.join(sorted(unknown))}")
    plan = QUICK if args.quick else FULL
    if args.repeat:
        plan = replace(plan, repeat=max(1, args.repeat))
    if args.pair_rounds is not None:
        plan = replace(plan, pair_rounds=max(0, args.pair_rounds))
    started_at = datetime.now(UTC)
    started = time.monotonic()
    work_root = make_work_root(args.work_dir)
    _log(f"bench ({plan.name}): work folder {work_root}")
    try:
        bench = Bench(plan, work_root, args.keep, _log)
        bench.probe_files()
        result = bench.run(only)
    finally:
        if not args.keep:
            shutil.rmtree(work_root, ignore_errors=True)
    seconds = time.monotonic() - started
    figures = report.ratios(result)
    path = report.write(result, figures, args.out, started_at, seconds)
    _log("")
    _log(report.summary(result, figures))
    _log(f"\n{len(result.runs)} runs in {seconds:.0f}s; results in {path}")
    return 1 if any(r.error for r in result.runs) else 0


if __name__ == "__main__":
    sys.exit(main())
