"""What a finished crawl's folder takes on disk, against the compressed size of its content.

The disk use is what the file system gives the files (``st_blocks`` x 512, every file under
``<data-dir>/<crawl-id>``), sorted by what they are: page records (the record logs, or the record
files of a crawl written before them), body files, WARC files and the rest (manifest, index);
the folders themselves are counted apart. The content is every stored
body as the crawl reads it back (``crawlfleet cat``: its content coding undone), each gzipped at
gzip's default level (6), summed: what a plain archive of the pages would take.
"""

from __future__ import annotations

import os
import zlib
from pathlib import Path

from crawlfleet.scheduler.readback import FinishedCrawl
from crawlfleet.shared.errors import NotStored
from crawlfleet.shared.storage import MANIFEST, PAGES, RECORDS, WARC

GZIP_LEVEL = 6  # gzip's own default


def _kind(relative: Path) -> str:
    """Which of the figures a file of the crawl counts in."""
    top = relative.parts[0]
    if top == RECORDS:
        return "records"
    if top == PAGES:
        return "records" if relative.suffix == ".json" else "bodies"
    if top == WARC:
        return "warc"
    return "manifest" if relative.name == MANIFEST else "other"


def disk_use(root: Path) -> dict[str, int]:
    """Bytes allocated to the files under ``root`` (in all, and by kind: records, bodies,
    warc, manifest, other), to its folders (``folders``), and how many files hold the page
    records (``record_files``: logs, or a file per record in a crawl written before them)."""
    figures = dict.fromkeys(("files", "records", "bodies", "warc", "manifest", "other"), 0)
    figures["folders"] = figures["record_files"] = 0
    for folder, dirs, names in os.walk(root):
        here = Path(folder)
        for name in dirs:
            figures["folders"] += os.lstat(here / name).st_blocks * 512
        for name in names:
            path = here / name
            size = os.lstat(path).st_blocks * 512
            kind = _kind(path.relative_to(root))
            figures["files"] += size
            figures[kind] += size
            figures["record_files"] += kind == "records"
    figures["folders"] += os.lstat(root).st_blocks * 512
    return figures


def _gzipped_size(data: bytes) -> int:
    compressor = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, zlib.MAX_WBITS | 16)
    return len(compressor.compress(data)) + len(compressor.flush())


def content_sizes(data_dir: Path, crawl_id: str) -> tuple[int, int]:
    """The stored bodies of a finished crawl: their bytes, and their gzipped bytes, summed."""
    crawl = FinishedCrawl(data_dir, crawl_id)
    raw = packed = 0
    for record in crawl.pages():
        try:
            body = crawl.body(record)
        except NotStored:
            continue
        raw += len(body)
        packed += _gzipped_size(body)
    return raw, packed


def disk_figures(data_dir: Path, crawl_id: str) -> dict[str, float]:
    """The figures a run reports: ``disk_<kind>_bytes`` (``disk_use``), the content's bytes
    and gzipped bytes, and the files' disk use over the gzipped content."""
    use = disk_use(data_dir / crawl_id)
    raw, packed = content_sizes(data_dir, crawl_id)
    figures: dict[str, float] = {
        f"disk_{k}_bytes": v for k, v in use.items() if k != "record_files"
    }
    figures["record_files"] = use["record_files"]
    figures["content_bytes"] = raw
    figures["content_gzip_bytes"] = packed
    if packed:
        figures["disk_over_content_gzip"] = round(use["files"] / packed, 3)
    return figures
