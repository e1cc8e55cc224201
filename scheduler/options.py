"""The command line's options, each declared once: the crawl options of ``seed`` and ``run``
as one object that makes the crawl's spec, and the options several other commands take."""

from __future__ import annotations

import dataclasses
import functools
import inspect
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, get_type_hints

import typer
from pydantic import ValidationError

from crawlfleet.shared.crawl import (
    DEFAULT_MAX_PAGES_PER_HOST,
    DEFAULT_MAX_SITEMAP_URLS,
    CrawlSpec,
    check_crawl_id,
    new_crawl_id,
)
from crawlfleet.shared.errors import CrawlfleetError, UserError
from crawlfleet.shared.urls import canonical_seed


@dataclasses.dataclass(frozen=True)
class CrawlOptions:
    """What ``seed`` and ``run`` are told about the crawl: its seeds and its spec's options.

    Each field is one command-line parameter (its typer metadata in its annotation); a command
    takes them all through :func:`with_options`.
    """

    urls: Annotated[
        list[str], typer.Argument(metavar="URL", help="Seed URLs (absolute http or https).")
    ]
    depth: Annotated[
        int,
        typer.Option(
            "--depth", "-d", metavar="N", min=0, help="Follow links this many hops from a seed."
        ),
    ] = 2
    crawl_id: Annotated[
        str | None,
        typer.Option("--crawl-id", metavar="ID", help="Name the crawl (default: time + random)."),
    ] = None
    scope: Annotated[
        str,
        typer.Option(
            "--scope",
            metavar="host|domain|any",
            help="Which links to follow: host (the seeds' hosts), domain "
            "(their registered domains), any.",
        ),
    ] = "host"
    max_pages: Annotated[
        int | None,
        typer.Option("--max-pages", metavar="N", min=1, help="Fetch at most this many URLs."),
    ] = None
    max_pages_per_host: Annotated[
        int,
        typer.Option(
            "--max-pages-per-host",
            metavar="N",
            min=0,
            help="Fetch at most this many pages of one host (0: no limit); the rest of its URLs "
            "are counted as capped.",
        ),
    ] = DEFAULT_MAX_PAGES_PER_HOST
    allow: Annotated[
        list[str] | None,
        typer.Option(
            "--allow", metavar="REGEX", help="Follow only links matching this regex (repeatable)."
        ),
    ] = None
    deny: Annotated[
        list[str] | None,
        typer.Option("--deny", metavar="REGEX", help="Never follow links matching this regex."),
    ] = None
    ignore_robots: Annotated[
        bool, typer.Option("--ignore-robots", help="Do not obey robots.txt (obeyed by default).")
    ] = False
    per_host_concurrency: Annotated[
        int,
        typer.Option(
            "--per-host-concurrency",
            metavar="N",
            min=1,
            help="Requests in flight per host, fleet-wide.",
        ),
    ] = 8
    per_host_delay: Annotated[
        float,
        typer.Option(
            "--per-host-delay",
            metavar="SECONDS",
            min=0,
            help="Seconds between request starts per host, fleet-wide (or robots Crawl-delay).",
        ),
    ] = 0.0
    no_adaptive: Annotated[
        bool,
        typer.Option(
            "--no-adaptive",
            help="Do not adapt to slow hosts (by default a host that answers slowly is paced, "
            "one that times out loses slots and, after 3 timeouts in a row, is given up).",
        ),
    ] = False
    retries: Annotated[
        int,
        typer.Option(
            "--retries",
            metavar="N",
            min=0,
            help="Retries of timeouts, connect errors, 429 and 5xx.",
        ),
    ] = 2
    max_bytes_per_page: Annotated[
        int | None,
        typer.Option(
            "--max-bytes-per-page",
            metavar="BYTES",
            min=1,
            help="Cut bodies there, marked truncated (default: 10 MiB, env "
            "CRAWLFLEET_MAX_PAGE_BYTES).",
        ),
    ] = None
    allow_private: Annotated[
        bool,
        typer.Option(
            "--allow-private",
            help="Let the crawl fetch loopback, private and link-local addresses (blocked for "
            "crawls of public sites; internal crawls may fetch all but link-local).",
        ),
    ] = False
    content_type: Annotated[
        list[str] | None,
        typer.Option(
            "--content-type",
            metavar="TYPE",
            help="Store bodies of this type (text/html) or family (image/) only; repeatable "
            "(default: all). Every URL still gets its record.",
        ),
    ] = None
    warc: Annotated[
        bool,
        typer.Option(
            "--warc",
            help="Write every fetch to WARC files (DIR/ID/warc/*.warc.gz) and index them "
            "(DIR/ID/index.cdxj) instead of one body file per page.",
        ),
    ] = False
    sitemaps: Annotated[
        bool,
        typer.Option(
            "--sitemaps",
            help="Also crawl the URLs of the seeds' sitemaps (robots.txt Sitemap: lines and "
            "/sitemap.xml; indexes, gzip and text sitemaps), at depth 0, within the scope.",
        ),
    ] = False
    max_sitemap_urls: Annotated[
        int | None,
        typer.Option(
            "--max-sitemap-urls",
            metavar="N",
            min=1,
            help=f"With --sitemaps: take at most this many URLs from sitemaps in all (default "
            f"{DEFAULT_MAX_SITEMAP_URLS}); the rest are counted as capped.",
        ),
    ] = None
    since: Annotated[
        str | None,
        typer.Option(
            "--since",
            metavar="CRAWL_ID",
            help="Crawl again since this done crawl of the same data directory: its pages are "
            "asked for with their validators (If-None-Match, If-Modified-Since), and each is "
            "counted new, changed, unchanged or gone; its pages this crawl does not reach are "
            "counted unreached.",
        ),
    ] = None

    def spec(self) -> CrawlSpec:
        """The crawl's spec; raises UserError saying what is wrong with the options."""
        if self.max_sitemap_urls is not None and not self.sitemaps:
            raise UserError(
                "--max-sitemap-urls caps the URLs taken from sitemaps: give --sitemaps too"
            )
        if self.scope not in ("host", "domain", "any"):
            raise UserError(f"invalid scope {self.scope!r}: use host, domain or any")
        try:
            seeds = list(dict.fromkeys(canonical_seed(u) for u in self.urls))
            crawl_id = check_crawl_id(self.crawl_id) if self.crawl_id else new_crawl_id()
        except CrawlfleetError as exc:
            raise UserError(str(exc)) from None
        # the options named as the spec's fields go in as they are (None: the spec's default)
        given = {
            field.name: getattr(self, field.name)
            for field in dataclasses.fields(self)
            if field.name in CrawlSpec.model_fields and getattr(self, field.name) is not None
        }
        given.update(
            crawl_id=crawl_id,
            seeds=seeds,
            obey_robots=not self.ignore_robots,
            adaptive=not self.no_adaptive,
            content_types=[t.strip().lower() for t in self.content_type or []],
        )
        try:
            return CrawlSpec(**given)
        except ValidationError as exc:
            raise UserError(exc.errors()[0]["msg"].removeprefix("Value error, ")) from None


class ExtractorChoice(StrEnum):
    """The values of ``Settings.extractor``, for typer (which takes an Enum, not a Literal)."""

    bs4 = "bs4"
    fast = "fast"


@dataclasses.dataclass(frozen=True)
class WorkerOptions:
    """What ``worker`` and ``run`` are told about the workers they start, each field one
    command-line option (its typer metadata in its annotation); none given means the setting's
    own value (its environment variable, else its default)."""

    concurrency: Annotated[
        int | None,
        typer.Option(
            "--concurrency", "-c", metavar="N", min=1, help="Requests in flight per worker."
        ),
    ] = None
    extractor: Annotated[
        ExtractorChoice | None,
        typer.Option(
            "--extractor",
            metavar="bs4|fast",
            help="How workers extract links: bs4 (beautifulsoup4, the default) or fast "
            "(lxml alone: the same links for much less CPU) (env CRAWLFLEET_EXTRACTOR).",
        ),
    ] = None
    data_dir: Annotated[
        Path | None,
        typer.Option(
            "--data-dir", metavar="DIR", help="Where pages are written (env CRAWLFLEET_DATA_DIR)."
        ),
    ] = None

    def settings(self) -> dict[str, Any]:
        """The settings these options give, by name (None: not given)."""
        extractor = None if self.extractor is None else self.extractor.value
        return {"concurrency": self.concurrency, "extractor": extractor, "data_dir": self.data_dir}


def with_options(command: Callable[..., None]) -> Callable[..., None]:
    """``command`` taking the fields of its parameters typed as an options dataclass
    (:class:`CrawlOptions`, :class:`WorkerOptions`) in their place, and called with each
    such parameter's fields gathered into one object.

    typer reads a command's parameters from its signature: this one's shows the fields, each
    with its typer metadata, so that the commands declare none of them themselves.
    """
    own = inspect.signature(command, eval_str=True)
    parameters: list[inspect.Parameter] = []
    objects: dict[str, tuple[type[Any], list[str]]] = {}
    for param in own.parameters.values():
        declared = param.annotation
        if isinstance(declared, type) and dataclasses.is_dataclass(declared):
            fields = _parameters_of(declared)
            objects[param.name] = declared, [field.name for field in fields]
            parameters += fields
        else:  # keyword-only, as typer calls it: a field with a default may come before it
            parameters.append(param.replace(kind=inspect.Parameter.KEYWORD_ONLY))

    @functools.wraps(command)
    def gathered(**given: Any) -> None:
        for name, (declared, fields) in objects.items():
            given[name] = declared(**{field: given.pop(field) for field in fields})
        command(**given)

    gathered.__signature__ = own.replace(parameters=parameters)  # type: ignore[attr-defined]
    gathered.__annotations__ = {p.name: p.annotation for p in parameters}
    return gathered


def _parameters_of(options: type[Any]) -> list[inspect.Parameter]:
    """The fields of an options dataclass as keyword-only parameters of a command."""
    hints = get_type_hints(options, include_extras=True)
    return [
        inspect.Parameter(
            field.name,
            inspect.Parameter.KEYWORD_ONLY,
            default=inspect.Parameter.empty
            if field.default is dataclasses.MISSING
            else field.default,
            annotation=hints[field.name],
        )
        for field in dataclasses.fields(options)
    ]


# options that several commands take, each naming its own default


def _metrics_port(least: int, text: str) -> Any:
    return typer.Option("--metrics-port", metavar="N", min=least, max=65535, help=text)


# ``worker``'s port, and ``run``'s first of its workers' ports
MetricsPort = Annotated[
    int | None,
    _metrics_port(
        0,
        "Serve Prometheus metrics at http://ADDR:N/metrics; 0, the default, serves "
        "none (env CRAWLFLEET_METRICS_PORT).",
    ),
]
MetricsPorts = Annotated[
    int | None,
    _metrics_port(
        1,
        "Serve each worker's Prometheus metrics at /metrics, worker k on port N+k-1 "
        "(default: none).",
    ),
]
MetricsHost = Annotated[
    str | None,
    typer.Option(
        "--metrics-host",
        metavar="ADDR",
        help="The address metrics are served on (default 0.0.0.0: every interface) "
        "(env CRAWLFLEET_METRICS_HOST).",
    ),
]
StoreDir = Annotated[
    Path | None,
    typer.Option(
        "--data-dir",
        metavar="DIR",
        help="The crawls that `crawlfleet run` keeps in DIR (without REDIS_URL).",
    ),
]
