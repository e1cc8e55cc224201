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
     │    └── MetricsPortError   the metrics port cannot be listened on (nor does it start)
     ├── UnreadableCrawl      a crawl's data in Redis or on disk is not what crawlfleet wrote:
     │                        exit code 1
     └── NotStored            a finished crawl holds no such page, or no body for it: exit 1

A page that fails to fetch or parse is not an exception here: it is recorded with a reason
(see ``workers.fetch.FetchResult.error``) and the worker goes on.
"""

from __future__ import annotations


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


class NotStored(CrawlfleetError):
    """A finished crawl did not store the page asked for, or kept no body of it: an answer
    (exit 1, like grep finding nothing), not a mistake of the user's."""
