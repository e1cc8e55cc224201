"""The ``crawlfleet`` command line: the program's own options, and its commands in the order
its help lists them, each with an example (the commands themselves live by what they do:
``crawl_commands``, ``fleet_commands``, ``readback_commands``)."""

from __future__ import annotations

import sys
from importlib import metadata
from typing import Annotated

import typer

from crawlfleet.scheduler import crawl_commands, fleet_commands, readback_commands
from crawlfleet.scheduler.console import err, failed, out, settings_of
from crawlfleet.shared.errors import LogFileError
from crawlfleet.shared.logs import configure_logging

app = typer.Typer(
    name="crawlfleet",
    help="A distributed web crawler: arq workers over Redis, pages on a shared volume.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
)


def _print_version(asked: bool) -> None:
    if asked:
        out.print(f"crawlfleet {metadata.version('crawlfleet')}", highlight=False)
        raise typer.Exit()


@app.callback()
def main_options(
    ctx: typer.Context,
    redis_url: Annotated[
        str | None,
        typer.Option(
            "--redis-url",
            metavar="URL",
            envvar="REDIS_URL",
            help="Redis to use.",
            show_default=False,
        ),
    ] = None,
    log_format: Annotated[
        str | None,
        typer.Option("--log-format", metavar="auto|json|console", help="auto, json or console."),
    ] = None,
    log_level: Annotated[
        str | None, typer.Option("--log-level", metavar="LEVEL", help="debug, info, ...")
    ] = None,
    version: Annotated[
        bool,
        typer.Option(
            "--version", is_eager=True, callback=_print_version, help="Print the version."
        ),
    ] = False,
) -> None:
    """A distributed web crawler: arq workers over Redis, pages on a shared volume.

    Redis defaults to redis://localhost:6379/0 (env REDIS_URL); `run` starts its own
    when no Redis is given.
    """
    ctx.obj = {
        k: v
        for k, v in {
            "redis_url": redis_url,
            "log_format": log_format,
            "log_level": log_level,
        }.items()
        if v is not None
    }
    settings = settings_of(ctx)
    try:
        configure_logging(settings.log_format, settings.log_level, settings.log_file)
    except LogFileError as exc:
        raise failed(exc) from None


# the crawl id the examples show
_ID = "20261125-101500-a1b2c3"
app.command(epilog="Example: crawlfleet seed https://example.org --depth 2 --wait")(
    crawl_commands.seed
)
app.command(
    epilog="Examples: crawlfleet worker --concurrency 64 --data-dir /data | "
    "CRAWLFLEET_WORKER_ID=w1 crawlfleet worker --check"
)(fleet_commands.worker)
app.command(epilog=f"Examples: crawlfleet status | crawlfleet status {_ID} --json")(
    fleet_commands.status
)
app.command(epilog=f"Example: crawlfleet cancel {_ID}")(fleet_commands.cancel)
app.command(epilog=f"Example: crawlfleet pause {_ID}")(fleet_commands.pause)
app.command(epilog=f"Example: crawlfleet resume {_ID}")(fleet_commands.resume)
app.command(epilog=f"Example: crawlfleet forget {_ID}")(fleet_commands.forget)
app.command(epilog="Example: crawlfleet run https://example.org --depth 2 --workers 2")(
    crawl_commands.run
)
app.command(epilog=f"Examples: crawlfleet pages {_ID} --status 200 | crawlfleet pages ID --json")(
    readback_commands.pages
)
app.command(epilog=f"Example: crawlfleet cat {_ID} https://example.org/ > page.html")(
    readback_commands.cat
)
app.command(epilog=f"Example: crawlfleet export {_ID} --format warc -o crawl.warc.gz")(
    readback_commands.export
)


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)
