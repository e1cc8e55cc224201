"""Checks shared by the end-to-end tests."""

from __future__ import annotations

from pathlib import Path

from tests.support.crawling import read_manifest
from tests.support.records import stored_records


def assert_stored_exactly_once(data_dir: Path, crawl_id: str, expected: set[str]) -> None:
    """The crawl's manifest is ``expected``, each URL once, each with its files, no leftovers."""
    records = read_manifest(data_dir, crawl_id)
    urls = [r["url"] for r in records]
    assert len(urls) == len(set(urls)), "a URL is in the manifest twice"
    missing, extra = expected - set(urls), set(urls) - expected
    assert not missing and not extra, f"missing {sorted(missing)[:5]}, extra {sorted(extra)[:5]}"
    root = data_dir / crawl_id
    for r in records:
        if r["path"] is not None:
            assert (root / r["path"]).is_file(), r
    files = [p for p in root.rglob("*") if p.is_file()]
    assert not [p for p in files if p.name.endswith(".tmp")], "a half-written file is left"
    assert not [p for p in files if p.suffix == ".json"], "a record file of its own"
    # at least once: a record per page, more for a page whose job ran again
    logged = {(r.fingerprint, r.depth) for r in stored_records(data_dir, crawl_id)}
    assert {(r["fingerprint"], r["depth"]) for r in records} <= logged
