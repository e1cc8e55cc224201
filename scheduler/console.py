"""What every command shares: its consoles, its settings, and the one line it exits with when
something is wrong (status 2 for the user's mistake, 1 for a failure)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import typer
from pydantic import ValidationError
from rich.console import Console

from crawlfleet.scheduler.embedded import REDIS_DIR, open_store
from crawlfleet.shared.errors import CrawlfleetError, UserError
from crawlfleet.shared.settings import Settings, setting_error

T = TypeVar("T")

out = Console()
err = Console(stderr=True)

# exit statuses: what was typed is wrong, or something failed (a service, a crawl's data)
USAGE, FAILURE = 2, 1


def fail(message: str, code: int = USAGE) -> typer.Exit:
    """Print ``message`` as one error line; the exit to raise with ``code``."""
    err.print(f"[bold red]error:[/bold red] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def failed(exc: CrawlfleetError) -> typer.Exit:
    """One error line for ``exc``: exit 2 for the user's mistake, 1 for a failure."""
    return fail(str(exc), USAGE if isinstance(exc, UserError) else FAILURE)


def settings_of(ctx: typer.Context, **overrides: Any) -> Settings:
    """The settings: the environment's, then the program's options, then ``overrides`` (those
    not None); a bad value fails with one line."""
    values = {**ctx.obj, **{k: v for k, v in overrides.items() if v is not None}}
    try:
        return Settings(**values)
    except ValidationError as exc:
        raise fail(setting_error(exc)) from None


@contextlib.contextmanager
def crawl_store(settings: Settings, data_dir: Path | None) -> Iterator[Settings]:
    """The settings to reach the crawls with: with ``--data-dir`` and no Redis URL given, the
    embedded Redis that ``run`` keeps there (its server while it runs, else one started for
    the command)."""
    if data_dir is None or "redis_url" in settings.model_fields_set:
        yield settings
        return
    try:
        with open_store(data_dir / REDIS_DIR) as url:
            yield settings.model_copy(update={"redis_url": url})
    except CrawlfleetError as exc:
        raise failed(exc) from None


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine; a crawlfleet error becomes one line on stderr and exit code 2 (the
    user's mistake) or 1 (a failure)."""
    try:
        return asyncio.run(coro)
    except CrawlfleetError as exc:
        raise failed(exc) from None
