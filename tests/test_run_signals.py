"""`crawlfleet run` stopped by a signal: its whole tree stops, the crawl is kept, and the
command it prints resumes it to the exact page set."""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from tests.support.checks import assert_stored_exactly_once
from tests.support.processes import socket_dir
from tests.support.records import stored_records
from tests.support.testweb import TestWeb, star_site

pytestmark = pytest.mark.slow


def _run(*args: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    return subprocess.Popen(
        [sys.executable, "-m", "crawlfleet.scheduler", *args],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _stop_tree(proc: subprocess.Popen[str]) -> None:
    """Kill what a failed test left running."""
    if proc.poll() is None:
        for child in psutil.Process(proc.pid).children(recursive=True):
            child.kill()
        proc.kill()
        proc.communicate()


def _wait_for_pages(data: Path, at_least: int, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if (
            sum(len(stored_records(data, p.parent.name)) for p in data.glob("*/records"))
            >= at_least
        ):
            return
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    raise AssertionError(f"fewer than {at_least} pages stored in 90 s")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_a_signal_stops_the_whole_run_and_the_crawl_resumes(
    web: TestWeb, tmp_path: Path, sig: signal.Signals
) -> None:
    """SIGTERM, SIGINT (Ctrl-C) or SIGHUP to `run` alone stops its workers and its Redis,
    removes its socket folder, exits 128 + the signal and prints how to resume; the printed
    command finishes the crawl with every page stored once."""
    seed = star_site(web, pages=300, latency=0.2)
    data = tmp_path / "out"
    proc = _run("run", seed, "--depth", "1", "--data-dir", str(data))
    try:
        _wait_for_pages(data, 10, proc)
        tree = psutil.Process(proc.pid).children(recursive=True)
        sockets = {socket_dir(p) for p in tree if "redis-server" in p.name()}
        assert len(sockets) == 1, tree
        proc.send_signal(sig)
        _, stderr = proc.communicate(timeout=60)
    finally:
        _stop_tree(proc)
    assert proc.returncode == 128 + sig, stderr
    _, alive = psutil.wait_procs(tree, timeout=10)
    assert not alive, alive
    assert not any(folder.exists() for folder in sockets), "socket folder left"
    assert "Traceback" not in stderr
    said = re.search(
        rf"interrupted by {sig.name}: crawl (\S+) stopped: (\d+) fetched, 0 failed, (\d+) to go"
        r"\nresume it with: (.+)",
        stderr,
    )
    assert said, stderr
    crawl_id, fetched, to_go, command = said.groups()
    assert int(fetched) >= 10 and int(to_go) > 0
    assert command == shlex.join(
        ["crawlfleet", "run", seed, "--depth", "1", "--data-dir", str(data), "--crawl-id", crawl_id]
    )

    resumed = _run(*shlex.split(command)[1:])
    try:
        stdout, stderr = resumed.communicate(timeout=180)
    finally:
        _stop_tree(resumed)
    assert resumed.returncode == 0, stderr
    assert f"crawl {crawl_id} done" in stdout
    # its rate counts this run's pages only
    assert f"; {fetched} pages were done before this run)" in stdout
    assert_stored_exactly_once(data, crawl_id, {seed, *(f"{seed}p{i}" for i in range(300))})
