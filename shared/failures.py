"""Why a URL was not fetched, a response not read, or a crawl not finished: one kind per reason.

A failure is its kind and a detail: ``Failure(FailureKind.BLOCKED, "10.0.0.1 is private")``,
written ``blocked address: 10.0.0.1 is private`` (a record's ``error``, a log line's
``reason``). The kind alone is what the crawl counts (``cf:C:reasons``, shown by ``status``,
the summary and the metrics): ``blocked address``, ``timeout``, ``http 404`` (an error status
counts with its number), ``sitemap: malformed XML`` (a sitemap's, behind ``sitemap: ``). What a
worker does about a failure (try again later, strike the host) is decided by its kind here,
never by reading its text.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

# what the reasons of a sitemap that was not read, or not in whole, are counted behind
SITEMAP = "sitemap"


class FailureKind(StrEnum):
    """The kinds of failure, as counted and written."""

    # a fetch that got no response
    TIMEOUT = "timeout"  # no answer within the deadlines
    DNS_TIMEOUT = "dns timeout"  # the host's name had no answer within the connect timeout
    CONNECT = "connect"  # no connection (refused, unreachable)
    PROTOCOL = "protocol"  # the connection closed mid-response, or the response was malformed
    DNS = "dns"  # the host's name does not resolve
    TLS = "tls"  # the TLS handshake or the certificate failed
    BLOCKED = "blocked address"  # the crawl's network policy forbids the address
    UNSUPPORTED_PROTOCOL = "unsupported protocol"  # not http(s), a redirect to one included
    INVALID_URL = "invalid url"
    DECODING = "decoding"  # a content coding that cannot be undone
    NETWORK = "network"  # the connection broke otherwise (reset, broken pipe)
    OTHER = "other"  # what no kind above says: the detail names the error
    # a response with an error status (counted with its number: ``http 404``)
    HTTP_STATUS = "http"
    # a URL refused without a request
    ROBOTS_UNREACHABLE = "robots.txt unreachable"
    ROBOTS_DISALLOWED = "robots.txt: disallowed"  # no failure: the page is excluded
    HOST_UNRESPONSIVE = "host unresponsive"  # the crawl gave the host up (frontier.lua)
    GAVE_UP = "gave up"  # the job's tries were lost (its worker stopped, hung or failed)
    TOO_MANY_REDIRECTS = "too many redirects"
    # a sitemap that was not read, or not in whole
    REDIRECT_OUT_OF_SCOPE = "redirect out of scope"
    BAD_GZIP = "bad gzip data"
    MALFORMED_XML = "malformed XML"
    DTD = "a DTD"
    NOT_A_SITEMAP = "not a sitemap"
    UNREADABLE = "unreadable"  # the parser failed: the detail names its error
    # the protocol's limits (workers.sitemaps.SITEMAP_MAX_URLS and SITEMAP_MAX_BYTES)
    OVER_URL_LIMIT = "over 50000 URLs"
    OVER_BYTE_LIMIT = "over 52428800 bytes"
    NESTED_TOO_DEEP = "index nested too deep"
    # counted by the Lua scripts themselves (sitemap_done.lua, frontier.lua)
    SITEMAP_URL_CAP = "crawl cap of sitemap URLs reached"
    SITEMAP_FILE_CAP = "crawl cap of sitemaps reached"
    # a crawl that fails as a whole (its ``reason``)
    STORAGE = "storage"  # its folder takes no file

    @property
    def transient(self) -> bool:
        """True for a failure worth trying again later: no answer, no connection, a
        connection cut mid-response."""
        return self in _TRANSIENT

    @property
    def timed_out(self) -> bool:
        """True when no answer came in time (a strike against the host: frontier.lua)."""
        return self in _TIMED_OUT


_TIMED_OUT = frozenset({FailureKind.TIMEOUT, FailureKind.DNS_TIMEOUT})
_TRANSIENT = _TIMED_OUT | {FailureKind.CONNECT, FailureKind.PROTOCOL}


@dataclass(frozen=True, slots=True)
class Failure:
    """One failure: its kind and what happened (free text, for people)."""

    kind: FailureKind
    detail: str = ""

    def __str__(self) -> str:
        return f"{self.kind}: {self.detail}" if self.detail else self.kind.value


def status_reason(status: int) -> str:
    """What an error status is counted as: ``http 404``."""
    return f"{FailureKind.HTTP_STATUS} {status}"


def sitemap_reason(reason: str) -> str:
    """What a sitemap's failure is counted as: ``sitemap: malformed XML``."""
    return f"{SITEMAP}: {reason}"
