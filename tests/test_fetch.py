"""Fetching with httpx against real servers on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import subprocess
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from crawlfleet.shared.failures import FailureKind
from crawlfleet.shared.settings import Settings
from crawlfleet.workers.fetch import IDLE_PER_TURN, fetch, make_client
from crawlfleet.workers.guard import Policy
from crawlfleet.workers.transport import AiohttpTransport
from tests.support.testweb import Page, Site, TestWeb


@pytest.fixture
async def http(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with make_client(settings) as c:
        yield c


async def test_ok_page(web: TestWeb, http: httpx.AsyncClient, settings: Settings) -> None:
    """A 200 page comes back with status, content type and body."""
    url = web.url(0, "/a.html")
    web.site = Site({url: Page(hrefs=["x"])})
    r = await fetch(http, url, settings)
    assert r.ok and r.status == 200 and r.is_html
    assert b'href="x"' in r.body and r.error is None and not r.truncated


async def test_error_status_is_a_response(
    web: TestWeb, http: httpx.AsyncClient, settings: Settings
) -> None:
    """A 404 is a response (recorded), not a failure, and not HTML to follow."""
    r = await fetch(http, web.url(0, "/missing"), settings)
    assert r.ok and r.status == 404 and not r.is_html


async def test_redirect_is_not_followed_but_reported(
    web: TestWeb, http: httpx.AsyncClient, settings: Settings
) -> None:
    """A redirect is a response of its own: its target, canonical, is what the frontier
    fetches next (its body is never read)."""
    target = web.url(1, "/t.html")
    web.site = Site({web.url(0, "/r"): Page(status=301, redirect_to=target), target: Page()})
    r = await fetch(http, web.url(0, "/r"), settings)
    assert r.status == 301 and r.redirect == target and r.body == b""
    assert web.requested() == [web.url(0, "/r")]


async def test_a_3xx_without_location_is_a_response(
    web: TestWeb, http: httpx.AsyncClient, settings: Settings
) -> None:
    """A 3xx with no Location (a 304, a 300) is a response like any other, not a redirect:
    recorded with its status and body, never a failed job."""
    web.site = Site({web.url(0, "/choices"): Page(status=300, body=b"pick one")})
    r = await fetch(http, web.url(0, "/choices"), settings)
    assert (r.status, r.redirect, r.body, r.error) == (300, None, b"pick one", None)


async def test_validators_are_sent_and_a_304_comes_back_without_body(
    web: TestWeb, http: httpx.AsyncClient, settings: Settings
) -> None:
    """The headers given to fetch go with the request: an ETag sent back as If-None-Match
    gets a 304 with no body; a stale one gets the page."""
    url = web.url(0, "/v")
    web.site = Site({url: Page(etag='"v1"', body=b"versioned")})
    r = await fetch(http, url, settings, headers={"If-None-Match": '"v1"'})
    assert (r.status, r.body, r.header("etag")) == (304, b"", '"v1"')
    stale = await fetch(http, url, settings, headers={"If-None-Match": '"v0"'})
    assert (stale.status, stale.body) == (200, b"versioned")
    assert web.conditionals == [(url, '"v1"', None), (url, '"v0"', None)]


async def test_relative_redirect_is_resolved(
    web: TestWeb, http: httpx.AsyncClient, settings: Settings
) -> None:
    """A relative Location is resolved against the request URL and made canonical."""
    web.site = Site({web.url(0, "/a/b"): Page(status=302, redirect_to="../C/./d#frag")})
    r = await fetch(http, web.url(0, "/a/b"), settings)
    assert r.status == 302 and r.redirect == web.url(0, "/C/d")


async def test_body_is_capped(web: TestWeb, settings: Settings) -> None:
    """A body over max_page_bytes is cut there and marked truncated."""
    url = web.url(0, "/big")
    web.site = Site({url: Page(content_type="text/plain", body=b"x" * 5000)})
    capped = settings.model_copy(update={"max_page_bytes": 1000})
    async with make_client(capped) as c:
        r = await fetch(c, url, capped)
    assert r.truncated and len(r.body) == 1000
    async with make_client(settings) as c:
        whole = await fetch(c, url, settings)
    assert not whole.truncated and len(whole.body) == 5000


async def test_refused_connection_is_recorded(http: httpx.AsyncClient, settings: Settings) -> None:
    """A refused connection is a failure with a connect reason, not an exception."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    r = await fetch(http, f"http://127.0.0.1:{port}/", settings)
    assert not r.ok and r.error is not None and r.error.kind is FailureKind.CONNECT


async def test_slow_server_times_out(settings: Settings) -> None:
    """A server that never answers ends as a timeout within the total timeout."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except TimeoutError:
                continue

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    quick = settings.model_copy(update={"read_timeout": 0.5, "total_timeout": 1.0})
    try:
        async with make_client(quick) as c:
            r = await fetch(c, f"http://127.0.0.1:{listener.getsockname()[1]}/", quick)
    finally:
        stop.set()
        t.join()
        for s in held:
            s.close()
        listener.close()
    assert not r.ok and r.error is not None and r.error.kind is FailureKind.TIMEOUT


async def _raw_server(answer: bytes, seen: list[bytes]) -> asyncio.Server:
    """A server on 127.0.0.1 that reads a request head, keeps it in ``seen``, writes ``answer``
    and closes the connection."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(await reader.readuntil(b"\r\n\r\n"))
        writer.write(answer)
        await writer.drain()
        writer.close()

    return await asyncio.start_server(handle, "127.0.0.1", 0)


@pytest.mark.parametrize(
    "answer",
    [
        b"",  # closed without a response
        b"garbage\r\n\r\n",  # not HTTP
        b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort",  # body cut short
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",  # bad chunking
    ],
)
async def test_broken_responses_are_protocol_failures(
    http: httpx.AsyncClient, settings: Settings, answer: bytes
) -> None:
    """A server that hangs up or answers garbage: a recorded (transient) protocol failure."""
    server = await _raw_server(answer, [])
    async with server:
        port = server.sockets[0].getsockname()[1]
        r = await fetch(http, f"http://127.0.0.1:{port}/", settings)
    assert not r.ok and r.error is not None and r.error.kind is FailureKind.PROTOCOL, r.error
    assert r.transient


async def test_request_target_is_sent_as_given(http: httpx.AsyncClient, settings: Settings) -> None:
    """The path and query go out exactly as httpx encoded them: no requoting, no dot-segment
    removal; our User-Agent and Accept-Encoding are sent, no aiohttp defaults added."""
    seen: list[bytes] = []
    server = await _raw_server(b"HTTP/1.1 204 No Content\r\n\r\n", seen)
    async with server:
        port = server.sockets[0].getsockname()[1]
        r = await fetch(http, f"http://127.0.0.1:{port}/a%2Fb/%7e/x%2e%2E?q=%41&r=a+b", settings)
    assert r.status == 204, r.error
    head = seen[0].decode("latin-1").lower()
    assert head.startswith("get /a%2fb/%7e/x%2e%2e?q=%41&r=a+b http/1.1\r\n"), head
    assert f"user-agent: {settings.user_agent.lower()}\r\n" in head
    assert "accept-encoding: gzip, deflate\r\n" in head
    assert "aiohttp" not in head


class _KeepAliveCounter(asyncio.Protocol):
    """Answers every request with a 2-byte body on a kept-alive connection; counts the
    connections open and ever opened."""

    open_now = 0
    made = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        type(self).open_now += 1
        type(self).made += 1

    def connection_lost(self, exc: Exception | None) -> None:
        type(self).open_now -= 1

    def data_received(self, data: bytes) -> None:
        for _ in range(data.count(b"\r\n\r\n")):
            self.transport.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")


async def _serve_on_one_port(hosts: list[str]) -> tuple[list[asyncio.Server], int]:
    """``_KeepAliveCounter`` servers on every host, one port (another on the first host's
    port may be taken on the others: then another port)."""
    loop = asyncio.get_running_loop()
    for _ in range(20):
        servers = [await loop.create_server(_KeepAliveCounter, hosts[0], 0)]
        port = servers[0].sockets[0].getsockname()[1]
        try:
            for host in hosts[1:]:
                servers.append(await loop.create_server(_KeepAliveCounter, host, port))
        except OSError:
            for server in servers:
                server.close()
            continue
        return servers, port
    raise RuntimeError("no port free on every test host")


async def test_idle_connections_are_capped(settings: Settings) -> None:
    """A worker keeps at most ``IDLE_PER_TURN`` idle connections per fetch turn, closing the
    one idle longest: aiohttp's own limit counts connections in use only, so one idle set per
    host piled up."""
    cap = IDLE_PER_TURN  # at concurrency 1
    hosts = [f"127.0.0.{h}" for h in range(2, 4 + cap)]
    _KeepAliveCounter.open_now = _KeepAliveCounter.made = 0
    servers, port = await _serve_on_one_port(hosts)
    try:
        capped = settings.model_copy(update={"concurrency": 1})
        async with make_client(capped) as client:
            for host in hosts + hosts[-cap:]:  # the last hosts again: their connections
                response = await client.get(f"http://{host}:{port}/")
                assert response.content == b"ok"
            for _ in range(50):  # the server sees a close one loop turn or so later
                if _KeepAliveCounter.open_now <= cap:
                    break
                await asyncio.sleep(0.01)
            assert _KeepAliveCounter.open_now == cap
            # those kept were those used last: asking them again opened nothing
            assert _KeepAliveCounter.made == len(hosts)
    finally:
        for server in servers:
            server.close()


async def _tls_server(tmp: Path) -> asyncio.Server:
    """A server on 127.0.0.1 that speaks TLS with a self-signed certificate (no CA vouches for
    it) and answers any request with a small page."""
    cert, key = tmp / "cert.pem", tmp / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError, ssl.SSLError):
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            await writer.drain()
        writer.close()

    return await asyncio.start_server(handle, "127.0.0.1", 0, ssl=context)


async def test_tls_context_is_made_for_https_only(
    web: TestWeb, settings: Settings, tmp_path: Path
) -> None:
    """A client's TLS context is made on its first https request, never for http ones, and
    https certificates are verified with it: a self-signed one is a TLS failure."""
    made: list[ssl.SSLContext] = []

    def tls_context() -> ssl.SSLContext:
        made.append(httpx.create_ssl_context())
        return made[-1]

    transport = AiohttpTransport(Policy.OPEN, httpx.Limits(), tls_context, dns_timeout_s=5)
    url = web.url(0, "/a.html")
    web.site = Site({url: Page()})
    server = await _tls_server(tmp_path)
    async with server, httpx.AsyncClient(transport=transport) as client:
        assert (await fetch(client, url, settings)).status == 200
        assert made == []
        port = server.sockets[0].getsockname()[1]
        for _ in range(2):
            r = await fetch(client, f"https://127.0.0.1:{port}/", settings)
            assert r.error is not None and r.error.kind is FailureKind.TLS, r.error
    assert len(made) == 1


async def test_cookies_are_kept_and_a_page_without_one_skips_the_jar(
    web: TestWeb, http: httpx.AsyncClient, settings: Settings
) -> None:
    """A cookie a page sets is kept by the client (and sent on with later requests); a page
    that sets none is never handed to the cookie jar to parse."""
    setter, plain = web.url(0, "/set"), web.url(0, "/plain")
    web.site = Site({
        setter: Page(headers={"Set-Cookie": "session=abc; Path=/"}),
        plain: Page(),
    })  # fmt: skip
    parsed: list[str] = []
    jar = http.cookies.jar
    extract = jar.extract_cookies

    def counted(response: object, request: object) -> None:
        parsed.append(str(getattr(request, "full_url", "")))
        extract(response, request)  # type: ignore[arg-type]

    jar.extract_cookies = counted  # type: ignore[method-assign]
    assert (await fetch(http, setter, settings)).status == 200
    assert http.cookies.get("session") == "abc" and parsed == [setter]
    assert (await fetch(http, plain, settings)).status == 200
    assert parsed == [setter]  # the page without a cookie was not parsed for one
    assert http.cookies.get("session") == "abc"
