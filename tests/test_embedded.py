"""The embedded Redis of `run`: one server per folder, however its owner ended."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from scheduler.embedded import EmbeddedRedis
from shared.errors import ServiceError

_OWNER = """
import sys, time
from pathlib import Path
from scheduler.embedded import EmbeddedRedis
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
    EmbeddedRedis(tmp_path).start().stop()
