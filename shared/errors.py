"""The exception tree of crawlfleet.

    CrawlfleetError
     ├── UserError            the user's input is wrong: one clear CLI line, exit code 2
     │    ├── InvalidURL
     │    ├── InvalidCrawlId
     │    ├── UnknownCrawl
     │    ├── CrawlNotRunning
     │    ├── CrawlNotEnded
     │    ├── SpecConflict
     │    └── NoEarlierCrawl
     ├── ServiceError         a service we depend on is unavailable: exit code 1 on the CLI,
     │    ├── RedisUnavailable   retried with backoff inside workers
     │    ├── LogFileError       the log file cannot be opened (a worker then does not start)
     │    ├── MetricsPortError   the metrics port cannot be listened on (nor does it start)
     │    └── StoreInUse         (scheduler.embedded) another run holds the embedded Redis
     ├── UnreadableCrawl      a crawl's data in Redis or on disk is not what crawlfleet wrote:
     │    │                   exit code 1
     │    └── EarlierMissing     a worker cannot read the crawl a crawl --since names: that
     │                           crawl fails with the message
     ├── NotStored            a finished crawl holds no such page, or no body for it: exit 1
     ├── LinkRefused          (an OSError too) a symbolic link where crawlfleet expects a
     │                        folder of its own: exit 1; a crawl that meets one fails (storage)
     ├── RecordedFailure      a failure a worker records with the page or sitemap, its kind
     │    │                   and detail in ``failure`` (``shared.failures``): never raised
     │    │                   out of a job
     │    ├── GuardError         (an OSError too, as aiohttp's connector wants) a connection
     │    │    │                 the network guard did not open: no address for the host
     │    │    └── BlockedAddress   the crawl's network policy forbids the address
     │    ├── DnsTimeout         (a TimeoutError too) a name lookup past its deadline
     │    ├── KnownConnectError  (workers.transport; an httpx.ConnectError too) a connection
     │    │                      that did not open for a known reason: the guard's, TLS
     │    └── BadSitemap         a sitemap that cannot be read
     └── JobDeferred          a worker's job goes back to the queue unclosed, to run again
          │                   ``defer_s`` later: never leaves the worker
          ├── HandBack           not the page's fault (a full disk): the try is not counted
          │    └── NoTurn           no fetch turn came free in time (logged at debug level)
          └── LostTry            the job could not end (its deadline passed, Redis failed):
                                 the try counts, so a job that hangs every time is given up

A page that fails to fetch is no exception past its job: it is recorded with a failure (its
kind and detail, ``shared.failures``) and the worker goes on.
"""

from __future__ import annotations

from crawlfleet.shared.failures import Failure, FailureKind


class CrawlfleetError(Exception):
    """Base of every error crawlfleet raises on purpose."""


class UserError(CrawlfleetError):
    """The user's input is wrong; the message says what and how to fix it."""


class InvalidURL(UserError):
    """A seed URL is not an absolute http(s) URL."""


class InvalidCrawlId(UserError):
    """A crawl id has characters that cannot name a folder."""


class UnknownCrawl(UserError):
    """No crawl with this id exists in Redis."""


class CrawlNotRunning(UserError):
    """The crawl exists but is done or cancelled, so it cannot take more seeds."""


class CrawlNotEnded(UserError):
    """The crawl is running or paused, so it cannot be forgotten."""


class SpecConflict(UserError):
    """The crawl id names a live crawl whose options are not the ones given."""


class NoEarlierCrawl(UserError):
    """The crawl ``--since`` names is not a finished (done) crawl in the data directory."""


class ServiceError(CrawlfleetError):
    """A service crawlfleet depends on cannot be used."""


class RedisUnavailable(ServiceError):
    """Redis cannot be reached or refused the connection."""


class LogFileError(ServiceError):
    """The log file named in the settings cannot be opened for appending."""


class MetricsPortError(ServiceError):
    """The address and port a worker should serve its metrics on cannot be listened on."""


class UnreadableCrawl(CrawlfleetError):
    """A crawl's spec or state in Redis, or its manifest, cannot be read (written by another
    version, or changed by hand)."""


class EarlierMissing(UnreadableCrawl):
    """The earlier crawl of a crawl --since one cannot be read from this worker's data
    directory: the crawl fails with this reason."""


class NotStored(CrawlfleetError):
    """A finished crawl did not store the page asked for, or kept no body of it: an answer
    (exit 1, like grep finding nothing), not a mistake of the user's."""


class LinkRefused(CrawlfleetError, OSError):
    """A symbolic link where crawlfleet expects a folder of its own (``shared.nofollow``);
    an OSError (ELOOP) to what writes files, so it fails a crawl as any storage error does."""

    def __str__(self) -> str:
        return str(self.strerror)


class RecordedFailure(CrawlfleetError):
    """A failure recorded with what it happened to: ``failure`` is its kind and detail."""

    def __init__(self, kind: FailureKind, detail: str = "") -> None:
        self.failure = Failure(kind, detail)
        super().__init__(str(self.failure))


class GuardError(RecordedFailure, OSError):
    """A connection the network guard did not open (``workers.guard``): no address for the
    host, or a lookup past its deadline.

    An OSError, so aiohttp's connector wraps it in a ClientConnectorError (the transport hands
    its failure on to the fetcher) and tries the host's next address."""


class BlockedAddress(GuardError):
    """The address (or every address of the host) is forbidden by the crawl's policy."""

    def __init__(self, detail: str) -> None:
        super().__init__(FailureKind.BLOCKED, detail)


class DnsTimeout(RecordedFailure, TimeoutError):
    """A name lookup got no answer within its deadline (``workers.dns``)."""

    def __init__(self, detail: str) -> None:
        super().__init__(FailureKind.DNS_TIMEOUT, detail)


class BadSitemap(RecordedFailure):
    """A sitemap that cannot be read: its kind is counted per crawl, its detail logged."""


class JobDeferred(CrawlfleetError):
    """A job that goes back to the queue without being closed, to run ``defer_s`` later."""

    routine = False  # logged at debug level only

    def __init__(self, reason: str, defer_s: float) -> None:
        super().__init__(reason)
        self.defer_s = defer_s


class HandBack(JobDeferred):
    """The job cannot be done now for a reason that is not its host's (a full disk, no fetch
    turn free): it goes back to the queue keeping its host slot, the try not counted."""


class NoTurn(HandBack):
    """No fetch turn came free in ``FETCH_TURN_WAIT_S`` (``workers.turns``): the job goes back
    for a moment, not the page's fault."""

    routine = True


class LostTry(JobDeferred):
    """A job that could not end (its deadline passed, Redis failed it): the try counts against
    the job (unlike arq's ``Retry``)."""
