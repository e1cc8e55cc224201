"""What the commands print of crawls: the summary of one that ended, and `status`'s table or
JSON of their states and counters."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import typer
from rich.table import Table

from crawlfleet.scheduler.console import err, out
from crawlfleet.scheduler.panel import (
    REASONS_SHOWN,
    changes_text,
    excluded_text,
    human_bytes,
    sitemaps_text,
    state_text,
)
from crawlfleet.shared.crawl import CrawlState, CrawlStatus
from crawlfleet.shared.storage import CrawlLayout


def print_summary(
    status: CrawlStatus, data_dir: Path, elapsed: float | None = None, done_before: int = 0
) -> None:
    """Print what a crawl did and where its files are (where its workers wrote them); exit 1,
    saying why, if it failed or ended with no page fetched."""
    c = status.counters
    took = ""
    if elapsed is not None:
        rate = (c.done - done_before) / max(elapsed, 1e-3)
        before = f"; {done_before} pages were done before this run" if done_before else ""
        took = f" in {elapsed:.1f}s ({rate:.1f} pages/s{before})"
    # the crawl's folder as its workers named it (their data directory may not be ours), else
    # as ours would be
    root = Path(status.manifest).parent if status.manifest else data_dir / status.crawl_id
    capped = f", {c.capped} not fetched (page caps)" if c.capped else ""
    reasons = sorted(c.reasons.items(), key=lambda kv: (-kv[1], kv[0]))
    why = "".join(f"\n  errors    {n} {reason}" for reason, n in reasons[:REASONS_SHOWN])
    changes = "" if status.spec.since is None else f"\n  changes   {changes_text(status)}"
    out.print(
        f"crawl {status.crawl_id} {status.state.value}{took}\n"
        f"  pages     {c.fetched} fetched, {c.failed} failed{excluded_text(c)}{capped}, "
        f"{human_bytes(c.bytes)}"
        + (f"\n  sitemaps  {sitemaps_text(c)}" if status.spec.sitemaps else "")
        + f"{changes}"
        f"{why}\n"
        # with --warc the bodies are in the WARC files: no pages folder
        + ("" if status.spec.warc else f"  files     {root / 'pages'}\n")
        + f"  manifest  {root / 'manifest.jsonl'}"
        + (
            f"\n  warc      {root / 'warc'}\n  index     {root / 'index.cdxj'}"
            if status.spec.warc
            else ""
        ),
        highlight=False,
        soft_wrap=True,
    )
    if status.state is CrawlState.FAILED:
        err.print(f"[bold red]error:[/bold red] {status.reason}", highlight=False, soft_wrap=True)
        raise typer.Exit(1)
    if status.state is CrawlState.DONE and c.fetched == 0 and c.failed:
        seeds = _seed_errors(CrawlLayout(root.parent, status.crawl_id))
        err.print(
            f"[bold red]error:[/bold red] no page could be fetched{seeds}",
            highlight=False,
            soft_wrap=True,
        )
        raise typer.Exit(1)


def _seed_errors(layout: CrawlLayout) -> str:
    """Why each seed failed, from the manifest (empty if it cannot be read here: the workers'
    data directory may not be this machine's)."""
    try:
        lines = layout.read(layout.manifest).decode(errors="replace").splitlines()
    except OSError:
        return ""
    said = []
    for line in lines:
        with contextlib.suppress(ValueError):
            record = json.loads(line)
            if record.get("depth") == 0 and record.get("error"):
                said.append(f"{record['url']}: {record['error']}")
    return "".join(f"\n  {line}" for line in said[:REASONS_SHOWN])


def status_json(status: CrawlStatus, stall_after_s: float) -> dict[str, object]:
    """A crawl's status as `status --json` prints it: its model, and how long it has stalled."""
    stalled = status.stalled_s(stall_after_s)
    return {
        **status.model_dump(mode="json"),
        "stalled_s": None if stalled is None else int(stalled),
    }


def print_status_table(statuses: list[CrawlStatus], stall_after_s: float) -> None:
    """A table of crawls, then each one's reason and changes on lines of their own."""
    table = Table("crawl", "state", "pages", "failed", "queue", "bytes", "depth", "seed")
    for s in statuses:
        c = s.counters
        seeds = s.spec.seeds[0] + (f" (+{len(s.spec.seeds) - 1})" if len(s.spec.seeds) > 1 else "")
        table.add_row(
            s.crawl_id, state_text(s, stall_after_s), str(c.fetched), str(c.failed), str(c.pending),
            human_bytes(c.bytes), str(s.spec.depth), seeds,
        )  # fmt: skip
    out.print(table)
    for s in statuses:  # a reason is a line of its own: a column would wrap it to pieces
        if s.reason is not None:
            out.print(f"{s.crawl_id} {s.state.value}: {s.reason}", highlight=False, soft_wrap=True)
    for s in statuses:  # and so is what a crawl --since another found changed
        if s.spec.since is not None:
            out.print(f"{s.crawl_id}: {changes_text(s)}", highlight=False, soft_wrap=True)
