"""Log lines: one JSON object per event, crawlfleet's and the libraries', at the chosen level."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from crawlfleet.shared.errors import LogFileError
from crawlfleet.shared.logs import LineSink
from tests.support.tmpfs import small_tmpfs

_SCRIPT = """
import logging, structlog
from crawlfleet.shared.logs import configure_logging
configure_logging("json", "warning")
log = structlog.get_logger()
with structlog.contextvars.bound_contextvars(crawl_id="c1", url="http://x/"):
    log.info("hidden")
    log.warning("page failed", status=500)
logging.getLogger("arq").warning("from %s", "arq")
logging.getLogger("arq").info("hidden too")
"""


def test_log_lines_are_json_filtered_by_level_with_job_context() -> None:
    """Events below the level are dropped; ours and the standard library's come out as JSON
    lines with time, level and the bound job context first."""
    done = subprocess.run(
        [sys.executable, "-c", _SCRIPT], capture_output=True, text=True, timeout=60, check=True
    )
    lines = [json.loads(line) for line in done.stderr.splitlines()]
    assert [line["event"] for line in lines] == ["page failed", "from arq"]
    ours = lines[0]
    assert list(ours)[:5] == ["timestamp", "level", "event", "crawl_id", "url"]
    assert ours["level"] == "warning" and ours["status"] == 500
    assert lines[1]["level"] == "warning" and "timestamp" in lines[1]


def test_a_log_that_cannot_be_written_drops_lines_and_says_so_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A full disk drops log lines without raising; stderr says so once when it starts and
    once when the file can be written again, with how many lines were lost."""
    with small_tmpfs(tmp_path / "disk", "16k") as disk:
        sink = LineSink(disk / "worker.log")
        sink.write("before\n")
        filler = disk / "filler"
        with filler.open("wb") as f, contextlib.suppress(OSError):
            f.write(b"x" * 64 * 1024)  # the disk is full once this fails
        lines = [f"lost {n} " * 800 + "\n" for n in range(3)]  # more than a page each
        for line in lines:
            assert sink.write(line) == len(line)
        filler.unlink()
        sink.write("after\n")
        sink.close()
        kept = (disk / "worker.log").read_text()
    said = capsys.readouterr().err.splitlines()
    assert said == [
        f"crawlfleet: cannot write log to {disk / 'worker.log'} (No space left on device); "
        "its lines are dropped",
        f"crawlfleet: log {disk / 'worker.log'} written again; 3 line(s) were dropped",
    ]
    # the line the disk filled up in may be cut off; the next one starts on a line of its own
    kept_lines = kept.splitlines()
    assert kept_lines[0] == "before" and kept_lines[-1] == "after"
    assert not set(kept_lines) & {line.rstrip("\n") for line in lines}


def test_a_log_file_that_cannot_be_opened_is_an_error(tmp_path: Path) -> None:
    """The log file's folder is a file: opening fails with the reason, as a LogFileError."""
    (tmp_path / "logs").write_text("not a folder")
    with pytest.raises(LogFileError, match=r"cannot open log file .*/logs/w\.log: Not a directory"):
        LineSink(tmp_path / "logs" / "w.log")
