"""An httpx transport on aiohttp: httpx's client (redirects, timeouts, headers, cookies) over
aiohttp's connection pool and C HTTP parser, at a fraction of httpcore's CPU per request.

Every connection is opened through the network guard (``GuardedResolver`` and
``guarded_socket``), its name looked up in threads of the transport's own with a deadline
(``workers.dns``); bodies are handed over raw (never decompressed here) and streamed in chunks
of at most ``CHUNK`` bytes; aiohttp's errors reach the caller as httpx's.

The package httpx-aiohttp (0.2.0) does the same in outline, but maps a refused connection and a
server disconnect to httpx.ConnectTimeout, lets aiohttp's ClientResponseError (a malformed
response) through unmapped, and requotes the URL: hence this small transport of our own.
"""

from __future__ import annotations

import ipaddress
import ssl
from collections.abc import AsyncIterator, Callable

import aiohttp
import httpx
from aiohttp.client_proto import ResponseHandler
from aiohttp.client_reqrep import ConnectionKey
from yarl import URL

from crawlfleet.shared.errors import GuardError, RecordedFailure
from crawlfleet.shared.failures import FailureKind
from crawlfleet.workers.dns import Lookups
from crawlfleet.workers.guard import GuardedResolver, Policy, guarded_socket

CHUNK = 64 * 1024
# httpx reads a redirect's body whole before it follows the redirect, outside the fetcher's cap:
# a 3xx with an endless body would fill the memory. Nobody reads a redirect's body, so it is
# cut here, and its connection closed rather than reused.
_REDIRECTS = frozenset((301, 302, 303, 307, 308))
REDIRECT_BODY_MAX = 64 * 1024

# what a response's extensions carry besides httpx's own, for WARC records (see request_head
# and peer_address): the request as aiohttp sent it, and the address it was sent to
_SENT = "crawlfleet.sent"
_PEER = "crawlfleet.peer"


class KnownConnectError(RecordedFailure, httpx.ConnectError):
    """A connection that did not open for a reason of a known kind (the network guard's, a
    TLS failure): ``failure`` is what the fetcher records. An httpx error, as httpx's client
    wants of its transport."""


class _Connector(aiohttp.TCPConnector):
    """aiohttp's pool, with at most ``max_idle`` kept-alive connections: past that the one idle
    longest is closed (httpx's ``max_keepalive_connections``).

    aiohttp's ``limit`` counts the connections in use only, and keeps the idle ones per host
    until they expire: a worker with 128 requests in flight across 8 hosts held 340 sockets
    after 2,320 pages, one idle set per host, and a crawl across many hosts could run out of
    file descriptors.
    """

    def __init__(self, *, max_idle: int | None, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self._max_idle = max_idle
        # idle connections at most: counted up on every release, recounted (and trimmed) only
        # when over the cap, so that a release does not walk the pool
        self._idle_bound = 0

    def _release(
        self, key: ConnectionKey, protocol: ResponseHandler, *, should_close: bool = False
    ) -> None:
        super()._release(key, protocol, should_close=should_close)
        self._idle_bound += 1
        if self._max_idle is not None and self._idle_bound > self._max_idle:
            self._trim_idle()

    def _trim_idle(self) -> None:
        assert self._max_idle is not None
        pool = self._conns
        idle = sum(len(conns) for conns in pool.values())
        while idle > self._max_idle:
            # each host's idle connections are in release order: the oldest is on the left
            key = min((k for k in pool if pool[k]), key=lambda k: pool[k][0][1])
            conns = pool[key]
            protocol, _ = conns.popleft()
            if not conns:
                del pool[key]
            protocol.close()
            idle -= 1
        self._idle_bound = idle


class AiohttpTransport(httpx.AsyncBaseTransport):
    """One aiohttp session (and connection pool) for one network policy, names looked up
    within ``dns_timeout_s``, https verified with the context ``tls_context`` makes.

    The session is opened on the first request, inside the running event loop; the TLS
    context is made on the first https request (loading the CA certificates costs as much CPU
    as a hundred small pages, for nothing in a crawl of http sites)."""

    def __init__(
        self, policy: Policy, limits: httpx.Limits, tls_context: Callable[[], ssl.SSLContext],
        dns_timeout_s: float,
    ) -> None:  # fmt: skip
        self._policy = policy
        self._limits = limits
        self._tls_context = tls_context
        self._tls: ssl.SSLContext | None = None
        self._dns_timeout_s = dns_timeout_s
        self._session: aiohttp.ClientSession | None = None
        self._resolver: GuardedResolver | None = None

    def _open(self) -> aiohttp.ClientSession:
        self._resolver = GuardedResolver(self._policy, Lookups(self._dns_timeout_s))
        connector = _Connector(
            max_idle=self._limits.max_keepalive_connections,  # None: no cap
            limit=self._limits.max_connections or 0,
            limit_per_host=0,
            keepalive_timeout=self._limits.keepalive_expiry,
            resolver=self._resolver,
            socket_factory=guarded_socket(self._policy),
        )
        return aiohttp.ClientSession(
            connector=connector,
            auto_decompress=False,  # the fetcher decodes, bounded (fetch._Decoder)
            trust_env=False,  # no proxies or netrc from the environment
            cookie_jar=aiohttp.DummyCookieJar(),  # httpx's client keeps the cookies
            raise_for_status=False,
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        scheme = request.url.scheme
        if scheme not in ("http", "https"):
            # httpcore's words, which the fetcher records as its reason
            raise httpx.UnsupportedProtocol(
                f"Request URL has an unsupported protocol '{scheme}://'."
            )
        if self._session is None:
            self._session = self._open()
        tls: ssl.SSLContext | bool = True  # True: no TLS for an http URL
        if scheme == "https":
            if self._tls is None:
                self._tls = self._tls_context()
            tls = self._tls
        timeout = request.extensions.get("timeout", {})
        body = await request.aread()
        try:
            response = await self._session.request(
                request.method,
                URL(str(request.url), encoded=True),  # httpx's URL, already quoted: as it is
                headers=request.headers.multi_items(),
                data=body or None,
                allow_redirects=False,  # httpx follows them, a request (and a check) per hop
                auto_decompress=False,
                ssl=tls,
                timeout=aiohttp.ClientTimeout(
                    total=None,
                    connect=timeout.get("pool"),  # waiting for a pooled connection and opening it
                    sock_connect=timeout.get("connect"),
                    sock_read=timeout.get("read"),
                ),
            )
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise _httpx_error(exc, connecting=True) from exc
        version = response.version
        extensions: dict[str, object] = {
            "http_version": f"HTTP/{version.major}.{version.minor}".encode() if version else b"",
            _SENT: response.request_info,
            _PEER: _peer(response),
        }
        if response.reason:
            extensions["reason_phrase"] = response.reason.encode("latin-1", "replace")
        return httpx.Response(
            status_code=response.status,
            headers=response.raw_headers,
            stream=_Body(response, REDIRECT_BODY_MAX if response.status in _REDIRECTS else None),
            request=request,
            extensions=extensions,
        )

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
        if self._resolver is not None:
            await self._resolver.close()
            self._resolver = None


def _peer(response: aiohttp.ClientResponse) -> str | None:
    """The IP address the response came from, while its connection is held; None if it was
    given back already (a response whose body came with its head, as most small pages do:
    ``peer_address`` then reads the URL's host, only for the WARC record that asks)."""
    connection = response.connection
    transport = connection.transport if connection is not None else None
    if transport is not None:
        peer = transport.get_extra_info("peername")
        if isinstance(peer, tuple) and peer:
            return str(peer[0])
    return None


def request_head(response: httpx.Response) -> tuple[str, list[tuple[str, str]]]:
    """The request line and headers of the request that got ``response``, as aiohttp sent
    them (with the headers it adds, Host among them); httpx's own for another transport's."""
    info = response.extensions.get(_SENT)
    if isinstance(info, aiohttp.RequestInfo):
        method, target, headers = info.method, info.url.raw_path_qs, list(info.headers.items())
    else:
        request = response.request
        method, target = request.method, request.url.raw_path.decode("ascii")
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in request.headers.raw]
    # aiohttp's client sessions speak HTTP/1.1 (its default, which we keep)
    return f"{method} {target} HTTP/1.1", headers


def peer_address(response: httpx.Response) -> str | None:
    """The IP address ``response`` came from, if the transport could tell: the connection's
    peer, else (the connection given back before it was asked) the URL's host, if it is an
    address."""
    extensions = response.extensions
    if _PEER not in extensions:  # another transport's response
        return None
    peer = extensions[_PEER]
    if isinstance(peer, str):
        return peer
    try:
        return str(ipaddress.ip_address(response.url.host.strip("[]")))
    except ValueError:
        return None


class _Body(httpx.AsyncByteStream):
    """The raw body, in chunks of at most ``CHUNK`` bytes as they arrive, ending after ``limit``
    bytes if given; closing it releases the connection (back to the pool if the body was read
    to its end, else closed)."""

    def __init__(self, response: aiohttp.ClientResponse, limit: int | None = None) -> None:
        self._response = response
        self._limit = limit

    async def __aiter__(self) -> AsyncIterator[bytes]:
        size = 0
        try:
            async for chunk in self._response.content.iter_chunked(CHUNK):
                if self._limit is not None and size + len(chunk) > self._limit:
                    yield chunk[: self._limit - size]
                    self._response.close()  # the rest is never read: drop the connection
                    return
                size += len(chunk)
                yield chunk
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise _httpx_error(exc, connecting=False) from exc

    async def aclose(self) -> None:
        self._response.release()


def _httpx_error(exc: Exception, connecting: bool) -> Exception:
    """The httpx exception for an aiohttp one (``KnownConnectError`` where the kind of failure
    is known here), with the words the fetcher records."""
    detail = str(exc) or type(exc).__name__
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return httpx.ConnectTimeout(detail)
    if isinstance(exc, aiohttp.ServerTimeoutError):  # sock_read: no byte for read_timeout
        return httpx.ReadTimeout(detail)
    if isinstance(exc, TimeoutError):
        return (httpx.ConnectTimeout if connecting else httpx.ReadTimeout)(detail)
    if isinstance(exc, aiohttp.ClientConnectorError):
        if isinstance(exc.os_error, GuardError):  # blocked, or no address
            return KnownConnectError(exc.os_error.failure.kind, exc.os_error.failure.detail)
        if isinstance(exc, aiohttp.ClientSSLError) or isinstance(exc.os_error, ssl.SSLError):
            return KnownConnectError(FailureKind.TLS, detail)
        return httpx.ConnectError(detail)
    if isinstance(exc, aiohttp.ServerDisconnectedError | aiohttp.ClientPayloadError):
        return httpx.RemoteProtocolError(detail)  # as h11 says it: an incomplete message
    if isinstance(exc, aiohttp.ClientResponseError):  # a malformed status line or header
        return httpx.RemoteProtocolError(exc.message or detail)
    if isinstance(exc, aiohttp.NonHttpUrlClientError):
        return httpx.UnsupportedProtocol(detail)
    if isinstance(exc, aiohttp.InvalidURL):
        return httpx.InvalidURL(detail)
    if isinstance(exc, aiohttp.ClientConnectionError):  # reset, broken pipe, ... (as httpcore)
        return httpx.ReadError(detail)
    return httpx.TransportError(detail)
