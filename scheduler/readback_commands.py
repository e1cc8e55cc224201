"""The commands that read a finished crawl back from its data directory, with no Redis:
``pages``, ``cat`` and ``export``."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from crawlfleet.scheduler.console import FAILURE, err, fail, failed, settings_of
from crawlfleet.shared.crawl import check_crawl_id
from crawlfleet.shared.errors import CrawlfleetError
from crawlfleet.shared.mime import media_type
from crawlfleet.shared.storage import manifest_line

if TYPE_CHECKING:
    from crawlfleet.scheduler.readback import FinishedCrawl

CrawlArg = Annotated[str, typer.Argument(metavar="CRAWL_ID", help="A finished crawl.")]
ReadDir = Annotated[
    Path | None,
    typer.Option(
        "--data-dir", metavar="DIR", help="Where the crawl was written (env CRAWLFLEET_DATA_DIR)."
    ),
]


class ExportFormat(StrEnum):
    """What `export` writes."""

    jsonl = "jsonl"
    warc = "warc"


def _finished(ctx: typer.Context, crawl_id: str, data_dir: Path | None) -> FinishedCrawl:
    # imported here: warcio is not worth its import time to the other commands
    from crawlfleet.scheduler.readback import FinishedCrawl

    settings = settings_of(ctx, data_dir=data_dir)
    try:
        return FinishedCrawl(settings.data_dir, check_crawl_id(crawl_id))
    except CrawlfleetError as exc:
        raise failed(exc) from None


@contextlib.contextmanager
def _reading() -> Iterator[None]:
    """What crawlfleet raises is one line: exit 2 for the user's mistake, else 1 (a page not
    stored, as grep finding nothing; files that cannot be read)."""
    try:
        yield
    except BrokenPipeError:
        # the reader went away (`| head`): stop quietly, and let no flush at exit complain
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise typer.Exit(1) from None
    except CrawlfleetError as exc:
        raise failed(exc) from None
    except OSError as exc:
        raise fail(f"{exc.filename or 'crawl files'}: {exc.strerror or exc}", FAILURE) from None


def pages(
    ctx: typer.Context,
    crawl_id: CrawlArg,
    data_dir: ReadDir = None,
    status: Annotated[
        int | None, typer.Option("--status", metavar="N", help="Only pages with this status.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON record per line.")] = False,
) -> None:
    """List the pages a finished crawl stored: status, bytes, type, URL."""
    crawl = _finished(ctx, crawl_id, data_dir)
    with _reading():
        for record in crawl.pages(status):
            if as_json:
                print(manifest_line(record).decode(), end="")
                continue
            mime = media_type(record.content_type) or "-"
            note = f"  -> {record.redirect}" if record.redirect else ""
            note += f"  ({record.error})" if record.error else ""
            print(
                f"{record.status or '-'!s:>3}  {record.length:>9}  {mime:<24}  {record.url}{note}"
            )


def cat(
    ctx: typer.Context,
    crawl_id: CrawlArg,
    url: Annotated[str, typer.Argument(metavar="URL", help="A page of the crawl.")],
    data_dir: ReadDir = None,
) -> None:
    """Print the stored body of one page (from its file, or its WARC record), decoded."""
    crawl = _finished(ctx, crawl_id, data_dir)
    with _reading():
        body = crawl.body(crawl.page(url))
    sys.stdout.buffer.write(body)
    sys.stdout.buffer.flush()


def export(
    ctx: typer.Context,
    crawl_id: CrawlArg,
    output: Annotated[
        Path, typer.Option("--output", "-o", metavar="FILE", help="The file to write.")
    ],
    fmt: Annotated[
        ExportFormat,
        typer.Option(
            "--format",
            metavar="jsonl|warc",
            help="jsonl: each page record with its body (base64); warc: every record.",
        ),
    ] = ExportFormat.jsonl,
    data_dir: ReadDir = None,
) -> None:
    """Write a finished crawl to one file: JSON lines, or WARC (gzip per record)."""
    crawl = _finished(ctx, crawl_id, data_dir)
    with _reading():
        tmp = output.with_name(f".{output.name}.tmp")
        try:
            with tmp.open("wb") as file:
                written = (
                    crawl.export_jsonl(file)
                    if fmt is ExportFormat.jsonl
                    else crawl.export_warc(file)
                )
            tmp.replace(output)
        finally:
            tmp.unlink(missing_ok=True)
    err.print(f"exported {written} page(s) of {crawl_id} to {output}", highlight=False)
