"""The embedded Redis of `run`: one server per folder, however its owner ended."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import redis

from crawlfleet.scheduler.embedded import AOF_COMPACT_BYTES, EmbeddedRedis
from crawlfleet.shared.errors import ServiceError
from tests.support.processes import socket_dir

_OWNER = """
import sys, time
from pathlib import Path
from crawlfleet.scheduler.embedded import EmbeddedRedis
server = EmbeddedRedis(Path(sys.argv[1])).start()
print(server.pid, flush=True)
time.sleep(120)
"""


def test_a_second_server_on_one_folder_is_refused(tmp_path: Path) -> None:
    """While a server runs on a folder, another start there fails naming the folder and the
    process; once the first has stopped, it starts."""
    first = EmbeddedRedis(tmp_path).start()
    try:
        with pytest.raises(ServiceError, match=f"{tmp_path} is in use by process {os.getpid()}"):
            EmbeddedRedis(tmp_path).start()
    finally:
        first.stop()
    second = EmbeddedRedis(tmp_path).start()
    second.stop()


def test_a_server_outliving_its_owner_keeps_its_folder(tmp_path: Path) -> None:
    """A run killed with SIGKILL leaves its server running: no other may start on that
    append-only file until it is gone."""
    owner = subprocess.Popen(
        [sys.executable, "-c", _OWNER, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    assert owner.stdout is not None
    orphan = psutil.Process(int(owner.stdout.readline()))
    left = socket_dir(orphan)
    try:
        owner.send_signal(signal.SIGKILL)
        owner.wait(timeout=30)
        assert orphan.is_running()
        with pytest.raises(ServiceError, match="is in use by process"):
            EmbeddedRedis(tmp_path).start()
    finally:
        orphan.terminate()
        orphan.wait(timeout=30)
        owner.stdout.close()
    assert left.is_dir()
    EmbeddedRedis(tmp_path).start().stop()
    assert not left.exists(), "the killed run's socket folder is removed by the next"


def test_an_append_only_file_left_big_is_compacted_at_start(tmp_path: Path) -> None:
    """Writes that were deleted since (ended crawls) leave a big append-only file; the next
    start rewrites it to the little that is left, in the background."""
    aof = tmp_path / "appendonly.aof"
    server = EmbeddedRedis(tmp_path).start()
    try:
        with redis.Redis(unix_socket_path=str(server.socket)) as client:
            client.config_set("auto-aof-rewrite-percentage", 0)  # as an older run's would grow
            for n in range(40):
                client.set(f"k{n}", b"x" * 256 * 1024)
                client.delete(f"k{n}")
            client.set("kept", b"1")
    finally:
        server.stop()
    assert aof.stat().st_size > AOF_COMPACT_BYTES
    server = EmbeddedRedis(tmp_path).start()
    try:
        deadline = time.monotonic() + 60
        while aof.stat().st_size > 64 * 1024:
            assert time.monotonic() < deadline, "the append-only file was not compacted"
            time.sleep(0.05)
        with redis.Redis(unix_socket_path=str(server.socket)) as client:
            assert client.get("kept") == b"1" and client.dbsize() == 1
    finally:
        server.stop()
