"""The bucket folders a worker process writes page bodies to, kept open per crawl: writing or
linking a body is then one call on a descriptor of its bucket, not a walk of four folders down
from the data directory (each opened without following a link, ``shared.nofollow``) for every
page.

A crawl's buckets are closed with its record log (``workers.record_logs``: when the process
stops, or once no record of the crawl has been appended for twice the job timeout). A bucket
removed meanwhile (the crawl's folder deleted while it runs) is made and opened again, so a body
never goes to a removed folder, as a record never goes to a removed log.
"""

from __future__ import annotations

import os
from pathlib import Path

from crawlfleet.shared.storage import CrawlLayout


class BodyFolders:
    """The open bucket folders of the crawls one worker process stores bodies for."""

    def __init__(self) -> None:
        self._open: dict[Path, dict[str, int]] = {}

    @property
    def open(self) -> list[Path]:
        """The folders of the crawls with buckets open."""
        return list(self._open)

    def bucket(self, layout: CrawlLayout, fp: str) -> int:
        """The descriptor of the folder of ``fp``'s files in the crawl (made if missing,
        reached without following a link); OSError if it cannot be opened."""
        buckets = self._open.get(layout.root)
        if buckets is None:
            buckets = self._open[layout.root] = {}
        fd = buckets.get(fp[:2])
        if fd is not None:
            if os.fstat(fd).st_nlink:
                return fd
            del buckets[fp[:2]]  # removed while open: what is written there is lost
            os.close(fd)
        fd = buckets[fp[:2]] = layout.open_bucket(fp)
        return fd

    def drop(self, crawl: Path) -> None:
        """Close the crawl's buckets, if any are open."""
        for fd in self._open.pop(crawl, {}).values():
            os.close(fd)

    def close(self) -> None:
        """Close every bucket."""
        for crawl in list(self._open):
            self.drop(crawl)
