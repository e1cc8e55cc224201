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
from pathlib import Path
from typing import Any

import pytest


def run_isolated(
    code: str, timeout: float = 120, hosts: str | None = None, resolv_conf: str | None = None
) -> Any:
    """Run Python ``code`` in a fresh loopback-only network namespace; return the JSON it
    prints on its last line. ``hosts`` and ``resolv_conf`` replace ``/etc/hosts`` and
    ``/etc/resolv.conf`` there (a mount namespace too: the host's files are untouched). Skips
    the test where namespaces cannot be made."""
    if os.geteuid() != 0 or shutil.which("unshare") is None or shutil.which("ip") is None:
        pytest.skip("a loopback-only network namespace needs root, unshare and ip")
    replaced = {"/etc/hosts": hosts, "/etc/resolv.conf": resolv_conf}
    flags = ["-n", "-m"] if any(v is not None for v in replaced.values()) else ["-n"]
    probe = subprocess.run(["unshare", *flags, "true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"cannot create a network namespace: {probe.stderr.decode().strip()}")
    setup = "ip link set lo up"
    with tempfile.TemporaryDirectory() as folder:
        for target, text in replaced.items():
            if text is not None:
                source = Path(folder) / Path(target).name
                source.write_text(text)
                # unshare makes the new mount namespace private: the host's file is untouched
                setup += f" && mount --bind {source} {target}"
        result = subprocess.run(
            ["unshare", *flags, "sh", "-c", f'{setup} && exec "$0" -c "$1"',
             sys.executable, code],
            capture_output=True, text=True, timeout=timeout, cwd=os.getcwd(),
        )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])
