"""Running a command on a real pseudo-terminal, as a user's terminal would run it."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import struct
import subprocess
import termios
import time

# CSI sequences: colours, cursor moves, line erases
_CSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
ERASE_LINE = "\x1b[2K"


def plain(text: str) -> str:
    """``text`` without terminal control sequences and carriage returns."""
    return _CSI.sub("", text).replace("\r", "")


def run_on_terminal(
    args: list[str], env: dict[str, str], *, timeout: float, columns: int = 100, rows: int = 40
) -> tuple[int, str]:
    """Run ``args`` with stdin, stdout and stderr on a new pseudo-terminal of ``columns`` x
    ``rows``; return its exit status and everything it wrote there, control sequences and all.
    The command is killed if it has not ended within ``timeout`` seconds."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
    proc = subprocess.Popen(args, stdin=slave, stdout=slave, stderr=slave, env=env)
    os.close(slave)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while True:
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    data = os.read(master, 65536)
                except OSError:  # EIO: every holder of the terminal has closed it
                    break
                if not data:
                    break
                chunks.append(data)
            elif proc.poll() is not None:
                break  # ended, and nothing more to read
            if time.monotonic() > deadline:
                raise AssertionError(f"{args} still running after {timeout}s")
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
    return proc.returncode, b"".join(chunks).decode(errors="replace")
