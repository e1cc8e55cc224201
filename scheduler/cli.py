"""The ``crawlfleet`` command line: seed, worker, status, cancel, run."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import time
from collections.abc import Coroutine, Iterator
from enum import StrEnum
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from scheduler.control import (
    CancelResult,
    cancel_crawl,
    check_since,
    check_since_files,
    forget_crawl,
    pause_crawl,
    resume_crawl,
    seed_crawl,
)
from scheduler.embedded import REDIS_DIR, EmbeddedRedis, open_store
from scheduler.interrupt import Caught, resume_command, stop_signals_interrupt
from scheduler.local import LocalWorkers
from scheduler.panel import (
    changes_text,
    excluded_text,
    human_bytes,
    sitemaps_text,
    state_text,
)
from scheduler.progress import watch
from shared.catalog import list_crawls, load_status
from shared.connections import connected
from shared.crawl import (
    DEFAULT_MAX_PAGES_PER_HOST,
    DEFAULT_MAX_SITEMAP_URLS,
    CrawlSpec,
    CrawlState,
    CrawlStatus,
    check_crawl_id,
    new_crawl_id,
)
from shared.errors import (
    CrawlfleetError,
    LogFileError,
    ServiceError,
    UnreadableCrawl,
    UserError,
)
from shared.keys import worker_health_key
from shared.logs import configure_logging
from shared.mime import media_type
from shared.settings import Settings, setting_error
from shared.storage import CrawlLayout, manifest_line
from shared.urls import canonical_seed

if TYPE_CHECKING:
    from scheduler.readback import FinishedCrawl

T = TypeVar("T")
_LAST_PORT = 65535

app = typer.Typer(
    name="crawlfleet",
    help="A distributed web crawler: arq workers over Redis, pages on a shared volume.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
)
out = Console()
err = Console(stderr=True)

# options shared by `seed` and `run`
Urls = Annotated[
    list[str], typer.Argument(metavar="URL", help="Seed URLs (absolute http or https).")
]
Depth = Annotated[
    int,
    typer.Option(
        "--depth", "-d", metavar="N", min=0, help="Follow links this many hops from a seed."
    ),
]
CrawlId = Annotated[
    str | None,
    typer.Option("--crawl-id", metavar="ID", help="Name the crawl (default: time + random)."),
]
ScopeOpt = Annotated[
    str,
    typer.Option(
        "--scope",
        metavar="host|domain|any",
        help="Which links to follow: host (the seeds' hosts), domain "
        "(their registered domains), any.",
    ),
]
MaxPages = Annotated[
    int | None,
    typer.Option("--max-pages", metavar="N", min=1, help="Fetch at most this many URLs."),
]
MaxPagesPerHost = Annotated[
    int,
    typer.Option(
        "--max-pages-per-host",
        metavar="N",
        min=0,
        help="Fetch at most this many pages of one host (0: no limit); the rest of its URLs "
        "are counted as capped.",
    ),
]
Allow = Annotated[
    list[str] | None,
    typer.Option(
        "--allow", metavar="REGEX", help="Follow only links matching this regex (repeatable)."
    ),
]
Deny = Annotated[
    list[str] | None,
    typer.Option("--deny", metavar="REGEX", help="Never follow links matching this regex."),
]
IgnoreRobots = Annotated[
    bool, typer.Option("--ignore-robots", help="Do not obey robots.txt (obeyed by default).")
]
PerHostConcurrency = Annotated[
    int,
    typer.Option(
        "--per-host-concurrency",
        metavar="N",
        min=1,
        help="Requests in flight per host, fleet-wide.",
    ),
]
PerHostDelay = Annotated[
    float,
    typer.Option(
        "--per-host-delay",
        metavar="SECONDS",
        min=0,
        help="Seconds between request starts per host, fleet-wide (or robots Crawl-delay).",
    ),
]
NoAdaptive = Annotated[
    bool,
    typer.Option(
        "--no-adaptive",
        help="Do not adapt to slow hosts (by default a host that answers slowly is paced, "
        "one that times out loses slots and, after 3 timeouts in a row, is given up).",
    ),
]
Retries = Annotated[
    int,
    typer.Option(
        "--retries", metavar="N", min=0, help="Retries of timeouts, connect errors, 429 and 5xx."
    ),
]
MaxBytes = Annotated[
    int | None,
    typer.Option(
        "--max-bytes-per-page",
        metavar="BYTES",
        min=1,
        help="Cut bodies there, marked truncated (default: 10 MiB, env CRAWLFLEET_MAX_PAGE_BYTES).",
    ),
]
ContentTypes = Annotated[
    list[str] | None,
    typer.Option(
        "--content-type",
        metavar="TYPE",
        help="Store bodies of this type (text/html) or family (image/) only; repeatable "
        "(default: all). Every URL still gets its record.",
    ),
]
AllowPrivate = Annotated[
    bool,
    typer.Option(
        "--allow-private",
        help="Let the crawl fetch loopback, private and link-local addresses (blocked for "
        "crawls of public sites; internal crawls may fetch all but link-local).",
    ),
]
Warc = Annotated[
    bool,
    typer.Option(
        "--warc",
        help="Write every fetch to WARC files (DIR/ID/warc/*.warc.gz) and index them "
        "(DIR/ID/index.cdxj) instead of one body file per page.",
    ),
]
Sitemaps = Annotated[
    bool,
    typer.Option(
        "--sitemaps",
        help="Also crawl the URLs of the seeds' sitemaps (robots.txt Sitemap: lines and "
        "/sitemap.xml; indexes, gzip and text sitemaps), at depth 0, within the scope.",
    ),
]
MaxSitemapUrls = Annotated[
    int | None,
    typer.Option(
        "--max-sitemap-urls",
        metavar="N",
        min=1,
        help=f"With --sitemaps: take at most this many URLs from sitemaps in all (default "
        f"{DEFAULT_MAX_SITEMAP_URLS}); the rest are counted as capped.",
    ),
]
Since = Annotated[
    str | None,
    typer.Option(
        "--since",
        metavar="CRAWL_ID",
        help="Crawl again since this done crawl of the same data directory: its pages are "
        "asked for with their validators (If-None-Match, If-Modified-Since), and each is "
        "counted new, changed, unchanged or gone.",
    ),
]
Concurrency = Annotated[
    int | None,
    typer.Option("--concurrency", "-c", metavar="N", min=1, help="Requests in flight per worker."),
]


class ExtractorChoice(StrEnum):
    """The values of ``Settings.extractor``, for typer (which takes an Enum, not a Literal)."""

    bs4 = "bs4"
    fast = "fast"


ExtractorOpt = Annotated[
    ExtractorChoice | None,
    typer.Option(
        "--extractor",
        metavar="bs4|fast",
        help="How workers extract links: bs4 (beautifulsoup4, the default) or fast "
        "(lxml alone: the same links for much less CPU) (env CRAWLFLEET_EXTRACTOR).",
    ),
]
DataDir = Annotated[
    Path | None,
    typer.Option(
        "--data-dir", metavar="DIR", help="Where pages are written (env CRAWLFLEET_DATA_DIR)."
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


# exit statuses: what was typed is wrong, or something failed (a service, a crawl's data)
USAGE, FAILURE = 2, 1


def _fail(message: str, code: int = USAGE) -> typer.Exit:
    err.print(f"[bold red]error:[/bold red] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def _failed(exc: CrawlfleetError) -> typer.Exit:
    """One error line for ``exc``: exit 2 for the user's mistake, 1 for a failure."""
    return _fail(str(exc), USAGE if isinstance(exc, UserError) else FAILURE)


def _value(choice: StrEnum | None) -> Any:
    return None if choice is None else choice.value


def _settings(ctx: typer.Context, **overrides: Any) -> Settings:
    values = {**ctx.obj, **{k: v for k, v in overrides.items() if v is not None}}
    try:
        return Settings(**values)
    except ValidationError as exc:
        raise _fail(setting_error(exc)) from None


@contextlib.contextmanager
def _crawl_store(settings: Settings, data_dir: Path | None) -> Iterator[Settings]:
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
        raise _failed(exc) from None


def _run(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine; a crawlfleet error becomes one line on stderr and exit code 2 (the
    user's mistake) or 1 (a failure)."""
    try:
        return asyncio.run(coro)
    except CrawlfleetError as exc:
        raise _failed(exc) from None


def _spec(urls: list[str], crawl_id: str | None, **options: Any) -> CrawlSpec:
    """The crawl spec from the CLI's crawl options; bad values fail with one line."""
    if options["scope"] not in ("host", "domain", "any"):
        raise _fail(f"invalid scope {options['scope']!r}: use host, domain or any")
    try:
        seeds = list(dict.fromkeys(canonical_seed(u) for u in urls))
        cid = check_crawl_id(crawl_id) if crawl_id else new_crawl_id()
    except CrawlfleetError as exc:
        raise _fail(str(exc)) from None
    options = {k: v for k, v in options.items() if v is not None}
    try:
        return CrawlSpec(crawl_id=cid, seeds=seeds, **options)
    except ValidationError as exc:
        raise _fail(exc.errors()[0]["msg"].removeprefix("Value error, ")) from None


# the parameters of `seed` and `run` that go into the crawl's spec as they are
_SPEC_OPTIONS = (
    "depth", "scope", "max_pages", "max_pages_per_host", "allow", "deny", "per_host_concurrency",
    "per_host_delay", "retries", "max_bytes_per_page", "allow_private", "warc", "sitemaps",
    "max_sitemap_urls", "since",
)  # fmt: skip


def _spec_from_options(params: dict[str, Any]) -> CrawlSpec:
    """The spec from the parameters of a `seed` or `run` call (its ``locals()``)."""
    if params["max_sitemap_urls"] is not None and not params["sitemaps"]:
        raise _fail("--max-sitemap-urls caps the URLs taken from sitemaps: give --sitemaps too")
    options = {name: params[name] for name in _SPEC_OPTIONS}
    types = [t.strip().lower() for t in params["content_type"] or []]
    return _spec(params["urls"], params["crawl_id"], obey_robots=not params["ignore_robots"],
                 adaptive=not params["no_adaptive"], content_types=types,
                 **options)  # fmt: skip


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
    settings = _settings(ctx)
    try:
        configure_logging(settings.log_format, settings.log_level, settings.log_file)
    except LogFileError as exc:
        raise _failed(exc) from None


@app.command(epilog="Example: crawlfleet seed https://example.org --depth 2 --wait")
def seed(
    ctx: typer.Context,
    urls: Urls,
    depth: Depth = 2,
    crawl_id: CrawlId = None,
    scope: ScopeOpt = "host",
    max_pages: MaxPages = None,
    max_pages_per_host: MaxPagesPerHost = DEFAULT_MAX_PAGES_PER_HOST,
    allow: Allow = None,
    deny: Deny = None,
    ignore_robots: IgnoreRobots = False,
    per_host_concurrency: PerHostConcurrency = 8,
    per_host_delay: PerHostDelay = 0.0,
    no_adaptive: NoAdaptive = False,
    retries: Retries = 2,
    max_bytes_per_page: MaxBytes = None,
    allow_private: AllowPrivate = False,
    content_type: ContentTypes = None,
    warc: Warc = False,
    sitemaps: Sitemaps = False,
    max_sitemap_urls: MaxSitemapUrls = None,
    since: Since = None,
    wait: Annotated[bool, typer.Option("--wait", help="Show progress until it is done.")] = False,
) -> None:
    """Create a crawl and queue its seed URLs; prints the crawl id."""
    spec = _spec_from_options(locals())
    settings = _settings(ctx)

    async def go() -> CrawlStatus | None:
        async with connected(settings.redis_url) as redis:
            if spec.since is not None:
                await check_since(redis, settings.data_dir, spec.since)
            result = await seed_crawl(redis, settings, spec)
            out.print(spec.crawl_id, highlight=False)
            if not result.created:
                err.print(f"added {result.queued} seed(s) to running crawl {spec.crawl_id}")
            if not wait:
                return None
            return await watch(
                redis, spec.crawl_id, queue_name=settings.queue_name, console=err,
                wait_s=settings.redis_wait_s, stall_after_s=settings.stall_after_s,
                plain_every_s=settings.progress_every_s, hint_no_worker=True,
            )  # fmt: skip

    final = _run(go())
    if final is not None:
        _summary(final, settings.data_dir)
        if final.state is not CrawlState.DONE:
            raise typer.Exit(1)


@app.command(
    epilog="Examples: crawlfleet worker --concurrency 64 --data-dir /data | "
    "CRAWLFLEET_WORKER_ID=w1 crawlfleet worker --check"
)
def worker(
    ctx: typer.Context,
    concurrency: Concurrency = None,
    extractor: ExtractorOpt = None,
    data_dir: DataDir = None,
    metrics_port: Annotated[
        int | None,
        typer.Option(
            "--metrics-port",
            metavar="N",
            min=0,
            max=65535,
            help="Serve Prometheus metrics at http://ADDR:N/metrics; 0, the default, serves "
            "none (env CRAWLFLEET_METRICS_PORT).",
        ),
    ] = None,
    metrics_host: MetricsHost = None,
    check: Annotated[
        bool,
        typer.Option(
            "--check",
            help="Do not run: exit 0 if the worker CRAWLFLEET_WORKER_ID polled Redis in the "
            "last 30 s, else 1 (a container healthcheck).",
        ),
    ] = False,
) -> None:
    """Run one worker until SIGTERM or SIGINT (in-flight pages finish or go back to the queue)."""
    settings = _settings(
        ctx, concurrency=concurrency, extractor=_value(extractor), data_dir=data_dir,
        metrics_port=metrics_port, metrics_host=metrics_host,
    )  # fmt: skip
    if check:
        raise typer.Exit(0 if _worker_alive(settings) else 1)
    # the worker is its own program (the package the CLI does not import): this process
    # becomes it, so a container's signals and exit status are the worker's own
    sys.stdout.flush()
    env = {**os.environ, **settings.to_env()}
    os.execve(sys.executable, [sys.executable, "-m", "workers"], env)  # noqa: S606


def _worker_alive(settings: Settings) -> bool:
    import redis

    key = worker_health_key(settings.queue_name, settings.worker_id)
    try:
        with redis.Redis.from_url(settings.redis_url, socket_timeout=3) as client:
            return bool(client.exists(key))
    except (redis.RedisError, OSError):
        return False


@app.command(epilog="Examples: crawlfleet status | crawlfleet status 20261125-101500-a1b2c3 --json")
def status(
    ctx: typer.Context,
    crawl_id: Annotated[
        str | None, typer.Argument(metavar="CRAWL_ID", help="One crawl; all when omitted.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    data_dir: StoreDir = None,
) -> None:
    """State and counters of one crawl, or a table of all crawls."""
    settings = _settings(ctx)

    async def go() -> tuple[list[CrawlStatus], list[str]]:
        async with connected(settings.redis_url) as redis:
            if crawl_id:
                return [await load_status(redis, check_crawl_id(crawl_id))], []
            statuses, unreadable = [], []
            for c in await list_crawls(redis):
                try:
                    statuses.append(await load_status(redis, c))
                except UnreadableCrawl as exc:  # one bad crawl must not hide the others
                    unreadable.append(str(exc))
            return statuses, unreadable

    with _crawl_store(settings, data_dir) as settings:
        statuses, unreadable = _run(go())
    failures = [_fail(message, FAILURE) for message in unreadable]  # each printed as one line
    if as_json:
        data = [_status_json(s, settings.stall_after_s) for s in statuses]
        print(json.dumps(data[0] if crawl_id else data, indent=2))
    else:
        _status_table(statuses, settings.stall_after_s)
    if failures:
        raise failures[0]


def _status_json(status: CrawlStatus, stall_after_s: float) -> dict[str, object]:
    stalled = status.stalled_s(stall_after_s)
    return {
        **status.model_dump(mode="json"),
        "stalled_s": None if stalled is None else int(stalled),
    }


def _status_table(statuses: list[CrawlStatus], stall_after_s: float) -> None:
    table = Table("crawl", "state", "pages", "failed", "queue", "bytes", "depth", "seed")
    for s in statuses:
        c = s.counters
        seeds = s.spec.seeds[0] + (f" (+{len(s.spec.seeds) - 1})" if len(s.spec.seeds) > 1 else "")
        table.add_row(
            s.crawl_id, state_text(s, stall_after_s), str(c.fetched), str(c.failed), str(c.pending),
            human_bytes(c.bytes), str(s.spec.depth), seeds,
        )  # fmt: skip
    out.print(table)
    for s in statuses:  # a reason is a line of its own: a column would wrap it to pieces
        if s.reason is not None:
            out.print(f"{s.crawl_id} {s.state.value}: {s.reason}", highlight=False, soft_wrap=True)
    for s in statuses:  # and so is what a crawl --since another found changed
        if s.spec.since is not None:
            out.print(f"{s.crawl_id}: {changes_text(s)}", highlight=False, soft_wrap=True)


@app.command(epilog="Example: crawlfleet cancel 20261125-101500-a1b2c3")
def cancel(
    ctx: typer.Context,
    crawl_id: Annotated[str, typer.Argument(metavar="CRAWL_ID", help="The crawl to stop.")],
    data_dir: StoreDir = None,
) -> None:
    """Stop a crawl: queued jobs are dropped, pages being fetched are aborted."""
    settings = _settings(ctx)

    async def go() -> CancelResult:
        async with connected(settings.redis_url) as redis:
            return await cancel_crawl(redis, settings, check_crawl_id(crawl_id))

    with _crawl_store(settings, data_dir) as settings:
        result = _run(go())
    out.print(
        f"cancelled {crawl_id}: dropped {result.dropped} queued job(s), "
        f"aborting {result.aborted} running",
        highlight=False,
    )


@app.command(epilog="Example: crawlfleet pause 20261125-101500-a1b2c3")
def pause(
    ctx: typer.Context,
    crawl_id: Annotated[str, typer.Argument(metavar="CRAWL_ID", help="The crawl to hold.")],
    data_dir: StoreDir = None,
) -> None:
    """Hold a crawl: its queue is kept aside, pages being fetched finish. See `resume`."""
    settings = _settings(ctx)

    async def go() -> int:
        async with connected(settings.redis_url) as redis:
            return await pause_crawl(redis, settings, check_crawl_id(crawl_id))

    with _crawl_store(settings, data_dir) as settings:
        parked = _run(go())
    out.print(f"paused {crawl_id}: {parked} URL(s) held", highlight=False)


@app.command(epilog="Example: crawlfleet resume 20261125-101500-a1b2c3")
def resume(
    ctx: typer.Context,
    crawl_id: Annotated[str, typer.Argument(metavar="CRAWL_ID", help="The crawl to release.")],
    data_dir: StoreDir = None,
) -> None:
    """Release a paused crawl: its held jobs are queued again."""
    settings = _settings(ctx)

    async def go() -> int:
        async with connected(settings.redis_url) as redis:
            return await resume_crawl(redis, settings, check_crawl_id(crawl_id))

    with _crawl_store(settings, data_dir) as settings:
        queued = _run(go())
    out.print(f"resumed {crawl_id}: {queued} URL(s) to go", highlight=False)


@app.command(epilog="Example: crawlfleet forget 20261125-101500-a1b2c3")
def forget(
    ctx: typer.Context,
    crawl_id: Annotated[str, typer.Argument(metavar="CRAWL_ID", help="The crawl to forget.")],
    data_dir: StoreDir = None,
) -> None:
    """Remove an ended crawl from Redis (its files stay); `status` no longer lists it."""
    settings = _settings(ctx)

    async def go() -> None:
        async with connected(settings.redis_url) as redis:
            await forget_crawl(redis, settings, check_crawl_id(crawl_id))

    with _crawl_store(settings, data_dir) as settings:
        _run(go())
    out.print(f"forgot {crawl_id}", highlight=False)


@app.command(epilog="Example: crawlfleet run https://example.org --depth 2 --workers 2")
def run(
    ctx: typer.Context,
    urls: Urls,
    depth: Depth = 2,
    crawl_id: CrawlId = None,
    scope: ScopeOpt = "host",
    max_pages: MaxPages = None,
    max_pages_per_host: MaxPagesPerHost = DEFAULT_MAX_PAGES_PER_HOST,
    allow: Allow = None,
    deny: Deny = None,
    ignore_robots: IgnoreRobots = False,
    per_host_concurrency: PerHostConcurrency = 8,
    per_host_delay: PerHostDelay = 0.0,
    no_adaptive: NoAdaptive = False,
    retries: Retries = 2,
    max_bytes_per_page: MaxBytes = None,
    allow_private: AllowPrivate = False,
    content_type: ContentTypes = None,
    warc: Warc = False,
    sitemaps: Sitemaps = False,
    max_sitemap_urls: MaxSitemapUrls = None,
    since: Since = None,
    workers: Annotated[
        int, typer.Option("--workers", "-w", metavar="W", min=1, help="Worker processes.")
    ] = 2,
    concurrency: Concurrency = None,
    extractor: ExtractorOpt = None,
    data_dir: DataDir = None,
    metrics_port: Annotated[
        int | None,
        typer.Option(
            "--metrics-port",
            metavar="N",
            min=1,
            max=65535,
            help="Serve each worker's Prometheus metrics at /metrics, worker k on port N+k-1 "
            "(default: none).",
        ),
    ] = None,
    metrics_host: MetricsHost = None,
) -> None:
    """Crawl on this machine: Redis (embedded unless REDIS_URL is set), workers, progress."""
    spec = _spec_from_options(locals())
    settings = _settings(
        ctx, concurrency=concurrency, extractor=_value(extractor), data_dir=data_dir,
        metrics_port=metrics_port, metrics_host=metrics_host,
    )  # fmt: skip
    if settings.metrics_port and settings.metrics_port + workers - 1 > _LAST_PORT:
        raise _fail(f"--metrics-port {settings.metrics_port} leaves no port for worker {workers}")
    if spec.since is not None:  # before anything starts: its workers read it in this folder
        try:
            check_since_files(settings.data_dir, spec.since)
        except CrawlfleetError as exc:
            raise _failed(exc) from None
    started = time.monotonic()
    embedded: EmbeddedRedis | None = None
    try:
        with stop_signals_interrupt() as caught:
            try:
                if "redis_url" not in settings.model_fields_set:
                    embedded = EmbeddedRedis(settings.data_dir / REDIS_DIR).launch()
                    settings = settings.model_copy(update={"redis_url": embedded.url})
                done_before, final = _run_locally(settings, spec, workers, embedded)
            except KeyboardInterrupt:
                # the workers have stopped (their pages are back in Redis); Redis still runs
                raise _interrupted(settings, spec.crawl_id, caught) from None
    except ServiceError as exc:
        raise _failed(exc) from None
    finally:
        if embedded is not None:
            embedded.stop()
    _summary(final, settings.data_dir, elapsed=time.monotonic() - started, done_before=done_before)


def _run_locally(
    settings: Settings, spec: CrawlSpec, workers: int, embedded: EmbeddedRedis | None
) -> tuple[int, CrawlStatus]:
    """Start ``workers`` local workers, seed the crawl and watch it until it ends; returns the
    pages it had done already (a resumed crawl) and its final status. A launched ``embedded``
    Redis is waited for once the workers are starting: they take longer to start than it."""
    with LocalWorkers(settings, workers, settings.data_dir / "logs") as fleet:
        if embedded is not None:
            embedded.wait_ready()

        def check_workers() -> None:
            if fleet.alive() == 0:
                raise ServiceError(
                    f"all workers exited; see {settings.data_dir / 'logs'}/worker-*.log"
                )

        async def go() -> tuple[int, CrawlStatus]:
            async with connected(settings.redis_url) as redis:
                if spec.since is not None:
                    await check_since(redis, settings.data_dir, spec.since)
                await seed_crawl(redis, settings, spec)
                before = (await load_status(redis, spec.crawl_id)).counters
                metrics = _metrics_ports(settings.metrics_host, fleet.metrics_ports())
                err.print(
                    f"crawl {spec.crawl_id}: {workers} worker(s), depth {spec.depth}{metrics}",
                    highlight=False,
                    soft_wrap=True,
                )
                return before.done, await watch(
                    redis,
                    spec.crawl_id,
                    queue_name=settings.queue_name,
                    console=err,
                    wait_s=settings.redis_wait_s,
                    stall_after_s=settings.stall_after_s,
                    plain_every_s=settings.progress_every_s,
                    check=check_workers,
                )

        return _run(go())


def _metrics_ports(host: str, ports: list[int]) -> str:
    """Where the workers of ``run`` serve their metrics, for its first line."""
    if not ports:
        return ""
    last = f"-{ports[-1]}" if len(ports) > 1 else ""
    return f", metrics on {host}:{ports[0]}{last}"


def _interrupted(settings: Settings, crawl_id: str, caught: Caught) -> typer.Exit:
    """Say where an interrupted ``run`` left its crawl and how to resume it."""

    async def counts() -> str:
        async with connected(settings.redis_url) as redis:
            c = (await load_status(redis, crawl_id)).counters
        return f": {c.fetched} fetched, {c.failed} failed, {c.pending} to go"

    try:
        so_far = asyncio.run(counts())
    except (CrawlfleetError, OSError):
        so_far = ""  # interrupted before the crawl was seeded, or Redis is gone
    with contextlib.suppress(OSError):  # a hang-up may have taken the terminal
        err.print(
            f"interrupted by {caught.name}: crawl {crawl_id} stopped{so_far}\n"
            f"resume it with: {resume_command(sys.argv[1:], crawl_id)}",
            highlight=False,
            soft_wrap=True,
        )
    return typer.Exit(caught.exit_code)


def _summary(
    status: CrawlStatus, data_dir: Path, elapsed: float | None = None, done_before: int = 0
) -> None:
    """Print what a crawl did and where its files are (where its workers wrote them); exit 1,
    saying why, if it failed or ended with no page fetched."""
    c = status.counters
    took = ""
    if elapsed is not None:
        rate = (c.done - done_before) / max(elapsed, 1e-3)
        before = f"; {done_before} pages were done before this run" if done_before else ""
        took = f" in {elapsed:.1f}s ({rate:.1f} pages/s{before})"
    # the crawl's folder as its workers named it (their data directory may not be ours), else
    # as ours would be
    root = Path(status.manifest).parent if status.manifest else data_dir / status.crawl_id
    capped = f", {c.capped} not fetched (page caps)" if c.capped else ""
    reasons = sorted(c.reasons.items(), key=lambda kv: (-kv[1], kv[0]))
    why = "".join(f"\n  errors    {n} {reason}" for reason, n in reasons[:_REASONS_SHOWN])
    changes = "" if status.spec.since is None else f"\n  changes   {changes_text(status)}"
    out.print(
        f"crawl {status.crawl_id} {status.state.value}{took}\n"
        f"  pages     {c.fetched} fetched, {c.failed} failed{excluded_text(c)}{capped}, "
        f"{human_bytes(c.bytes)}"
        + (f"\n  sitemaps  {sitemaps_text(c)}" if status.spec.sitemaps else "")
        + f"{changes}"
        f"{why}\n"
        f"  files     {root / 'pages'}\n"
        f"  manifest  {root / 'manifest.jsonl'}"
        + (
            f"\n  warc      {root / 'warc'}\n  index     {root / 'index.cdxj'}"
            if status.spec.warc
            else ""
        ),
        highlight=False,
        soft_wrap=True,
    )
    if status.state is CrawlState.FAILED:
        err.print(f"[bold red]error:[/bold red] {status.reason}", highlight=False, soft_wrap=True)
        raise typer.Exit(1)
    if status.state is CrawlState.DONE and c.fetched == 0 and c.failed:
        seeds = _seed_errors(CrawlLayout(root.parent, status.crawl_id))
        err.print(
            f"[bold red]error:[/bold red] no page could be fetched{seeds}",
            highlight=False,
            soft_wrap=True,
        )
        raise typer.Exit(1)


# the failure reasons the summary shows, the commonest first
_REASONS_SHOWN = 5


def _seed_errors(layout: CrawlLayout) -> str:
    """Why each seed failed, from the manifest (empty if it cannot be read here: the workers'
    data directory may not be this machine's)."""
    try:
        lines = layout.read(layout.manifest).decode(errors="replace").splitlines()
    except OSError:
        return ""
    said = []
    for line in lines:
        with contextlib.suppress(ValueError):
            record = json.loads(line)
            if record.get("depth") == 0 and record.get("error"):
                said.append(f"{record['url']}: {record['error']}")
    return "".join(f"\n  {line}" for line in said[:_REASONS_SHOWN])


# the commands that read a finished crawl back from its data directory (no Redis needed)
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
    from scheduler.readback import FinishedCrawl

    settings = _settings(ctx, data_dir=data_dir)
    try:
        return FinishedCrawl(settings.data_dir, check_crawl_id(crawl_id))
    except CrawlfleetError as exc:
        raise _failed(exc) from None


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
        raise _failed(exc) from None
    except OSError as exc:
        raise _fail(f"{exc.filename or 'crawl files'}: {exc.strerror or exc}", FAILURE) from None


@app.command(epilog="Examples: crawlfleet pages 20261125-101500-a1b2c3 --status 200 | "
             "crawlfleet pages ID --json")  # fmt: skip
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


@app.command(
    epilog="Example: crawlfleet cat 20261125-101500-a1b2c3 https://example.org/ > page.html"
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


@app.command(
    epilog="Example: crawlfleet export 20261125-101500-a1b2c3 --format warc -o crawl.warc.gz"
)
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
            with tmp.open("wb") as out:
                written = (
                    crawl.export_jsonl(out) if fmt is ExportFormat.jsonl else crawl.export_warc(out)
                )
            tmp.replace(output)
        finally:
            tmp.unlink(missing_ok=True)
    err.print(f"exported {written} page(s) of {crawl_id} to {output}", highlight=False)


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)
