"""The crawls `crawlfleet run` keeps in its data directory, reached by the other commands
with `--data-dir`: while the run goes on, and after it has stopped its Redis."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.records import stored_records
from tests.support.testweb import TestWeb, star_site

pytestmark = pytest.mark.slow

_ENV = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}


def crawlfleet(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "crawlfleet.scheduler", *args],
        env=_ENV, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
    )  # fmt: skip


def _state(data: Path, crawl_id: str) -> str:
    result = crawlfleet("status", crawl_id, "--json", "--data-dir", str(data))
    assert result.returncode == 0, result.stderr
    return str(json.loads(result.stdout)["state"])


def test_the_commands_reach_the_crawls_of_a_run(web: TestWeb, tmp_path: Path) -> None:
    """status, pause, resume and cancel reach a live run's crawl through its Redis; once the
    run has ended, status starts that Redis for itself, forget removes the crawl, and a folder
    no run has used is one error line."""
    seed = star_site(web, pages=400, latency=0.2)
    data = tmp_path / "out"
    run = subprocess.Popen(
        [sys.executable, "-m", "crawlfleet.scheduler", "run", seed, "--depth", "1",
         "--data-dir", str(data), "--crawl-id", "kept"],
        env=_ENV, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 90
        while not stored_records(data, "kept"):
            assert time.monotonic() < deadline and run.poll() is None, run.communicate()
            time.sleep(0.05)
        assert _state(data, "kept") == "running"
        paused = crawlfleet("pause", "kept", "--data-dir", str(data))
        assert paused.returncode == 0, paused.stderr
        assert _state(data, "kept") == "paused"
        resumed = crawlfleet("resume", "kept", "--data-dir", str(data))
        assert resumed.returncode == 0, resumed.stderr
        assert _state(data, "kept") == "running"
        cancelled = crawlfleet("cancel", "kept", "--data-dir", str(data))
        assert cancelled.returncode == 0 and "cancelled kept" in cancelled.stdout
        stdout, stderr = run.communicate(timeout=60)
    finally:
        if run.poll() is None:
            run.kill()
            run.communicate()
    assert "crawl kept cancelled" in stdout, stderr

    assert _state(data, "kept") == "cancelled"  # the run's Redis is stopped: started for this
    forgot = crawlfleet("forget", "kept", "--data-dir", str(data))
    assert forgot.returncode == 0 and forgot.stdout == "forgot kept\n", forgot.stderr
    listed = crawlfleet("status", "--json", "--data-dir", str(data))
    assert listed.returncode == 0 and json.loads(listed.stdout) == []
    assert (data / "kept" / "pages").is_dir()  # forgetting keeps the files

    elsewhere = crawlfleet("status", "--data-dir", str(tmp_path / "never"))
    assert elsewhere.returncode == 2 and elsewhere.stderr.startswith("error: no crawlfleet run")
    assert len(elsewhere.stderr.splitlines()) == 1
