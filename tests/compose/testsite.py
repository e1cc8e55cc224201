"""The compose e2e test site: a deterministic link graph, and a tiny HTTP server for it.

Standard library only, so that the same file is imported by the tests (to compute the expected
page set by BFS) and run by the ``testweb`` service of ``docker-compose.test.yml`` from a
read-only mount (``python /site/testsite.py``) in the crawlfleet image.

The site has one folder per :class:`Section`, each its own graph (a crawl seeded in one never
reaches another): ``/<section>/p<i>.html`` pages linking each other in every way HTML writes a
link (absolute, root-relative, relative, ``./`` and ``../`` forms, fragments, an upper-case host),
links to missing pages (404) whose bodies link to pages nothing else links to, redirects, and
links a crawler must not follow (mailto:, an image, another host). Every response of a section
waits its ``latency`` first, so that the work spreads over the workers.
"""

from __future__ import annotations

import argparse
import hashlib
import signal
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HOST = "testweb"
PORT = 8000
ORIGIN = f"http://{HOST}:{PORT}"
# links to this host are out of the crawl's (host) scope; nothing resolves it
OTHER_HOST = "elsewhere.invalid"


@dataclass(frozen=True)
class Section:
    """One independent part of the site."""

    name: str
    pages: int
    links_per_page: int
    latency: float

    def url(self, name: str) -> str:
        return f"{ORIGIN}/{self.name}/{name}"

    @property
    def seed(self) -> str:
        return self.url("p0.html")


SECTIONS = {
    # the depth test: a few seconds of crawling, so that each of the 3 workers takes part (at
    # 0.04 s a page the crawl was over in a second, and once two workers had held the host's
    # 8 slots all along)
    "small": Section("small", pages=60, links_per_page=3, latency=0.25),
    # the scaling test: slow enough (about a minute with 3 workers of concurrency 1) to scale
    # the workers while it runs
    "slow": Section("slow", pages=200, links_per_page=3, latency=1.5),
}


@dataclass
class Page:
    """One URL of the site."""

    status: int = 200
    # the canonical absolute URLs a crawler follows from this page (only a 200 page has any)
    edges: list[str] = field(default_factory=list)
    # the same links as written in the HTML, plus links a crawler must ignore
    hrefs: list[str] = field(default_factory=list)
    redirect_to: str | None = None
    latency: float = 0.0

    def body(self) -> bytes:
        anchors = "\n".join(
            f'  <p><a href="{h}">link {n}</a></p>' for n, h in enumerate(self.hrefs)
        )
        html = (
            '<!doctype html>\n<html><head><meta charset="utf-8"><title>test site</title></head>\n'
            f'<body><a id="top"></a>\n{anchors}\n</body></html>\n'
        )
        return html.encode()


def _pick(*parts: object) -> int:
    """A stable pseudo-random number for ``parts`` (the same in every Python version)."""
    digest = hashlib.sha256("/".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big")


def _written(section: Section, target: str, form: int) -> str:
    """One of the ways to write a link to ``target`` from a page of the same section."""
    name = target.rsplit("/", 1)[1]
    forms = [
        target,
        f"/{section.name}/{name}",
        name,
        f"./{name}",
        f"../{section.name}/{name}",
        f"{name}#part-{form % 5}",
        target.replace(ORIGIN, ORIGIN.upper()),
    ]
    return forms[form % len(forms)]


def build_site() -> dict[str, Page]:
    """Every URL of every section, canonical and absolute, to its page."""
    site: dict[str, Page] = {}
    for s in SECTIONS.values():
        html = [s.url(f"p{i}.html") for i in range(s.pages)]
        missing = [s.url(f"missing{k}.html") for k in range(3)]
        hidden = [s.url(f"hidden{k}.html") for k in range(3)]
        redirects = [s.url(f"go{k}") for k in range(2)]
        for k, url in enumerate(missing):
            # a 404 page's links are never followed: hidden<k> must never be fetched
            site[url] = Page(status=404, hrefs=[hidden[k]], latency=s.latency)
        for url in hidden:
            site[url] = Page(latency=s.latency)
        for k, url in enumerate(redirects):
            target = html[(k * 7 + 5) % s.pages]
            site[url] = Page(status=301, redirect_to=target, latency=s.latency)
        for i, url in enumerate(html):
            edges = [html[(i + 1) % s.pages]]
            for k in range(s.links_per_page):
                edges.append(html[_pick(s.name, i, k) % s.pages])
            if i % 5 == 2:
                edges.append(missing[i % len(missing)])
            if i % 6 == 1:
                edges.append(redirects[i % len(redirects)])
            edges = [e for e in dict.fromkeys(edges) if e != url]
            hrefs = [_written(s, e, _pick(s.name, i, e)) for e in edges]
            # the same link again in another form, and links that lead nowhere new
            hrefs.append(_written(s, edges[0], i + 1))
            hrefs += [
                "#top",
                f"{url}#top",
                "mailto:webmaster@example.org",
                "logo.png",
                f"http://{OTHER_HOST}:{PORT}/{s.name}/p0.html",
            ]
            site[url] = Page(edges=edges, hrefs=hrefs, latency=s.latency)
    return site


def follows(site: dict[str, Page], url: str) -> list[str]:
    """The URLs a crawler follows from ``url``: a 200 page's links."""
    page = site.get(url)
    if page is None or page.redirect_to is not None:
        return []
    return page.edges if page.status == 200 else []


def expected_depths(site: dict[str, Page], seed: str, depth: int) -> dict[str, int]:
    """Every URL a crawl of ``seed`` to ``depth`` fetches, with its shortest depth (a 0-1 BFS:
    a redirect's target is a URL of its own at the redirect's depth)."""
    dist = {seed: 0}
    queue = deque([seed])
    while queue:
        url = queue.popleft()
        here = dist[url]
        page = site.get(url)
        if page is not None and page.redirect_to is not None:
            steps = [(page.redirect_to, here)]
        else:
            steps = [(nxt, here + 1) for nxt in follows(site, url)] if here < depth else []
        for nxt, d in steps:
            if d < dist.get(nxt, depth + 1):
                dist[nxt] = d
                if d == here:
                    queue.appendleft(nxt)
                else:
                    queue.append(nxt)
    return dist


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def do_GET(self) -> None:
        if self.path == "/healthz":
            self._send(200, b"ok\n", "text/plain")
            return
        page = self.server.site.get(ORIGIN + self.path.split("#", 1)[0])
        if page is None:
            self._send(404, b"not found\n", "text/plain")
            return
        time.sleep(page.latency)
        if page.redirect_to is not None:
            self.send_response(page.status)
            self.send_header("Location", page.redirect_to)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self._send(page.status, page.body(), "text/html; charset=utf-8")

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass  # the crawler's logs say what was fetched


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], site: dict[str, Page]) -> None:
        self.site = site
        super().__init__(address, _Handler)


def main() -> None:
    """Serve the site until killed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--bind", default="0.0.0.0")
    parser.add_argument("--port", type=int, default=PORT)
    args = parser.parse_args()
    site = build_site()
    server = _Server((args.bind, args.port), site)
    # as a container's PID 1 nothing stops this process unless it handles SIGTERM itself
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
    print(f"serving {len(site)} URLs on {args.bind}:{args.port} as {ORIGIN}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
