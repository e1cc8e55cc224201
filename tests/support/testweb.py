"""A test web on loopback: several hosts (127.0.0.2, 127.0.0.3, ...) on one port.

A :class:`Site` maps URLs to :class:`Page` s. Each page lists its ``edges``, the canonical URLs a
crawler must follow from it, and its ``hrefs``, the same links written the many ways HTML writes
them (relative, absolute, fragments, upper-case hosts, duplicates) plus links a crawler must
ignore (mailto:, javascript:, images, out-of-scope hosts). A site is a
:class:`~tests.support.synthetic.LinkGraph`: ``shortest_depths`` there is its ground truth.
:func:`make_site` takes its page-to-page links from the synthetic web's generator.
"""

from __future__ import annotations

import gzip
import random
import socket
import threading
import time
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from urllib.parse import urlsplit

from tests.support.synthetic import SiteConfig, SyntheticSite

# a loopback address nothing listens on: a crawler that follows a link there has left its scope
OUT_OF_SCOPE_HOST = "127.0.0.250"
# the longest a held page (``Page.hold``) waits for its test
HOLD_MAX_S = 120.0


@dataclass
class Page:
    """One URL of the test web."""

    status: int = 200
    content_type: str = "text/html; charset=utf-8"
    edges: list[str] = field(default_factory=list)
    hrefs: list[str] = field(default_factory=list)
    latency: float = 0.0
    redirect_to: str | None = None
    body: bytes | None = None
    # statuses of the first requests, in order (then ``status``): a server that recovers
    first_statuses: list[int] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)
    # the answer waits until the test sets this (or two minutes have passed): a request in flight
    # for as long as the test needs one
    hold: threading.Event | None = None
    # sent with Transfer-Encoding: chunked, in chunks of 100 bytes, instead of a Content-Length
    chunked: bool = False
    # validators: sent with a 200, and a request that sends them back gets a 304 (RFC 9110:
    # If-None-Match first; If-Modified-Since only without it)
    etag: str | None = None
    last_modified: str | None = None

    def not_modified(self, if_none_match: str | None, if_modified_since: str | None) -> bool:
        """Whether a request with these conditional headers gets a 304."""
        if self.status != 200 or self.redirect_to is not None:
            return False
        if if_none_match is not None:
            tags = [t.strip() for t in if_none_match.split(",")]
            return self.etag is not None and (self.etag in tags or "*" in tags)
        if if_modified_since is None or self.last_modified is None:
            return False
        try:
            since = parsedate_to_datetime(if_modified_since)
        except (TypeError, ValueError):
            return False
        return parsedate_to_datetime(self.last_modified) <= since

    def validators(self) -> dict[str, str]:
        """The page's validators as response headers."""
        found = {"ETag": self.etag, "Last-Modified": self.last_modified}
        return {name: value for name, value in found.items() if value is not None}

    def render(self) -> bytes:
        if self.body is not None:
            return self.body
        if not self.content_type.startswith("text/html"):
            return b"plain resource\n"
        anchors = "\n".join(f'<a href="{h}">link</a>' for h in self.hrefs)
        head = "<!doctype html><html><head><title>t</title></head>"
        return f"{head}<body>\n{anchors}\n</body></html>".encode()


@dataclass
class Site:
    """URLs (canonical, absolute) to pages."""

    pages: dict[str, Page]

    def follows(self, url: str) -> list[str]:
        """The edges a crawler follows from ``url``: only from 2xx HTML."""
        page = self.pages.get(url)
        if page is None or page.redirect_to is not None:
            return []
        if page.status != 200 or not page.content_type.startswith("text/html"):
            return []
        return page.edges

    def redirect(self, url: str) -> str | None:
        """Where ``url`` redirects to, if it does."""
        page = self.pages.get(url)
        return None if page is None else page.redirect_to


def star_site(web: TestWeb, pages: int, latency: float) -> str:
    """Serve one host on ``web``: a root linking to ``pages`` pages, each taking ``latency``
    seconds; returns the root."""
    root = web.url(0, "/")
    site = {root: Page(hrefs=[f"/p{i}" for i in range(pages)])}
    for i in range(pages):
        site[web.url(0, f"/p{i}")] = Page(latency=latency)
    web.site = Site(site)
    return root


def add_sitemaps(site: Site, port: int, hosts: int = 3, archive: int = 10) -> list[str]:
    """Give each host of a ``make_site`` site sitemaps, as ``--sitemaps`` reads them: its
    robots.txt names an index of two gzip sitemaps, one of its ``/p/`` pages and one of
    ``archive`` pages no link reaches (each linking to a ``/p/`` page and to a page of its own
    one hop on), and a malformed sitemap; it has no /sitemap.xml. Returns the page URLs the
    sitemaps list."""
    listed: list[str] = []
    for h in range(hosts):
        origin = f"http://127.0.0.{2 + h}:{port}"
        ours = sorted(u for u in site.pages if u.startswith(f"{origin}/p/"))
        archive_urls = [f"{origin}/archive/{i}.html" for i in range(archive)]
        for i, url in enumerate(archive_urls):
            edges = [ours[(i * 3) % len(ours)], f"{origin}/archive/{i}/more.html"]
            site.pages[url] = Page(edges=edges, hrefs=edges)
            site.pages[edges[1]] = Page()
        index = "".join(
            f"<sitemap><loc>{origin}/sitemaps/{name}</loc></sitemap>"
            for name in ("pages.xml.gz", "archive.xml.gz", "broken.xml")
        )
        site.pages[f"{origin}/robots.txt"] = Page(
            content_type="text/plain", body=b"User-agent: *\nSitemap: /sitemaps/index.xml\n"
        )
        site.pages[f"{origin}/sitemaps/index.xml"] = Page(
            content_type="application/xml", body=f"<sitemapindex>{index}</sitemapindex>".encode()
        )
        for name, urls in (("pages", ours), ("archive", archive_urls)):
            entries = "".join(
                f"<url><loc>{u}</loc><lastmod>2026-01-0{1 + n % 9}</lastmod></url>"
                for n, u in enumerate(urls)
            )
            body = gzip.compress(f"<urlset>{entries}</urlset>".encode(), mtime=0)
            site.pages[f"{origin}/sitemaps/{name}.xml.gz"] = Page(
                content_type="application/x-gzip", body=body
            )
        site.pages[f"{origin}/sitemaps/broken.xml"] = Page(
            content_type="application/xml", body=b"<urlset><url><loc>"
        )
        listed += ours + archive_urls
    return listed


def _variants(target: str, page_url: str, rng: random.Random) -> list[str]:
    """Ways to write a link to ``target`` from ``page_url`` that all mean the same page."""
    t = urlsplit(target)
    p = urlsplit(page_url)
    forms = [target, f"{target}#section-{rng.randint(1, 9)}"]
    upper = f"{t.scheme.upper()}://{t.netloc.upper()}{t.path}"
    forms.append(upper)
    if t.netloc == p.netloc:
        forms.append(t.path)
        if t.path.rsplit("/", 1)[0] == p.path.rsplit("/", 1)[0]:
            forms.append(t.path.rsplit("/", 1)[1])
            forms.append("./" + t.path.rsplit("/", 1)[1])
        forms.append("/x/.." + t.path)
    return forms


def make_site(
    port: int,
    *,
    seed: int = 1,
    hosts: int = 3,
    pages_per_host: int = 25,
    links_per_page: int = 4,
    max_latency: float = 0.02,
) -> Site:
    """A deterministic multi-host site with dense cross-links, 404s, plain files and redirects:
    the synthetic web's link graph (each page links to its host's home, to ``links_per_page - 2``
    pages anywhere on its host and to 2 of other hosts), every link written several ways."""
    graph = SyntheticSite(
        SiteConfig(seed=seed, hosts=hosts, pages_per_host=pages_per_host,
                   links_per_page=links_per_page + 1, window=pages_per_host),
        port,
    )  # fmt: skip
    rng = random.Random(seed)
    names = [graph.host(h) for h in range(hosts)]

    def url(host: str, path: str) -> str:
        return f"http://{host}:{port}{path}"

    pages: dict[str, Page] = {}
    html_urls = [graph.url(h, i) for h in range(hosts) for i in range(pages_per_host)]
    for u in html_urls:
        pages[u] = Page(latency=rng.uniform(0, max_latency))
    for h in names:
        for i in range(3):
            pages[url(h, f"/missing/{i}.html")] = Page(
                status=404, hrefs=[url(h, f"/only-from-404/{i}.html")]
            )
            pages[url(h, f"/only-from-404/{i}.html")] = Page()
            pages[url(h, f"/files/{i}.txt")] = Page(content_type="text/plain")
            pages[url(h, f"/go/{i}")] = Page(
                status=301, redirect_to=url(h, f"/p/{(i * 7) % pages_per_host}.html")
            )
    leaves = [u for u in pages if u not in html_urls and "/only-from-404/" not in u]
    for n, u in enumerate(html_urls):
        page = pages[u]
        targets = graph.link_urls(*divmod(n, pages_per_host))
        if rng.random() < 0.4:
            targets.append(rng.choice(leaves))
        page.edges = list(dict.fromkeys(t for t in targets if t != u))
        hrefs: list[str] = []
        for t in page.edges:
            hrefs.extend(rng.sample(_variants(t, u, rng), 2))
        host = urlsplit(u).hostname or ""
        hrefs += [
            "mailto:someone@example.org",
            "javascript:void(0)",
            "data:text/html,hi",
            "#top",
            f"/img/{rng.randint(0, 9)}.png",
            f"/static/site.css?v={rng.randint(0, 9)}",
            url(OUT_OF_SCOPE_HOST, "/p/0.html"),
            url(host, "/downloads/archive.zip"),
        ]
        rng.shuffle(hrefs)
        page.hrefs = hrefs
    return Site(pages)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _HostServer

    def do_GET(self) -> None:
        web = self.server.web
        host = str(self.server.server_address[0])
        url = f"http://{host}:{web.port}{self.path.split('#', 1)[0]}"
        nth = web.record(
            url, self.headers.get("If-None-Match"), self.headers.get("If-Modified-Since")
        )
        web.enter(host)
        self._answering = True
        try:
            self._answer(web, url, nth)
        finally:
            self._answered()

    def _answered(self) -> None:
        """The request stops counting as in flight: before the response goes out, since the
        client may send its next request as soon as it has the response, maybe before this
        thread runs again."""
        if self._answering:
            self._answering = False
            self.server.web.leave(str(self.server.server_address[0]))

    def _answer(self, web: TestWeb, url: str, nth: int) -> None:
        page = web.site.pages.get(url)
        if page is None:
            self._send(404, "text/plain", b"not found\n")
            return
        if page.latency:
            time.sleep(page.latency)
        if page.hold is not None:
            page.hold.wait(HOLD_MAX_S)
        if page.redirect_to is not None:
            self.send_response(page.status)
            self.send_header("Location", page.redirect_to)
            self.send_header("Content-Length", "0")
            self._answered()
            self.end_headers()
            return
        status = page.first_statuses[nth] if nth < len(page.first_statuses) else page.status
        inm, ims = self.headers.get("If-None-Match"), self.headers.get("If-Modified-Since")
        if page.not_modified(inm, ims):
            web.answered(url, 304)
            self.send_response(304)
            for name, value in page.validators().items():
                self.send_header(name, value)
            self._answered()
            self.end_headers()
            return
        web.answered(url, status)
        if page.chunked:
            self._send_chunked(status, page)
            return
        self._send(status, page.content_type, page.render(), page.headers | page.validators())

    def _send_chunked(self, status: int, page: Page) -> None:
        body = page.render()
        self.send_response(status)
        for name, value in page.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Type", page.content_type)
        self.send_header("Transfer-Encoding", "chunked")
        self._answered()
        self.end_headers()
        for start in range(0, len(body), 100):
            piece = body[start : start + 100]
            self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
        self.wfile.write(b"0\r\n\r\n")

    def _send(
        self, status: int, content_type: str, body: bytes, headers: dict[str, str] | None = None
    ) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self._answered()
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


class _HostServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], web: TestWeb) -> None:
        self.web = web
        super().__init__(address, _Handler)

    def handle_error(self, request: object, client_address: object) -> None:
        # a crawler killed mid-request resets its connections: expected in fault tests
        pass


class TestWeb:
    """HTTP servers on 127.0.0.2 ... 127.0.0.(1+hosts), all on one port, serving ``site``
    (from 127.0.0.``first`` on: 1 is the address of ``localhost``, for a crawl of a name)."""

    __test__ = False  # not a pytest test class

    def __init__(self, hosts: int = 3, first: int = 2) -> None:
        self.hosts = [f"127.0.0.{first + h}" for h in range(hosts)]
        self.site = Site({})
        self.port = 0
        self.requests: list[tuple[str, float]] = []
        # (url, If-None-Match, If-Modified-Since) of every request, and (url, status) of every
        # answer of a page of the site (not of a redirect or an unknown URL)
        self.conditionals: list[tuple[str, str | None, str | None]] = []
        self.statuses: list[tuple[str, int]] = []
        self._counts: dict[str, int] = {}
        self.in_flight: dict[str, int] = {}
        self.max_in_flight: dict[str, int] = {}
        self.max_in_flight_total = 0  # over all hosts
        # (time, host, requests in flight there) at every change
        self._in_flight_log: list[tuple[float, str, int]] = []
        self._lock = threading.Lock()
        self._servers: list[_HostServer] = []

    def url(self, host_index: int, path: str) -> str:
        return f"http://{self.hosts[host_index]}:{self.port}{path}"

    def record(
        self, url: str, if_none_match: str | None = None, if_modified_since: str | None = None
    ) -> int:
        """Note a request's start and the conditional headers it sent; returns how many
        requests for ``url`` came before it."""
        with self._lock:
            nth = self._counts.get(url, 0)
            self._counts[url] = nth + 1
            self.requests.append((url, time.monotonic()))
            self.conditionals.append((url, if_none_match, if_modified_since))
            return nth

    def answered(self, url: str, status: int) -> None:
        """Note the status a page of the site was answered with."""
        with self._lock:
            self.statuses.append((url, status))

    def enter(self, host: str) -> None:
        with self._lock:
            self.in_flight[host] = self.in_flight.get(host, 0) + 1
            self.max_in_flight[host] = max(self.max_in_flight.get(host, 0), self.in_flight[host])
            total = sum(self.in_flight.values())
            self.max_in_flight_total = max(self.max_in_flight_total, total)
            self._in_flight_log.append((time.monotonic(), host, self.in_flight[host]))

    def leave(self, host: str) -> None:
        with self._lock:
            self.in_flight[host] -= 1
            self._in_flight_log.append((time.monotonic(), host, self.in_flight[host]))

    def peak_in_flight(self, host: str, since: float) -> int:
        """The most requests in flight at once on ``host`` from ``since`` (``time.monotonic``)
        on, those in flight then included."""
        with self._lock:
            before = [n for t, h, n in self._in_flight_log if h == host and t < since]
            after = [n for t, h, n in self._in_flight_log if h == host and t >= since]
        return max([*before[-1:], *after], default=0)

    def starts(self, host: str) -> list[float]:
        """Start times of the requests to ``host``, in order."""
        with self._lock:
            return [t for u, t in self.requests if f"//{host}:" in u]

    def requested(self) -> list[str]:
        with self._lock:
            return [u for u, _ in self.requests]

    def start(self) -> TestWeb:
        for _ in range(20):
            try:
                self._servers = [_HostServer((self.hosts[0], 0), self)]
                self.port = self._servers[0].server_address[1]
                for h in self.hosts[1:]:
                    self._servers.append(_HostServer((h, self.port), self))
                break
            except OSError:
                for s in self._servers:
                    s.server_close()
                self._servers = []
        else:
            raise RuntimeError("no port free on every test host")
        for s in self._servers:
            threading.Thread(target=s.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def stop(self) -> None:
        for s in self._servers:
            s.shutdown()
            s.server_close()

    def __enter__(self) -> TestWeb:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
