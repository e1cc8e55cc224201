"""What the tests read of the processes a run started."""

from __future__ import annotations

from pathlib import Path

import psutil


def socket_dir(server: psutil.Process) -> Path:
    """The folder of an embedded redis-server's unix socket, from the socket it listens on
    (Redis rewrites its command line)."""
    (listening,) = {c.laddr for c in server.net_connections(kind="unix") if c.laddr}
    return Path(listening).parent
