"""The page records a crawl's workers wrote to its record logs, read as finalizing reads them."""

from __future__ import annotations

from pathlib import Path

from crawlfleet.shared.storage import CrawlLayout, PageRecord


def stored_records(data_dir: Path, crawl_id: str) -> list[PageRecord]:
    """Every whole page record in the crawl's logs (and record files of its own), in log order;
    a page whose job ran twice, or that was fetched again at a shorter depth, more than once."""
    layout = CrawlLayout(data_dir, crawl_id)
    return [r for _, _, r in layout.records() if isinstance(r, PageRecord)]
