"""Worker processes on this machine, for ``crawlfleet run``."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from crawlfleet.shared.errors import LogFileError, MetricsPortError
from crawlfleet.shared.settings import Settings


class LocalWorkers:
    """``count`` worker processes (``python -m crawlfleet.workers``), each logging JSON lines to
    a file, and with ``settings.metrics_port`` given, each serving its metrics on a port of its own:
    worker k (from 1) on ``metrics_port + k - 1``.

    A worker's stderr is ours: what it says there (that its log file cannot be written, a
    crash) reaches the user of ``run`` rather than the file that may be the problem.
    """

    def __init__(self, settings: Settings, count: int, log_dir: Path) -> None:
        self.settings = settings
        self.count = count
        self.log_dir = log_dir
        self.procs: list[subprocess.Popen[bytes]] = []

    def log_file(self, index: int) -> Path:
        return self.log_dir / f"worker-{index}.log"

    def metrics_port(self, index: int) -> int:
        """The port worker ``index`` (from 1) serves its metrics on; 0 for none."""
        base = self.settings.metrics_port
        return base + index - 1 if base else 0

    def metrics_ports(self) -> list[int]:
        """The ports the workers serve their metrics on, in order (none if not served)."""
        ports = [self.metrics_port(index) for index in range(1, self.count + 1)]
        return [port for port in ports if port]

    def start(self) -> LocalWorkers:
        """Start the processes; they connect to ``settings.redis_url`` on their own.

        Raises LogFileError or MetricsPortError, before any process starts, if a log file
        cannot be written or a metrics port cannot be listened on.
        """
        for index in range(1, self.count + 1):
            self._check_log_file(self.log_file(index))
        for port in self.metrics_ports():
            self._check_metrics_port(self.settings.metrics_host, port)
        self.procs = [self._spawn(index) for index in range(1, self.count + 1)]
        return self

    def _check_log_file(self, path: Path) -> None:
        try:
            with contextlib.suppress(FileExistsError):  # not a folder: opening a file says so
                path.parent.mkdir(parents=True, exist_ok=True)
            path.open("ab").close()
        except OSError as exc:
            raise LogFileError(f"cannot write worker log {path}: {exc.strerror}") from None

    def _check_metrics_port(self, host: str, port: int) -> None:
        # as the worker's server binds (prometheus_client): the first address, reuse allowed
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
            family, _, _, _, address = infos[0]
            with socket.socket(family, socket.SOCK_STREAM) as probe:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                probe.bind(address)
        except OSError as exc:
            raise MetricsPortError(
                f"cannot serve metrics on {host}:{port}: {exc.strerror or exc}"
            ) from None

    def replace(self, index: int) -> None:
        """Start a new process in slot ``index`` (0-based) after the old one has exited."""
        self.procs[index] = self._spawn(index + 1)

    def _spawn(self, number: int) -> subprocess.Popen[bytes]:
        worker = self.settings.model_copy(
            update={
                "worker_id": f"local-{number}",
                "log_format": "json",
                "log_file": self.log_file(number),
                "metrics_port": self.metrics_port(number),
            }
        )
        return subprocess.Popen(
            [sys.executable, "-m", "crawlfleet.workers"],
            env={**os.environ, **worker.to_env()},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            start_new_session=True,  # a terminal's signals reach run, which stops us in order
        )

    def alive(self) -> int:
        """How many of the processes are still running."""
        return sum(p.poll() is None for p in self.procs)

    def stop(self) -> None:
        """SIGTERM every process, wait for the grace period, then kill what is left (at once
        if a second Ctrl-C or SIGTERM cuts the wait short)."""
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.settings.shutdown_grace_s + 5
        try:
            for proc in self.procs:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        finally:
            for proc in self.procs:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()

    def __enter__(self) -> LocalWorkers:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
