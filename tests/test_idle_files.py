"""The idle bookkeeping of a worker's per-crawl files (workers/idle_files.py)."""

from __future__ import annotations

from crawlfleet.shared.settings import Settings
from crawlfleet.workers.idle_files import IdleFiles


def test_files_unwritten_for_twice_the_job_timeout_are_idle(settings: Settings) -> None:
    """A write names the files not written for more than twice the job timeout, its own
    among them, once each; a file named as its own write's is
    still on the books, to be named once idle again; once cleared, none is named again."""
    now = [0.0]
    idle_s = 2 * settings.job_timeout_s
    files: IdleFiles[str] = IdleFiles(settings, clock=lambda: now[0])
    assert files.writing("a") == [] and files.writing("b") == []
    now[0] = idle_s
    assert files.writing("b") == []  # a: exactly twice the timeout, not more
    now[0] = idle_s + 1
    assert files.writing("b") == ["a"]
    assert files.writing("c") == []  # a is forgotten once named
    now[0] = 3 * idle_s + 2
    assert files.writing("b") == ["b", "c"]  # b's own write starts a new file
    now[0] = 5 * idle_s
    assert files.writing("d") == ["b"]  # the new file, idle in turn
    files.clear()
    now[0] = 10 * idle_s
    assert files.writing("d") == []
