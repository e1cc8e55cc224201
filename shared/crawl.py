"""The crawl model: ids, specs, states and counters, as stored in Redis."""

from __future__ import annotations

import re
import secrets
from datetime import UTC, datetime
from enum import StrEnum

from pydantic import BaseModel, Field, field_validator, model_validator

from crawlfleet.shared.errors import InvalidCrawlId
from crawlfleet.shared.mime import media_type
from crawlfleet.shared.urls import Scope

_CRAWL_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class CrawlState(StrEnum):
    """Where a crawl is in its life: running and paused are live; done, cancelled and failed
    (its pages could not be stored: ``CrawlStatus.reason`` says why) ended."""

    RUNNING = "running"
    PAUSED = "paused"
    DONE = "done"
    CANCELLED = "cancelled"
    FAILED = "failed"

    @property
    def live(self) -> bool:
        """True while the crawl may still fetch pages."""
        return self in (CrawlState.RUNNING, CrawlState.PAUSED)


def new_crawl_id(now: datetime | None = None) -> str:
    """A fresh crawl id: readable, sortable by time, unique enough to never collide."""
    now = now or datetime.now(UTC)
    return f"{now:%Y%m%d-%H%M%S}-{secrets.token_hex(3)}"


def check_crawl_id(crawl_id: str) -> str:
    """Return the id if it can name a folder and a Redis key, else raise InvalidCrawlId."""
    if not _CRAWL_ID.fullmatch(crawl_id):
        raise InvalidCrawlId(
            f"invalid crawl id {crawl_id!r}: use 1-64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return crawl_id


# a large real site (the Python docs: 500 pages, a big wiki: tens of thousands) fits; a trap ends
DEFAULT_MAX_PAGES_PER_HOST = 100_000
# page URLs a crawl takes from sitemaps in all (two sitemaps at the protocol's 50,000 each):
# as many as the default page budget of one host; the rest are counted as capped
DEFAULT_MAX_SITEMAP_URLS = 100_000
# sitemap files one crawl reads at most, indexes included: an index may list 50,000 of them
SITEMAPS_PER_CRAWL = 1_000


# a media type or a family (``image/``) of one of the registered top-level types (RFC 6838)
_CONTENT_TYPE = re.compile(
    r"(application|audio|font|haptics|image|message|model|multipart|text|video)/"
    r"([a-z0-9][a-z0-9!#$&^_.+-]*)?"
)


class CrawlSpec(BaseModel):
    """What a crawl fetches and how politely: fixed when the crawl is created."""

    crawl_id: str
    seeds: list[str]
    depth: int = Field(default=2, ge=0)
    scope: Scope = "host"
    max_pages: int | None = Field(default=None, ge=1)
    # pages fetched from one host (0: no limit): a calendar trap or a site of endless URLs ends
    # at this many, the rest of its backlog dropped and counted as capped
    max_pages_per_host: int = Field(default=DEFAULT_MAX_PAGES_PER_HOST, ge=0)
    allow: list[str] = Field(default_factory=list)
    deny: list[str] = Field(default_factory=list)
    obey_robots: bool = True
    per_host_concurrency: int = Field(default=8, ge=1)
    per_host_delay: float = Field(default=0.0, ge=0)
    # adaptive politeness (shared/lua/frontier.lua): a host that answers slowly is paced, one
    # that times out loses slots, backs off and, after 3 strikes, is given up
    adaptive: bool = True
    retries: int = Field(default=2, ge=0)
    max_bytes_per_page: int | None = Field(default=None, ge=1)
    allow_private: bool = False
    # store the bodies of these content types only (a type, ``text/html``, or a family,
    # ``image/``); empty stores every body. Every URL gets its record either way.
    content_types: list[str] = Field(default_factory=list)
    # write each fetch as WARC request/response records under <crawl>/warc/ (workers/warc.py),
    # and then no body files beside the page records
    warc: bool = False
    # read the sitemaps of the seeds' origins (their robots.txt ``Sitemap:`` lines and
    # ``/sitemap.xml``, workers/sitemaps.py): their URLs are admitted at depth 0, as seeds
    sitemaps: bool = False
    max_sitemap_urls: int = Field(default=DEFAULT_MAX_SITEMAP_URLS, ge=1)
    # crawl again since this earlier, finished crawl in the same data directory: its pages are
    # asked for with its validators, and each page is counted new, changed, unchanged or gone
    # (workers/since.py)
    since: str | None = None

    def stores(self, content_type: str | None) -> bool:
        """True if a body of ``content_type`` is to be written to disk."""
        if not self.content_types:
            return True
        mime = media_type(content_type)
        return any(mime.startswith(t) if t.endswith("/") else mime == t for t in self.content_types)

    @field_validator("content_types")
    @classmethod
    def _known_content_types(cls, types: list[str]) -> list[str]:
        for name in types:
            if not _CONTENT_TYPE.fullmatch(name):
                raise ValueError(
                    f"unknown content type {name!r}: give a type such as text/html or a "
                    "family such as image/"
                )
        return types

    @field_validator("since")
    @classmethod
    def _since_names_a_crawl(cls, since: str | None) -> str | None:
        if since is None:
            return None
        try:
            return check_crawl_id(since)
        except InvalidCrawlId as exc:
            raise ValueError(f"--since: {exc}") from None

    @model_validator(mode="after")
    def _since_another_crawl(self) -> CrawlSpec:
        if self.since == self.crawl_id:
            raise ValueError(f"--since {self.since}: a crawl cannot be crawled again since itself")
        return self

    @field_validator("allow", "deny")
    @classmethod
    def _patterns_compile(cls, patterns: list[str]) -> list[str]:
        for pattern in patterns:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"invalid regular expression {pattern!r}: {exc}") from None
        return patterns


class CrawlCounters(BaseModel):
    """Counters of one crawl. ``pending`` is the number of jobs queued or running;
    ``reasons`` counts failed pages and error statuses by reason (``timeout``, ``http 404``...).
    """

    fetched: int = 0
    failed: int = 0
    # not fetched because robots.txt disallows them: no failure
    excluded: int = 0
    bytes: int = 0
    queued: int = 0
    pending: int = 0
    seen: int = 0
    # links not fetched because a page cap was reached: --max-pages (a link found again is
    # counted again) or --max-pages-per-host (the host's backlog entries dropped)
    capped: int = 0
    reasons: dict[str, int] = Field(default_factory=dict)
    # pages done (fetched or failed) per host, the busiest first, for the ``BUSIEST_HOSTS``
    # busiest at most (``page_done.lua``); exact while ``hosts_dropped`` is 0, else each count
    # may be too high by what the host took over when it took another's place
    busiest: dict[str, int] = Field(default_factory=dict)
    hosts_dropped: int = 0
    # with --sitemaps: sitemap files read (in whole or up to a cap), not read (a fetch that
    # failed, an error status, malformed, disallowed by robots.txt: ``reasons`` counts each
    # reason as ``sitemap: ...``), and the page URLs taken from them
    sitemaps: int = 0
    sitemaps_skipped: int = 0
    sitemap_urls: int = 0
    # a crawl --since an earlier one: its pages against the earlier crawl's (``Change``), and
    # the earlier crawl's pages it has no record of, counted once it is finalized
    # (``workers.unreached``)
    new: int = 0
    changed: int = 0
    unchanged: int = 0
    gone: int = 0
    unreached: int = 0

    @property
    def done(self) -> int:
        """Pages closed: fetched, failed or excluded by robots.txt."""
        return self.fetched + self.failed + self.excluded


class CrawlStatus(BaseModel):
    """A crawl as `crawlfleet status` shows it."""

    crawl_id: str
    state: CrawlState
    spec: CrawlSpec
    created_at: datetime
    finished_at: datetime | None = None
    reason: str | None = None  # why a failed crawl failed
    # where a done crawl's manifest is, as the workers that wrote it see their data directory
    manifest: str | None = None
    # when a page or robots.txt job of the crawl last closed (None: none has yet)
    progress_at: datetime | None = None
    counters: CrawlCounters

    def stalled_s(self, after_s: float, now: datetime | None = None) -> float | None:
        """How long a running crawl with work left has closed no job, if that is over
        ``after_s`` seconds; else None. A worker that hangs, a fleet with no worker, a host
        that never answers: each leaves a crawl running that does not move."""
        if self.state is not CrawlState.RUNNING or self.counters.pending == 0:
            return None
        idle = ((now or datetime.now(UTC)) - (self.progress_at or self.created_at)).total_seconds()
        return idle if idle > after_s else None
