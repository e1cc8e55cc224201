"""A worker process's record logs: the metadata record of each page it stores, appended to one
log per crawl, ``<crawl>/records/<worker>-<time>-<seq>.jsonl.gz`` (``shared.record_log``).

A record is compressed and appended in one write in the event loop (about a kilobyte, less
than creating a file of its own took), after the page's body and WARC records and before the
page is closed in Redis: a worker killed before the write ends leaves at most a cut last
member, which readers leave out, and the page, never closed, is fetched again. A log is synced
to disk and closed when the process stops, or once no record has been appended to it for
twice the job timeout (its crawl has ended, or gone on without this worker): a long-lived
worker keeps open only the logs of the crawls it is working on, and a record that comes later
starts a new log. The bucket folders the process writes a crawl's bodies to
(``workers.body_folders``) are closed with the crawl's log.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from crawlfleet.shared.record_log import member
from crawlfleet.shared.settings import Settings
from crawlfleet.shared.storage import RECORD_LOG_SUFFIX, CrawlLayout, PageRecord, RecordAt
from crawlfleet.workers.append_file import AppendFile, file_stem
from crawlfleet.workers.body_folders import BodyFolders
from crawlfleet.workers.idle_files import IdleFiles


class RecordLogs:
    """The record logs of one worker process: one open log per crawl, and the bucket folders
    its bodies go to (``bodies``); ``clock`` tells when a log went idle (``workers.idle_files``)."""

    def __init__(self, settings: Settings, clock: Callable[[], float] = time.monotonic) -> None:
        self.bodies = BodyFolders()
        self._logs: dict[Path, AppendFile] = {}
        self._idle: IdleFiles[Path] = IdleFiles(settings, clock)
        self._stem = file_stem(settings.worker_id)

    @property
    def open(self) -> list[Path]:
        """The folders of the crawls whose logs are open."""
        return list(self._logs)

    def append(self, layout: CrawlLayout, record: PageRecord) -> RecordAt:
        """Append ``record`` to the crawl's log (made on first use); where it is. OSError if
        the crawl's folder takes no file; the next record then starts another log if this
        one's end can no longer be vouched for."""
        data = member(record.model_dump_json().encode() + b"\n")
        crawl = layout.root
        for idle in self._idle.writing(crawl):
            self._drop(idle)
        log = self._logs.get(crawl)
        if log is not None and log.unlinked:  # the crawl's folder was removed meanwhile
            self._drop(crawl)
            log = None
        if log is None:
            try:
                log = AppendFile.create(
                    layout, layout.records_dir, self._stem, 0, RECORD_LOG_SUFFIX
                )
            except OSError:
                self.bodies.drop(crawl)  # nothing of a crawl stays open without its log
                raise
            self._logs[crawl] = log
        try:
            offset = log.append(data)
        except OSError:
            if log.broken:
                self._drop(crawl)
            raise
        return RecordAt(log.path.name, offset, len(data))

    def _drop(self, crawl: Path) -> None:
        """Sync and close the crawl's log, if one is open, and close its buckets (its time on
        ``_idle`` stays: a log of it started next is closed once idle like any other)."""
        self.bodies.drop(crawl)
        log = self._logs.pop(crawl, None)
        if log is not None:
            log.close()

    def close(self) -> None:
        """Sync and close every log and bucket."""
        self.bodies.close()
        logs, self._logs = list(self._logs.values()), {}
        self._idle.clear()
        for log in logs:
            log.close()

    def __enter__(self) -> RecordLogs:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
