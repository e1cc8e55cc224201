"""structlog set up once per entry point: JSON lines off a terminal, readable text on one.

Standard-library loggers (arq's, httpx's) go through the same renderer, so every line a
process writes has one format.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog

from shared.settings import LogFormat

_LEADING_KEYS = ("timestamp", "level", "event", "worker", "crawl_id", "url", "depth")


def _leading_keys_first(_: Any, __: str, event: structlog.typing.EventDict) -> Any:
    """Put time, level, event and the job's identity first, so lines read well in a terminal."""
    head = {k: event.pop(k) for k in _LEADING_KEYS if k in event}
    return {**head, **event}


def _renderers(fmt: LogFormat) -> list[Any]:
    use_json = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    if use_json:
        return [_leading_keys_first, structlog.processors.JSONRenderer()]
    return [structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())]


def configure_logging(fmt: LogFormat = "auto", level: str = "info") -> None:
    """Configure structlog and the standard library's logging to write to stderr."""
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderers = _renderers(fmt)
    # crawlfleet's own events skip the standard library (a LogRecord, handler and formatter
    # per line cost as much as the rest of the chain): structlog renders and writes them itself
    structlog.configure(
        processors=[
            *shared,
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            *renderers,
        ],
        logger_factory=structlog.WriteLoggerFactory(sys.stderr),
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
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # arq logs every job start and end in prose; crawlfleet logs one structured line per page
    logging.getLogger("arq").setLevel(max(logging.WARNING, root.level))
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("aiohttp").setLevel(logging.WARNING)
