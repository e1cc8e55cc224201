"""Fetching one URL with the process's shared httpx client, within time and size limits."""

from __future__ import annotations

import asyncio
import time
import zlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from urllib.parse import urljoin

import httpx

from crawlfleet.shared.failures import Failure, FailureKind, status_reason
from crawlfleet.shared.mime import media_type
from crawlfleet.shared.settings import Settings
from crawlfleet.shared.urls import canonicalize
from crawlfleet.workers.body_bytes import take_body_bytes
from crawlfleet.workers.guard import Policy
from crawlfleet.workers.transport import (
    REDIRECT_BODY_MAX,
    AiohttpTransport,
    KnownConnectError,
    peer_address,
    request_head,
)

# kept-alive connections a client keeps idle, per fetch turn: a worker's requests come in
# bursts per host, so the idle sets of hosts it is still crawling are worth keeping (fewer
# per turn opened many more connections; bench/README.md, "Connections"), while the 5 s
# expiry alone lets a crawl across many hosts pile up thousands
IDLE_PER_TURN = 4
_TRANSIENT_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
MAX_RETRY_AFTER_S = 300.0


def excluded(url: str, why: FailureKind) -> FetchResult:
    """A result for a URL not fetched by a rule of the site's (robots.txt), with the rule."""
    return FetchResult(
        url=url, final_url=None, status=None, content_type=None, body=b"", truncated=False,
        error=None, duration_ms=0, skipped=why,
    )  # fmt: skip


def failed(url: str, error: Failure, duration_ms: int = 0) -> FetchResult:
    """A result for a URL that was not fetched, with the failure."""
    return FetchResult(
        url=url,
        final_url=None,
        status=None,
        content_type=None,
        body=b"",
        truncated=False,
        error=error,
        duration_ms=duration_ms,
    )


def retry_after_s(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date), capped at 5 min."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return min(float(value), MAX_RETRY_AFTER_S)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, min((when - datetime.now(UTC)).total_seconds(), MAX_RETRY_AFTER_S))


@dataclass(frozen=True, slots=True)
class Exchange:
    """One request and its response as they went over the wire, for a WARC record pair: kept
    only when the caller asks (a crawl that writes WARC)."""

    started_at: datetime
    peer: str | None  # the server's IP address, if the transport could tell
    request_line: str  # "GET /a?b=1 HTTP/1.1"
    request_headers: list[tuple[str, str]]
    status_line: str  # "HTTP/1.1 200 OK"
    # the body as received: its content coding kept, its transfer coding (chunks) removed, cut
    # where the fetcher cut the body (FetchResult.truncated)
    payload: bytes


@dataclass(frozen=True, slots=True)
class FetchResult:
    """What came back for one URL: a response (any status) or a failure."""

    url: str
    final_url: str | None
    status: int | None
    content_type: str | None
    body: bytes
    truncated: bool
    error: Failure | None
    duration_ms: int
    retry_after: float | None = None
    # a redirect's target, canonical: the frontier fetches it as a URL of its own
    redirect: str | None = None
    # why the URL was deliberately not fetched (robots.txt): not a failure
    skipped: FailureKind | None = None
    # the response headers as received, in order (names and values as latin-1 text)
    headers: list[tuple[str, str]] = field(default_factory=list)
    exchange: Exchange | None = None

    def header(self, name: str) -> str | None:
        """The first value of the response header ``name`` (any case), if it came."""
        wanted = name.lower()
        return next((v for k, v in self.headers if k.lower() == wanted), None)

    @property
    def transient(self) -> bool:
        """True for failures worth trying again later: no answer, a timeout, 429 or 5xx."""
        if self.status is not None:
            return self.status in _TRANSIENT_STATUSES
        return self.error is not None and self.error.kind.transient

    @property
    def timed_out(self) -> bool:
        """True when no answer came in time (no connection, no response head, or not the
        whole body, within the deadlines; or no address for the host)."""
        return self.status is None and self.error is not None and self.error.kind.timed_out

    @property
    def reason(self) -> str:
        """What the crawl counts the page as: the failure's kind, ``http <status>`` for an
        error status, else nothing."""
        if self.error is not None:
            return self.error.kind.value
        if self.status is not None and self.status >= 400:
            return status_reason(self.status)
        return ""

    @property
    def ok(self) -> bool:
        """True when a response arrived, whatever its status."""
        return self.status is not None

    @property
    def is_html(self) -> bool:
        """True for a successful HTML response, the only kind whose links are followed."""
        mime = media_type(self.content_type)
        return (
            self.status is not None
            and 200 <= self.status < 300
            and mime
            in {
                "text/html",
                "application/xhtml+xml",
            }
        )


def make_client(settings: Settings, policy: Policy = Policy.OPEN) -> httpx.AsyncClient:
    """A client for one network policy: pooled keep-alive connections, redirects not
    followed (a redirect's target goes through the frontier: dedupe, scope, robots.txt and
    politeness apply to it), every connection opened only to an address ``policy`` allows.

    httpx's client over an aiohttp transport (``workers.transport``): httpx's API, redirects
    and timeouts, aiohttp's connection pool and C parser.
    A worker keeps one client per policy, so a kept-alive connection opened for an internal
    crawl is never reused by a public one.
    """
    # a parked request (workers/turns.py) keeps its connection: room for every one of them
    limits = httpx.Limits(
        max_connections=settings.concurrency + settings.max_parked,
        max_keepalive_connections=IDLE_PER_TURN * settings.concurrency,
    )
    transport = AiohttpTransport(
        policy, limits, httpx.create_ssl_context, dns_timeout_s=settings.connect_timeout
    )
    client = httpx.AsyncClient(
        transport=transport,
        follow_redirects=False,
        timeout=httpx.Timeout(
            connect=settings.connect_timeout,
            read=settings.read_timeout,
            write=settings.read_timeout,
            pool=settings.total_timeout,
        ),
        # only what _read_capped can decode within its memory bound
        headers={"User-Agent": settings.user_agent, "Accept-Encoding": "gzip, deflate"},
        trust_env=False,
    )
    client._cookies = _SetCookieJar()  # httpx's own jar is made in __init__, with no hook
    return client


class _SetCookieJar(httpx.Cookies):
    """httpx's cookie jar, which reads a response only when it sets a cookie: httpx hands the
    jar every response, wrapped with its request in urllib's types for the jar to parse, and
    almost no page of a crawl sets one."""

    def extract_cookies(self, response: httpx.Response) -> None:
        headers = response.headers
        if "set-cookie" in headers or "set-cookie2" in headers:  # the two urllib's jar reads
            super().extract_cookies(response)


def _failure(exc: Exception) -> Failure:
    """What a fetch that raised ``exc`` records: the kind of failure, and its detail."""
    detail = str(exc) or type(exc).__name__
    if isinstance(exc, KnownConnectError):
        return exc.failure
    for types, kind in _KINDS:
        if isinstance(exc, types):
            return Failure(kind, detail)
    return Failure(FailureKind.OTHER, f"{type(exc).__name__}: {detail}")


# the kinds of httpx's errors (as workers.transport raises them), the first that fits
_KINDS: tuple[tuple[type[Exception] | tuple[type[Exception], ...], FailureKind], ...] = (
    ((httpx.TimeoutException, TimeoutError), FailureKind.TIMEOUT),
    (httpx.ConnectError, FailureKind.CONNECT),
    (httpx.UnsupportedProtocol, FailureKind.UNSUPPORTED_PROTOCOL),
    (httpx.DecodingError, FailureKind.DECODING),
    (httpx.InvalidURL, FailureKind.INVALID_URL),
    (httpx.RemoteProtocolError, FailureKind.PROTOCOL),
    (httpx.NetworkError, FailureKind.NETWORK),
)


async def fetch(
    client: httpx.AsyncClient,
    url: str,
    settings: Settings,
    max_bytes: int | None = None,
    *,
    exchange: bool = False,
    headers: dict[str, str] | None = None,
) -> FetchResult:
    """GET ``url`` (with ``headers`` besides the client's: a recrawl's validators), reading at
    most ``max_bytes`` of body (default: the settings'); with ``exchange``, keep what went over
    the wire (``FetchResult.exchange``). Never raises for a bad page or server, only for
    cancellation."""
    started = time.perf_counter()
    started_at = datetime.now(UTC) if exchange else None
    try:
        async with asyncio.timeout(settings.total_timeout):
            async with client.stream("GET", url, headers=headers) as response:
                received = _header_pairs(response)
                if response.has_redirect_location:
                    payload, cut = await _redirect_body(response) if exchange else (b"", False)
                    kept = _exchange(response, started_at, payload)
                    return _redirected(url, response, _ms_since(started), received, kept, cut)
                limit = max_bytes or settings.max_page_bytes
                body, truncated, raw = await _read_capped(response, limit, keep_raw=exchange)
                return FetchResult(
                    url=url,
                    final_url=str(response.url),
                    status=response.status_code,
                    content_type=response.headers.get("content-type"),
                    body=body,
                    truncated=truncated,
                    error=None,
                    duration_ms=_ms_since(started),
                    retry_after=retry_after_s(response.headers.get("retry-after")),
                    headers=received,
                    exchange=_exchange(response, started_at, raw),
                )
    except TimeoutError:
        # the deadline holds however the server is slow: no answer, a head and then nothing,
        # a body trickled a byte at a time (each read in time, so no read timeout fires)
        deadline = Failure(FailureKind.TIMEOUT, f"{settings.total_timeout:g}s deadline")
        return failed(url, deadline, _ms_since(started))
    except (httpx.HTTPError, httpx.InvalidURL, OSError, ValueError) as exc:
        return failed(url, _failure(exc), _ms_since(started))


def _header_pairs(response: httpx.Response) -> list[tuple[str, str]]:
    return [(k.decode("latin-1"), v.decode("latin-1")) for k, v in response.headers.raw]


def _exchange(
    response: httpx.Response, started_at: datetime | None, payload: bytes | None
) -> Exchange | None:
    """The exchange of ``response`` (None unless it was asked for: ``started_at`` is set)."""
    if started_at is None or payload is None:
        return None
    line, sent = request_head(response)
    reason = response.reason_phrase
    return Exchange(
        started_at=started_at,
        peer=peer_address(response),
        request_line=line,
        request_headers=sent,
        status_line=f"{response.http_version} {response.status_code} {reason}".rstrip(),
        payload=payload,
    )


async def _redirect_body(response: httpx.Response) -> tuple[bytes, bool]:
    """A redirect's body as received (the transport stops at ``REDIRECT_BODY_MAX``) and whether
    it was cut: only a WARC record reads it."""
    chunks: list[bytes] = []
    try:
        async for raw in response.aiter_raw():
            chunks.append(raw)
    except httpx.HTTPError:  # the redirect stands; its record says the body is incomplete
        return b"".join(chunks), True
    body = b"".join(chunks)
    # a body of exactly the transport's limit is taken as cut: a redirect's is a line or two
    return body, len(body) >= REDIRECT_BODY_MAX


def _redirected(
    url: str,
    response: httpx.Response,
    duration_ms: int,
    headers: list[tuple[str, str]],
    exchange: Exchange | None,
    truncated: bool,
) -> FetchResult:
    """A redirect's result: its target, not its body (read for its WARC record only)."""
    location = response.headers["location"]
    target = canonicalize(urljoin(str(response.url), location.strip()))
    if target is None:
        unsupported = Failure(FailureKind.UNSUPPORTED_PROTOCOL, f"redirect to {location!r}")
        return failed(url, unsupported, duration_ms)
    return FetchResult(
        url=url,
        final_url=str(response.url),
        status=response.status_code,
        content_type=response.headers.get("content-type"),
        body=b"",
        truncated=truncated,
        error=None,
        duration_ms=duration_ms,
        retry_after=retry_after_s(response.headers.get("retry-after")),
        redirect=target,
        headers=headers,
        exchange=exchange,
    )


class _Decoder:
    """Content-Encoding decoding that never holds more than the room left in the body.

    httpx's own decoders inflate each network chunk whole, so one 64 KiB chunk of a gzip bomb
    becomes tens of megabytes at once; here ``max_length`` bounds every step.
    """

    def __init__(self, encoding: str) -> None:
        encoding = encoding.strip().lower()
        self._zlib: zlib._Decompress | None = None
        if encoding in ("gzip", "x-gzip"):
            self._zlib = zlib.decompressobj(zlib.MAX_WBITS | 16)
        elif encoding == "deflate":
            self._zlib = zlib.decompressobj()
        elif encoding not in ("", "identity"):
            raise httpx.DecodingError(f"unsupported content encoding {encoding!r}")

    def decode(self, data: bytes, room: int) -> bytes:
        """At most ``room`` bytes decoded from ``data`` (more is left in the decoder)."""
        if self._zlib is None:
            return data[:room]
        try:
            return self._zlib.decompress(self._zlib.unconsumed_tail + data, room)
        except zlib.error as exc:
            raise httpx.DecodingError(f"bad compressed body: {exc}") from exc

    @property
    def coded(self) -> bool:
        """True if the body has a content coding to undo."""
        return self._zlib is not None

    @property
    def pending(self) -> bool:
        """True if decoded bytes are still waiting past the room given."""
        return self._zlib is not None and bool(self._zlib.unconsumed_tail)


async def _read_capped(
    response: httpx.Response, limit: int, *, keep_raw: bool = False
) -> tuple[bytes, bool, bytes | None]:
    """Read at most ``limit`` bytes of the decoded body; True if more was left unread; with
    ``keep_raw``, the body as received too, up to where the reading stopped (the same bytes
    when it has no content coding)."""
    decoder = _Decoder(response.headers.get("content-encoding", ""))
    raws: list[bytes] | None = [] if keep_raw and decoder.coded else None
    chunks: list[bytes] = []
    size = 0
    truncated = False
    async for raw in response.aiter_raw():
        chunk = decoder.decode(raw, limit - size + 1)
        # held until the job ends: a worker with too many bodies in memory waits here
        await take_body_bytes(len(chunk) + (len(raw) if raws is not None else 0))
        if raws is not None:
            raws.append(raw)
        # one byte past the limit tells a body of exactly ``limit`` bytes from a longer one
        if size + len(chunk) > limit:
            chunks.append(chunk[: limit - size])
            truncated = True
            break
        chunks.append(chunk)
        size += len(chunk)
    else:
        truncated = decoder.pending and size >= limit
    body = b"".join(chunks)
    if not keep_raw:
        return body, truncated, None
    return body, truncated, body if raws is None else b"".join(raws)


def _ms_since(started: float) -> int:
    return int((time.perf_counter() - started) * 1000)
