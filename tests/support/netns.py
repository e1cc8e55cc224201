"""Running code in a network namespace that has only a loopback interface.

Whatever the code does, no packet can leave the machine: a connection to any address but
loopback fails at once with "network unreachable". Tests of blocked addresses run there, so a
broken guard cannot reach a real network either. Names are given addresses without DNS by an
``/etc/hosts`` of the test's own, bind-mounted in a mount namespace of the same process.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from typing import Any

import pytest


def run_isolated(code: str, timeout: float = 120, hosts: str | None = None) -> Any:
    """Run Python ``code`` in a fresh loopback-only network namespace; return the JSON it
    prints on its last line. ``hosts`` replaces ``/etc/hosts`` there (and only there). Skips
    the test where namespaces cannot be made."""
    if os.geteuid() != 0 or shutil.which("unshare") is None or shutil.which("ip") is None:
        pytest.skip("a loopback-only network namespace needs root, unshare and ip")
    unshare = ["unshare", "-n"] if hosts is None else ["unshare", "-n", "-m"]
    probe = subprocess.run([*unshare, "true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"cannot create a network namespace: {probe.stderr.decode().strip()}")
    with tempfile.NamedTemporaryFile("w", suffix=".hosts") as hosts_file:
        setup = "ip link set lo up"
        if hosts is not None:
            hosts_file.write(hosts)
            hosts_file.flush()
            setup += f" && mount --bind {hosts_file.name} /etc/hosts"
        result = subprocess.run(
            [*unshare, "sh", "-c", f'{setup} && exec "$0" -c "$1"', sys.executable, code],
            capture_output=True, text=True, timeout=timeout, cwd=os.getcwd(),
        )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])
