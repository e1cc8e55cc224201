"""A Redis that wants a password: the URL carries it; errors never print it."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from crawlfleet.scheduler.embedded import EmbeddedRedis
from crawlfleet.shared.connections import redacted
from crawlfleet.shared.crawl import CrawlSpec, CrawlState
from crawlfleet.shared.settings import Settings
from tests.support.crawling import crawl_in_process
from tests.support.synthetic import shortest_depths
from tests.support.testweb import TestWeb, make_site

SECRET = "s3cret-pw"


@pytest.fixture
def locked_redis(tmp_path: Path) -> Iterator[EmbeddedRedis]:
    server = EmbeddedRedis(tmp_path / "redis", appendonly=False, password=SECRET).start()
    yield server
    server.stop()


async def test_crawl_through_password_protected_redis(
    locked_redis: EmbeddedRedis, web: TestWeb, settings: Settings
) -> None:
    """Seeding and workers authenticate with the password in REDIS_URL."""
    assert f":{SECRET}@" in locked_redis.url
    web.site = make_site(web.port, pages_per_host=8)
    seeds = [web.url(0, "/p/0.html")]
    locked = settings.model_copy(update={"redis_url": locked_redis.url})
    status = await crawl_in_process(locked, CrawlSpec(crawl_id="auth", seeds=seeds))
    assert status.state is CrawlState.DONE
    assert status.counters.fetched == len(shortest_depths(web.site, seeds, 2, only_seed_hosts=True))


def refused_login(url: str) -> str:
    """``crawlfleet status`` against ``url``: its stderr, asserted to be the one line of a
    refused login with exit status 1."""
    result = subprocess.run(
        [sys.executable, "-m", "crawlfleet.scheduler", "--redis-url", url, "status"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "refused the login" in lines[0], result.stderr
    return result.stderr


def test_wrong_password_is_one_line_without_the_password(locked_redis: EmbeddedRedis) -> None:
    """A wrong password: one line saying the login was refused; no password printed."""
    stderr = refused_login(locked_redis.url.replace(SECRET, "wrong-pw"))
    assert "wrong-pw" not in stderr and SECRET not in stderr


def test_a_password_in_the_query_string_is_not_printed(locked_redis: EmbeddedRedis) -> None:
    """redis-py also takes the password as ``?password=``: a refused login there prints
    neither it nor anything but the one line."""
    stderr = refused_login(f"unix://{locked_redis.socket}?db=0&password=wrong-pw")
    assert "wrong-pw" not in stderr and "password=***" in stderr


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://user:pw@h:6379/0", "redis://user:***@h:6379/0"),
        ("redis://:pw@h/0", "redis://:***@h/0"),
        ("unix:///run/r.sock?db=0&password=pw", "unix:///run/r.sock?db=0&password=***"),
        ("redis://h/0?password=p%26w&db=1", "redis://h/0?password=***&db=1"),
        ("redis://h:6379/0", "redis://h:6379/0"),
    ],
)
def test_redacted_hides_every_form_of_password(url: str, shown: str) -> None:
    assert redacted(url) == shown
