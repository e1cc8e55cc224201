"""The docs sites: HTML documentation of a Debian package, served on loopback.

The ``docs`` scenario crawls the Python 3.11 docs of ``python3.11-doc``, served by
:mod:`bench.server` in static mode; ``pgdocs`` the PostgreSQL 15 docs of ``postgresql-doc-15``,
served by nginx (:mod:`bench.nginx`); both on 127.0.0.2. For either, the ground truth is a
BFS over the files themselves, independent of both crawlers: links of ``<a>``/``<area>``
``href`` (after ``<base href>``) parsed with lxml, made canonical with crawlfleet's
``canonicalize``, kept when on the site's host and not a non-page extension (crawlfleet's list,
which the Scrapy spider denies too). A URL with no file behind it is a 404 page (fetched,
recorded, not followed); only HTML files are followed.
"""

from __future__ import annotations

import os
from collections import deque
from pathlib import Path
from urllib.parse import unquote, urljoin, urlsplit

from lxml import html as lxml_html

from bench.apt import ensure_package
from crawlfleet.shared.urls import canonicalize, is_page_link
from tests.support.docsite import DOCS_PACKAGE, DOCS_ROOT

PG_DOCS_PACKAGE = "postgresql-doc-15"
PG_DOCS_ROOT = Path("/usr/share/doc/postgresql-doc-15/html")


def ensure_docs(root: Path = DOCS_ROOT, package: str = DOCS_PACKAGE) -> tuple[Path | None, str]:
    """The docs folder ``root`` (with an ``index.html``) of Debian package ``package``,
    installing the package when missing and running as root; else None and the reason."""
    ok, how = ensure_package(lambda: (root / "index.html").is_file(), [package], str(root))
    return (root if ok else None), how


def _file_of(root: Path, url: str) -> Path | None:
    rel = os.path.normpath(unquote(urlsplit(url).path)).lstrip("/")
    if rel.startswith(".."):
        return None
    target = root / rel if rel not in ("", ".") else root
    if target.is_dir():
        target = target / "index.html"
    return target if target.is_file() else None


def _links(path: Path, url: str, host: str) -> list[str]:
    doc = lxml_html.fromstring(path.read_bytes())
    base = url
    for b in doc.iter("base"):
        href = (b.get("href") or "").strip()
        if href:
            base = urljoin(url, href)
            break
    out: list[str] = []
    for el in doc.iter("a", "area"):
        href = (el.get("href") or "").strip()
        if not href or href.startswith("#"):
            continue
        try:
            canon = canonicalize(urljoin(base, href))
        except ValueError:
            continue
        if canon and urlsplit(canon).hostname == host and is_page_link(canon):
            out.append(canon)
    return out


def docs_ground_truth(root: Path, seed: str, depth: int) -> dict[str, tuple[int, bool]]:
    """URL -> (shortest depth, is an HTML page that exists) within ``depth`` of ``seed``, on
    the site of the files under ``root`` served at ``seed``'s origin."""
    host = urlsplit(seed).hostname or ""
    dist: dict[str, int] = {seed: 0}
    kinds: dict[str, bool] = {}
    queue = deque([seed])
    while queue:
        url = queue.popleft()
        path = _file_of(root, url)
        is_html = path is not None and path.suffix in (".html", ".htm")
        kinds[url] = is_html
        if path is None or not is_html or dist[url] == depth:
            continue
        for link in _links(path, url, host):
            if link not in dist:
                dist[link] = dist[url] + 1
                queue.append(link)
    return {u: (d, kinds[u]) for u, d in dist.items()}
