"""Running code in a network namespace that has only a loopback interface.

Whatever the code does, no packet can leave the machine: a connection to any address but
loopback fails at once with "network unreachable". Tests of blocked addresses run there, so a
broken guard cannot reach a real network either.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from typing import Any

import pytest


def run_isolated(code: str, timeout: float = 120) -> Any:
    """Run Python ``code`` in a fresh loopback-only network namespace; return the JSON it
    prints on its last line. Skips the test where namespaces cannot be made."""
    if os.geteuid() != 0 or shutil.which("unshare") is None or shutil.which("ip") is None:
        pytest.skip("a loopback-only network namespace needs root, unshare and ip")
    probe = subprocess.run(["unshare", "-n", "true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"cannot create a network namespace: {probe.stderr.decode().strip()}")
    result = subprocess.run(
        ["unshare", "-n", "sh", "-c", 'ip link set lo up && exec "$0" -c "$1"',
         sys.executable, code],
        capture_output=True, text=True, timeout=timeout, cwd=os.getcwd(),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])
