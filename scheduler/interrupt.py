"""Stopping ``crawlfleet run`` by a signal: SIGTERM and SIGHUP stop it as Ctrl-C does.

``run`` starts its workers and its Redis in sessions of their own, so a signal reaches ``run``
alone (a terminal's Ctrl-C or hang-up no longer hits every process at once) and ``run`` stops
them in order: the workers first, which hand their unfinished pages back to Redis, then Redis,
which writes its append-only file. The crawl can then be resumed where it stopped.
"""

from __future__ import annotations

import shlex
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import FrameType


@dataclass
class Caught:
    """The signal that interrupted ``run`` (SIGINT unless a handler here saw another)."""

    signum: int = signal.SIGINT

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name

    @property
    def exit_code(self) -> int:
        """The shell's convention for a process ended by a signal."""
        return 128 + self.signum


@contextmanager
def stop_signals_interrupt() -> Iterator[Caught]:
    """For the ``with`` block, SIGINT, SIGTERM and SIGHUP raise KeyboardInterrupt.

    SIGINT too: inside ``asyncio.run`` Ctrl-C would only cancel the main task, and a
    cancellation that a library swallows (one run in a few dozen) let the crawl run on to its
    end as if nothing had been typed."""
    caught = Caught()

    def interrupt(signum: int, _: FrameType | None) -> None:
        caught.signum = signum
        raise KeyboardInterrupt

    stops = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    previous = {sig: signal.signal(sig, interrupt) for sig in stops}
    try:
        yield caught
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def resume_command(argv: list[str], crawl_id: str) -> str:
    """The ``crawlfleet run`` command that resumes the crawl ``argv`` (run's arguments after
    the program name) started: the same arguments, with the crawl's id."""
    args = list(argv)
    if not any(a == "--crawl-id" or a.startswith("--crawl-id=") for a in args):
        args += ["--crawl-id", crawl_id]
    return shlex.join(["crawlfleet", *args])
