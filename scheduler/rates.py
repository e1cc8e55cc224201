"""Pages and bytes per second of a crawl being watched: now (a short window) and on average."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

# the span the rates "now" are measured over
WINDOW_S = 5.0


@dataclass(frozen=True, slots=True)
class Rates:
    """Pages and bytes per second over the last ``WINDOW_S`` and since watching began."""

    pages_now: float = 0.0
    bytes_now: float = 0.0
    pages_avg: float = 0.0
    bytes_avg: float = 0.0


@dataclass(frozen=True, slots=True)
class _Sample:
    at: float
    pages: int
    nbytes: int


class RateMeter:
    """Takes the crawl's counters at each look (``add``) and keeps the samples of the last
    ``window_s`` seconds, plus the first, for the rates now and on average."""

    def __init__(self, window_s: float = WINDOW_S) -> None:
        self.window_s = window_s
        self._first: _Sample | None = None
        self._recent: deque[_Sample] = deque()

    def add(self, at: float, pages: int, nbytes: int) -> Rates:
        """Record the pages done and bytes fetched at time ``at`` (monotonic seconds); return
        the rates as of then."""
        sample = _Sample(at, pages, nbytes)
        if self._first is None:
            self._first = sample
        self._recent.append(sample)
        # keep one sample at or before the window's start, so "now" spans the whole window
        while len(self._recent) > 2 and self._recent[1].at <= at - self.window_s:
            self._recent.popleft()
        return Rates(*_per_second(self._recent[0], sample), *_per_second(self._first, sample))


def _per_second(since: _Sample, until: _Sample) -> tuple[float, float]:
    span = until.at - since.at
    if span <= 0:
        return 0.0, 0.0
    return (until.pages - since.pages) / span, (until.nbytes - since.nbytes) / span
