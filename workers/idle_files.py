"""Which of a worker process's per-crawl files have gone idle: a long-lived worker keeps open
only the files of the crawls it is working on (record logs, WARC files), each synced and closed
once nothing has been written to it for twice the job timeout (its crawl has ended, or gone on
without this worker); a write that comes later starts a new file.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

from crawlfleet.shared.settings import Settings

K = TypeVar("K", bound=Hashable)


class IdleFiles(Generic[K]):
    """When each crawl's file (by key) was last written, on ``clock`` (seconds,
    ``time.monotonic`` but in tests)."""

    def __init__(self, settings: Settings, clock: Callable[[], float] = time.monotonic) -> None:
        self._idle_s = 2 * settings.job_timeout_s
        self._clock = clock
        self._used: dict[K, float] = {}

    def writing(self, key: K) -> list[K]:
        """Note a write to ``key``'s file now; the files not written for twice the job timeout
        before it (``key``'s own among them: its write then starts a new file), forgotten here:
        the caller closes them."""
        now = self._clock()
        idle = [k for k, used in self._used.items() if now - used > self._idle_s]
        for k in idle:
            del self._used[k]
        self._used[key] = now
        return idle

    def clear(self) -> None:
        """Every file was closed."""
        self._used.clear()
