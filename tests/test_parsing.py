"""A page's links: the parse budget, and big pages parsed off the event loop."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest

from crawlfleet.shared.settings import Extractor, Settings
from crawlfleet.shared.urls import ScopeRule
from crawlfleet.workers.fetch import FetchResult
from crawlfleet.workers.links import extract_hrefs
from crawlfleet.workers.parsing import INLINE_PARSE_BYTES, PageLinks

PAGE = "http://h.test/index.html"
ANYWHERE = ScopeRule("any", [])


def html_result(body: bytes) -> FetchResult:
    return FetchResult(
        url=PAGE, final_url=PAGE, status=200, content_type="text/html; charset=utf-8",
        body=body, truncated=False, error=None, duration_ms=1,
    )  # fmt: skip


def links_page(count: int, last: str = "") -> bytes:
    """``count`` links to one URL, then (if given) one link to ``last``."""
    tail = f'<a href="{last}">x</a>' if last else ""
    return ("<html><body>" + '<a href="/same">x</a>' * count + tail).encode()


@pytest.mark.parametrize("extractor", ["bs4", "fast"])
def test_parse_budget_stops_reading_link_tags(extractor: Extractor) -> None:
    """Past ``max_tags`` link tags the page is read for no more links: the link after 1,000
    copies of another is found with a budget of 1,001 tags, not with one of 1,000."""
    html = links_page(1000, last="/after")
    within = extract_hrefs(html, PAGE, "utf-8", extractor, max_tags=1001)
    assert within[-1] == "http://h.test/after" and len(within) == 1001
    spent = extract_hrefs(html, PAGE, "utf-8", extractor, max_tags=1000)
    assert "http://h.test/after" not in spent and len(spent) == 1000
    # the budget does not carry over to the next page parsed by the same kept parser
    assert extract_hrefs(html, PAGE, "utf-8", extractor) == within


async def test_budget_is_the_setting(settings: Settings) -> None:
    """``max_link_tags_per_page`` is the budget PageLinks parses with."""
    html = links_page(30, last="/after")
    with PageLinks(settings.model_copy(update={"max_link_tags_per_page": 30})) as spent:
        assert (await spent.of(html_result(html), ANYWHERE)).followed == ["http://h.test/same"]
    with PageLinks(settings.model_copy(update={"max_link_tags_per_page": 31})) as room:
        assert (await room.of(html_result(html), ANYWHERE)).followed == [
            "http://h.test/same",
            "http://h.test/after",
        ]


@pytest.fixture
def big_page() -> Iterator[bytes]:
    """Distinct links, far past the size parsed in place: a parse of a second or more."""
    body = "".join(f'<a href="/p/{i}">{i}</a>' for i in range(150_000)).encode()
    assert len(body) > 8 * INLINE_PARSE_BYTES
    yield b"<html><body>" + body


async def test_big_page_is_parsed_off_the_event_loop(settings: Settings, big_page: bytes) -> None:
    """While a big page is parsed, the event loop goes on: a ticker beside the parse never
    waits more than a fraction of the parse's time (in place, it would wait all of it)."""
    unbounded = settings.model_copy(
        update={"max_link_tags_per_page": 1_000_000, "max_links_per_page": 1_000_000}
    )
    gaps: list[float] = []
    parsing = True

    async def tick() -> None:
        last = time.monotonic()
        while parsing:
            await asyncio.sleep(0.005)
            now = time.monotonic()
            gaps.append(now - last)
            last = now

    with PageLinks(unbounded) as links:
        ticker = asyncio.create_task(tick())
        began = time.monotonic()
        found = (await links.of(html_result(big_page), ANYWHERE)).followed
        took = time.monotonic() - began
        parsing = False
        await ticker
    assert len(found) == 150_000 and found[-1] == "http://h.test/p/149999"
    assert len(gaps) > 10, "the ticker never ran beside the parse"
    assert max(gaps) < took / 4, f"the loop stood still {max(gaps):.3f}s of a {took:.3f}s parse"


async def test_small_and_big_pages_give_the_same_links(settings: Settings) -> None:
    """A page just over the in-place size and one just under yield what ``extract_hrefs``
    does, through the thread and in place alike."""
    unit = '<a href="/a">a</a><a href="/b#f">b</a><a href="mailto:x@y">m</a>'
    for size in (INLINE_PARSE_BYTES - 100, INLINE_PARSE_BYTES + 100):
        html = (unit * (size // len(unit) + 1)).encode()[:size]
        with PageLinks(settings) as links:
            got = await links.of(html_result(html), ANYWHERE)
        assert got.followed == ["http://h.test/a", "http://h.test/b"], size
        assert got.found == got.followed, size
