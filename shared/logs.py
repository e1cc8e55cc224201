"""structlog set up once per entry point: JSON lines off a terminal, readable text on one.

Standard-library loggers (arq's, httpx's) go through the same renderer, so every line a
process writes has one format, to stderr or to the log file the settings name.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Any

import structlog

from crawlfleet.shared.errors import LogFileError
from crawlfleet.shared.settings import LogFormat

_LEADING_KEYS = ("timestamp", "level", "event", "worker", "crawl_id", "url", "depth")


def _leading_keys_first(_: Any, __: str, event: structlog.typing.EventDict) -> Any:
    """Put time, level, event and the job's identity first, so lines read well in a terminal."""
    head = {k: event.pop(k) for k in _LEADING_KEYS if k in event}
    return {**head, **event}


class LineSink:
    """Where a process's log lines go: the log file, or stderr without one.

    A line that cannot be written (a full disk, a closed pipe) is dropped, never raised: a
    worker that cannot log goes on crawling. The first failure and the recovery after it are
    said in one line each on stderr, so the operator learns why the log has a gap.
    """

    def __init__(self, path: Path | None = None) -> None:
        self.name = str(path) if path is not None else "stderr"
        self.dropped = 0
        self._torn = False  # a line was cut off by the failure: the next one starts afresh
        self._fd: int | None = None
        if path is not None:
            try:
                self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            except OSError as exc:
                raise LogFileError(f"cannot open log file {path}: {exc.strerror}") from None

    def isatty(self) -> bool:
        return sys.stderr.isatty() if self._fd is None else False

    def write(self, text: str) -> int:
        try:
            self._write(text)
        except (OSError, ValueError) as exc:  # ValueError: stderr was closed
            if not self.dropped:
                _say(f"cannot write log to {self.name} ({_why(exc)}); its lines are dropped")
            self.dropped += 1
            return len(text)
        if self.dropped:
            _say(f"log {self.name} written again; {self.dropped} line(s) were dropped")
            self.dropped = 0
        return len(text)

    def flush(self) -> None:
        """Nothing to do: every line is written whole when it is logged."""

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def _write(self, text: str) -> None:
        if self._fd is None:
            sys.stderr.write(text)
            sys.stderr.flush()
            return
        data = (("\n" if self._torn else "") + text).encode()
        view = memoryview(data)
        while view:
            try:
                view = view[os.write(self._fd, view) :]
            except OSError:
                self._torn = self._torn or len(view) < len(data)
                raise
        self._torn = False


def _why(exc: BaseException) -> str:
    return exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)


def _say(message: str) -> None:
    try:
        sys.stderr.write(f"crawlfleet: {message}\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass  # stderr is gone too: nothing is left to say it on


def _renderers(fmt: LogFormat, sink: LineSink) -> list[Any]:
    use_json = fmt == "json" or (fmt == "auto" and not sink.isatty())
    if use_json:
        return [_leading_keys_first, structlog.processors.JSONRenderer()]
    return [structlog.dev.ConsoleRenderer(colors=sink.isatty())]


def configure_logging(
    fmt: LogFormat = "auto", level: str = "info", log_file: Path | None = None
) -> LineSink:
    """Configure structlog and the standard library's logging to write to ``log_file`` (stderr
    without one); raises LogFileError if it cannot be opened."""
    sink = LineSink(log_file)
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderers = _renderers(fmt, sink)
    # crawlfleet's own events skip the standard library (a LogRecord, handler and formatter
    # per line cost as much as the rest of the chain): structlog renders and writes them itself
    structlog.configure(
        processors=[
            *shared,
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            *renderers,
        ],
        logger_factory=structlog.WriteLoggerFactory(sink),  # type: ignore[arg-type]
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*shared, structlog.stdlib.ExtraAdder()],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            *renderers,
        ],
    )
    handler = logging.StreamHandler(sink)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # arq logs every job start and end in prose; crawlfleet logs one structured line per page
    logging.getLogger("arq").setLevel(max(logging.WARNING, root.level))
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("aiohttp").setLevel(logging.WARNING)
    return sink
