"""A worker process's record logs: the metadata record of each page it stores, appended to one
log per crawl, ``<crawl>/records/<worker>-<time>-<seq>.jsonl.gz`` (``shared.record_log``).

A record is compressed and appended in one write in the event loop (about a kilobyte, less
than creating a file of its own took), after the page's body and WARC records and before the
page is closed in Redis: a worker killed before the write ends leaves at most a cut last
member, which readers leave out, and the page, never closed, is fetched again. The log is
synced to disk when the process closes it.
"""

from __future__ import annotations

from pathlib import Path

from crawlfleet.shared.record_log import member
from crawlfleet.shared.settings import Settings
from crawlfleet.shared.storage import RECORD_LOG_SUFFIX, CrawlLayout, PageRecord, RecordAt
from crawlfleet.workers.append_file import AppendFile, file_stem


class RecordLogs:
    """The record logs of one worker process: one open log per crawl."""

    def __init__(self, settings: Settings) -> None:
        self._logs: dict[Path, AppendFile] = {}
        self._stem = file_stem(settings.worker_id)

    def append(self, layout: CrawlLayout, record: PageRecord) -> RecordAt:
        """Append ``record`` to the crawl's log (made on first use); where it is. OSError if
        the crawl's folder takes no file; the next record then starts another log if this
        one's end can no longer be vouched for."""
        data = member(record.model_dump_json().encode() + b"\n")
        crawl = layout.root
        log = self._logs.get(crawl)
        if log is not None and log.unlinked:  # the crawl's folder was removed meanwhile
            del self._logs[crawl]
            log.close()
            log = None
        if log is None:
            log = AppendFile.create(layout, layout.records_dir, self._stem, 0, RECORD_LOG_SUFFIX)
            self._logs[crawl] = log
        try:
            offset = log.append(data)
        except OSError:
            if log.broken:
                del self._logs[crawl]
                log.close()
            raise
        return RecordAt(log.path.name, offset, len(data))

    def close(self) -> None:
        """Sync and close every log."""
        logs, self._logs = list(self._logs.values()), {}
        for log in logs:
            log.close()

    def __enter__(self) -> RecordLogs:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
