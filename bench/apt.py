"""Installing what a scenario needs with Debian's ``apt-get``, when it is missing and we are root.

The docs sites (``python3.11-doc``, ``postgresql-doc-15``), nginx and GNU wget come as Debian
packages. :func:`ensure_package` checks whether the thing is there, and if not, when running as
root with ``apt-get`` on the machine, runs ``apt-get update`` (once per process) and
``apt-get install -y`` of the first package of a list that installs; otherwise it says why not,
so that the scenario is skipped with a reason instead of failing.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path

_updated = False  # ``apt-get update`` ran in this process


def _apt(args: list[str]) -> str | None:
    """Run ``apt-get`` non-interactively; None if it worked, else what went wrong."""
    cmd = ["apt-get", *args]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    try:
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    except subprocess.TimeoutExpired:
        return f"`{' '.join(cmd)}` timed out"
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:]
        return f"`{' '.join(cmd)}` failed: {' '.join(tail)}"
    return None


def ensure_package(
    present: Callable[[], bool], packages: Sequence[str], what: str
) -> tuple[bool, str]:
    """Whether ``what`` is there (``present()``), installing the first of ``packages`` that
    installs when it is not; and how it came to be there, or why it is not."""
    if present():
        return True, "installed"
    names = " or ".join(packages)
    if os.geteuid() != 0:
        return False, f"{what} missing and not root: run `apt-get install -y {packages[0]}`"
    if shutil.which("apt-get") is None:
        return False, f"{what} missing and no apt-get to install {names}"
    global _updated
    if not _updated:
        failed = _apt(["update", "-qq"])
        if failed:
            return False, failed
        _updated = True
    problems: list[str] = []
    for package in packages:
        failed = _apt(["install", "-y", "-qq", package])
        if failed:
            problems.append(failed)
            continue
        if present():
            return True, f"installed {package} with apt-get"
        problems.append(f"{package} installed but {what} is still missing")
    return False, "; ".join(problems)


def find_command(name: str) -> str | None:
    """The path of a command on PATH or in the sbin folders (nginx lives in /usr/sbin)."""
    found = shutil.which(name)
    if found:
        return found
    for folder in ("/usr/sbin", "/sbin", "/usr/local/sbin"):
        path = Path(folder) / name
        if os.access(path, os.X_OK):
            return str(path)
    return None


def ensure_command(
    name: str, packages: Sequence[str], check: Callable[[str], bool] | None = None
) -> tuple[str | None, str]:
    """The path of command ``name`` (that passes ``check``, if given), installing the first of
    ``packages`` that installs when it is missing; else None and the reason."""

    def present() -> bool:
        path = find_command(name)
        return path is not None and (check is None or check(path))

    ok, how = ensure_package(present, packages, f"`{name}`")
    return (find_command(name) if ok else None), how
