"""One settings object for every process, read from the environment and overridden by CLI flags.

Nothing else in crawlfleet reads ``os.environ``: entry points build a :class:`Settings` and pass
it down.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from redis.connection import parse_url

LogFormat = Literal["auto", "json", "console"]
# how workers extract links: beautifulsoup4 on lxml, or lxml alone (same links, less CPU)
Extractor = Literal["bs4", "fast"]

DEFAULT_USER_AGENT = "crawlfleet/0.1 (+https://github.com/crawlfleet/crawlfleet)"


def _default_worker_id() -> str:
    # in compose the hostname is the container id, so this tells replicas apart in the logs
    return f"{socket.gethostname()}-{os.getpid()}"


# Settings.seed_resolve_s's default (workers/guard.py also takes it): a name server just started
# (a compose network's) answers within a second or two
SEED_RESOLVE_S = 5.0

# longest a started page job waits for one of its worker's fetch turns (workers/turns.py) before
# it hands itself back: every turn may be held by a fetch that hangs until its total timeout
FETCH_TURN_WAIT_S = 5.0


class Settings(BaseSettings):
    """Process settings: where Redis and the data are, how hard to fetch, how to log.

    Environment variables are ``CRAWLFLEET_<FIELD>`` (``REDIS_URL`` also works for the Redis URL).
    """

    model_config = SettingsConfigDict(env_prefix="CRAWLFLEET_", extra="ignore")

    redis_url: str = Field(
        default="redis://localhost:6379/0",
        validation_alias=AliasChoices("redis_url", "REDIS_URL", "CRAWLFLEET_REDIS_URL"),
    )
    data_dir: Path = Path("crawl-data")
    # requests in flight per worker: keeping a worker's CPU busy through each page's network
    # wait takes its page rate times the wait, and about twice that, as responses come back
    # in bursts (bench/README.md has the rates and the runs at 32, 128 and 256)
    concurrency: int = Field(default=128, ge=1, le=1024)
    # a request unanswered this long after it took its fetch turn gives the turn back and waits
    # on (parked) without holding any of the worker's capacity (workers/turns.py): most pages
    # come within it; hosts that take seconds or never answer hold a turn this long at most
    park_after_s: float = Field(default=0.5, gt=0)
    # requests parked at once per worker: each costs a socket and a coroutine, so thousands
    # fit; it is what lets 50 hosts that never answer (8 slots each) wait beside the others
    max_parked: int = Field(default=1024, ge=0)
    queue_name: str = "crawlfleet:queue"
    log_format: LogFormat = "auto"
    log_level: str = "info"
    # log lines go here, appended, instead of stderr; stderr then only says when they cannot
    log_file: Path | None = None
    worker_id: str = Field(default_factory=_default_worker_id)
    # a worker serves Prometheus metrics on this port (GET /metrics); 0 serves none
    metrics_port: int = Field(default=0, ge=0, le=65535)
    # every interface, as exporters bind: a container's port is published through its
    # interface, not its loopback; 127.0.0.1 keeps the metrics to this machine
    metrics_host: str = "0.0.0.0"

    user_agent: str = DEFAULT_USER_AGENT
    connect_timeout: float = Field(default=10.0, gt=0)
    read_timeout: float = Field(default=20.0, gt=0)
    total_timeout: float = Field(default=60.0, gt=0)
    # a seed's name that does not resolve is asked again (every 0.5 s) this long before its
    # crawl runs public for now, to be asked again for its next job (0: asked once)
    seed_resolve_s: float = Field(default=SEED_RESOLVE_S, ge=0)
    max_page_bytes: int = Field(default=10 * 1024 * 1024, gt=0)
    # response bodies a worker holds at once, all its jobs together (workers/body_bytes.py):
    # its memory for pages is this plus one page, whatever the concurrency
    max_body_bytes_in_flight: int = Field(default=256 * 1024 * 1024, ge=1024 * 1024)
    # redirects followed from one URL: each target is a URL of its own in the frontier
    max_redirects: int = Field(default=10, ge=0)
    # links followed from one page, in document order: bounds the work a hostile page can ask
    max_links_per_page: int = Field(default=5000, ge=1)
    # link tags read from one page (the parse budget): past them the page is read for nothing
    # more, so a page of a million links costs a tokenizer pass, not a million soup tags. Real
    # index pages hold a few ten thousand (the Python docs' genindex-all: 17,000)
    max_link_tags_per_page: int = Field(default=50_000, ge=1)
    # "fast" parses with lxml alone: the same links as bs4 (tests/test_extract.py compares them
    # on whole sites) for less CPU; bs4 stays the default until "fast" has run on more of the
    # web than our benchmark sites (bench/README.md has the figures of both)
    extractor: Extractor = "bs4"
    # a worker starts a new WARC file once its current one has reached this size (Heritrix's
    # default); a record is never split across files
    warc_max_bytes: int = Field(default=1_000_000_000, ge=1)

    # a page (or robots.txt) whose job was lost this many times (its worker died, it hung past
    # the deadline, it raised) is recorded as failed; deliberate hand-backs (a paused crawl, a
    # full disk) do not count
    job_tries: int = Field(default=3, ge=1, le=14)  # claim.lua counts up to 15
    # on SIGTERM a worker takes no new job and gives in-flight ones this long to finish;
    # jobs still running then are handed back to the queue
    shutdown_grace_s: int = Field(default=20, ge=0)
    # how long the CLI waits for a lost Redis before it gives up with an error
    # (workers never give up: they retry with backoff for as long as they run)
    redis_wait_s: float = Field(default=60.0, gt=0)
    # a running crawl that has closed no page for this long is shown as stalled by `status`
    # and `run`: longer than a page's lost tries take (job_tries x the job deadline)
    stall_after_s: float = Field(default=300.0, gt=0)
    # how often `seed --wait` and `run` print a progress line when stderr is no terminal (a log
    # file, CI); a terminal gets the live panel instead
    progress_every_s: float = Field(default=5.0, gt=0)
    # how often a job of a paused crawl that was already taken is looked at again, and a page
    # that could not be stored for a full disk
    pause_poll_s: float = Field(default=5.0, gt=0)
    # how long a crawl whose pages cannot be stored for a full disk (or quota) waits for room
    # before it fails (any other storage failure fails it at once: workers/disk.py)
    storage_wait_s: float = Field(default=300.0, ge=0)

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str) -> str:
        # a URL that cannot name a server fails at start: retried, it would be waited on forever
        try:
            parse_url(value)  # type: ignore[no-untyped-call]
        except ValueError as exc:
            raise ValueError(f"not a Redis URL: {exc}") from None
        return value

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        level = value.lower()
        if level not in {"debug", "info", "warning", "error"}:
            raise ValueError("log level must be debug, info, warning or error")
        return level

    @property
    def robots_agent(self) -> str:
        """The product token of the user agent, which robots.txt groups are matched against."""
        return self.user_agent.split("/", 1)[0].split()[0] if self.user_agent.strip() else "*"

    @property
    def jobs_held(self) -> int:
        """Page jobs a worker holds at once, parked ones aside: twice its fetch turns
        (``workers/turns.py``)."""
        return 2 * self.concurrency

    @property
    def max_jobs(self) -> int:
        """Page jobs a worker holds at once, parked ones included (arq's ``max_jobs``)."""
        return self.jobs_held + self.max_parked

    @property
    def page_deadline_s(self) -> float:
        """The longest one page job may take: waiting for a fetch turn, a fetch at its total
        timeout, storing, Redis."""
        return FETCH_TURN_WAIT_S + self.total_timeout + 5.0

    @property
    def job_timeout_s(self) -> float:
        """arq's job timeout, a little past our own deadline so that ours fires first.

        arq keeps a job's in-progress mark for this + 10 s, so a job whose worker was killed
        runs again on another worker at most ``total_timeout + 22`` seconds later.
        """
        return self.page_deadline_s + 2.0

    @property
    def slot_lease_ms(self) -> int:
        """How long past its job's start time a host slot is kept before, if the job has
        vanished without closing, it is taken to be gone (``shared/lua/frontier.lua``): past
        arq's in-progress mark; a job that still exists keeps its slot however long it takes."""
        return int((self.job_timeout_s + 10.0) * 1000)

    @property
    def poll_delay_s(self) -> float:
        """How long a worker sleeps between two looks at the queue.

        arq sleeps this long after each batch of jobs it starts, even when more are queued, so
        at arq's default (0.5 s) a worker whose pages are quick idles most of the time. A worker
        with more slots finishes jobs more often, so it looks more often: every 0.64 / concurrency
        seconds, never more than 100 ms, never less than 10 ms (an idle worker then costs Redis 100
        cheap reads a second).
        """
        return min(0.1, max(0.01, 0.64 / self.concurrency))

    def to_env(self) -> dict[str, str]:
        """These settings as environment variables, to hand them to a child process."""
        env: dict[str, str] = {}
        for name, value in self.model_dump().items():
            if value is not None:
                env[f"CRAWLFLEET_{name.upper()}"] = str(value)
        return env


def setting_error(exc: ValidationError) -> str:
    """The first invalid setting of ``exc``, in one line (the value is left out: it may hold
    a password)."""
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"])
    return f"invalid setting {where}: {first['msg'].removeprefix('Value error, ')}"
