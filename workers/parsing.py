"""The links of a fetched page, read within the parse budget, big pages off the event loop.

A page's parse is synchronous work: a 10 MiB page takes seconds, and on the event loop those
seconds would stop every other job of the worker, its heartbeats and its timeouts. Pages up to
``INLINE_PARSE_BYTES`` are parsed in place (a few milliseconds; handing them to a thread would
cost more than it saves), bigger ones in the worker's one parse thread, so that they queue
there rather than pile up threads that would only take turns at the GIL.
"""

from __future__ import annotations

import asyncio
import contextvars
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import structlog

from crawlfleet.shared.mime import charset_of
from crawlfleet.shared.settings import Settings
from crawlfleet.shared.urls import ScopeRule
from crawlfleet.workers.fetch import FetchResult
from crawlfleet.workers.follow import in_scope, page_links
from crawlfleet.workers.links import extract_hrefs

log = structlog.get_logger()

# bigger pages are parsed in the parse thread: a parse's time grows with the page, and a
# page this size holds the event loop for a few ten milliseconds at most
INLINE_PARSE_BYTES = 256 * 1024


@dataclass(frozen=True, slots=True)
class Links:
    """A page's links: all of them (canonical page URLs, in page order, before any scope: what
    its record keeps) and those its crawl follows."""

    found: list[str] | None  # None: not an HTML page
    followed: list[str]


NO_LINKS = Links(None, [])


class PageLinks:
    """Link extraction for one worker process: its settings and its parse thread."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="crawlfleet-parse")

    async def of(self, result: FetchResult, scope: ScopeRule) -> Links:
        """The links of a fetched page (none unless it is HTML), in page order."""
        if not (result.is_html and result.final_url):
            return NO_LINKS
        if len(result.body) <= INLINE_PARSE_BYTES:
            return self._links(result, result.final_url, scope)
        context = contextvars.copy_context()  # the job's log fields, in the thread's lines
        return await asyncio.get_running_loop().run_in_executor(
            self._thread, context.run, self._links, result, result.final_url, scope
        )

    def followed(self, found: list[str], scope: ScopeRule) -> list[str]:
        """The links among ``found`` (a page's, as ``of`` found them) that a crawl of ``scope``
        follows."""
        return in_scope(found, scope, self._settings.max_links_per_page)

    def _links(self, result: FetchResult, page_url: str, scope: ScopeRule) -> Links:
        settings = self._settings
        try:
            hrefs = extract_hrefs(
                result.body, page_url, charset_of(result.content_type), settings.extractor,
                settings.max_link_tags_per_page,
            )  # fmt: skip
            found = page_links(hrefs)
        except Exception as exc:  # a page that breaks the parser must not break the worker
            log.warning("links not extracted", error=f"{type(exc).__name__}: {exc}")
            return NO_LINKS
        return Links(found, self.followed(found, scope))

    def close(self) -> None:
        """Stop the parse thread; a parse still running ends on its own, its result unused."""
        self._thread.shutdown(wait=False, cancel_futures=True)

    def __enter__(self) -> PageLinks:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
