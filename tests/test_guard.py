"""The network guard: blocked addresses are refused at connection time, by their address."""

from __future__ import annotations

import ipaddress
import textwrap
from collections import Counter

import pytest

from crawlfleet.shared.failures import Failure, FailureKind
from crawlfleet.shared.settings import Settings
from crawlfleet.workers.dns import AddrInfo, Lookups
from crawlfleet.workers.fetch import fetch, make_client
from crawlfleet.workers.guard import Policy, blocked_reason, policy_for, seed_policy
from tests.support.lookups import LateLookups
from tests.support.netns import run_isolated
from tests.support.testweb import Page, Site, TestWeb


@pytest.mark.parametrize(
    ("address", "public", "internal"),
    [
        ("93.184.216.34", None, None),
        ("2606:2800:220:1::1", None, None),
        ("127.0.0.1", "loopback", None),
        ("::1", "loopback", None),
        ("10.1.2.3", "private", None),
        ("172.16.0.1", "private", None),
        ("192.168.1.1", "private", None),
        ("100.64.0.1", "private", None),
        ("fd00::1", "private", None),
        ("169.254.169.254", "link-local", "link-local"),
        ("fe80::1", "link-local", "link-local"),
        ("::ffff:127.0.0.1", "loopback", None),
        ("::ffff:169.254.169.254", "link-local", "link-local"),
        ("0.0.0.0", "reserved", "reserved"),
        ("::", "reserved", "reserved"),
        ("224.0.0.1", "reserved", "reserved"),
    ],
)
def test_blocked_reason(address: str, public: str | None, internal: str | None) -> None:
    """Public crawls get public addresses only; internal ones add loopback and private."""
    ip = ipaddress.ip_address(address)
    for policy, kind in ((Policy.PUBLIC, public), (Policy.INTERNAL, internal)):
        reason = blocked_reason(ip, policy)
        assert (reason is None) == (kind is None), (policy, reason)
        if kind is not None:
            assert reason == f"{ip} is {kind}"
    assert blocked_reason(ip, Policy.OPEN) is None


async def test_policy_from_seeds() -> None:
    """Seeds all on (or resolving to) loopback or private addresses make an internal crawl;
    one public seed among them makes it public; --allow-private makes it open."""
    lookups = Lookups(10.0)

    async def policy(seeds: list[str], allow_private: bool = False) -> Policy:
        return await policy_for(seeds, allow_private, lookups)

    try:
        assert await policy(["https://93.184.216.34/"]) is Policy.PUBLIC
        assert await policy(["http://127.0.0.2:8000/"]) is Policy.INTERNAL
        assert await policy(["http://localhost/"]) is Policy.INTERNAL  # /etc/hosts
        assert await policy(["http://[fd00::5]/", "http://10.1.2.3/"]) is Policy.INTERNAL
        assert await policy(["http://[fd00::5]/", "https://93.184.216.34/"]) is Policy.PUBLIC
        assert await policy(["http://[fd00::5]/", "https://93.184.216.34/"], True) is Policy.OPEN
    finally:
        lookups.close()


async def test_public_crawl_cannot_reach_loopback(web: TestWeb, settings: Settings) -> None:
    """A public crawl's fetch of a loopback address or of localhost is refused, unsent."""
    url = web.url(0, "/secret")
    web.site = Site({url: Page()})
    async with make_client(settings, Policy.PUBLIC) as client:
        by_ip = await fetch(client, url, settings)
        by_name = await fetch(client, url.replace("127.0.0.2", "localhost"), settings)
    assert by_ip.error == Failure(FailureKind.BLOCKED, "127.0.0.2 is loopback")
    assert str(by_ip.error) == "blocked address: 127.0.0.2 is loopback"
    assert by_name.error is not None and by_name.error.kind is FailureKind.BLOCKED
    assert web.requested() == []
    async with make_client(settings, Policy.INTERNAL) as client:
        assert (await fetch(client, url, settings)).status == 200


ISOLATED = textwrap.dedent(
    """
    import asyncio, json
    from crawlfleet.shared.settings import Settings
    from tests.support.testweb import Page, Site, TestWeb
    from crawlfleet.workers.fetch import fetch, make_client
    from crawlfleet.workers.guard import Policy

    async def main():
        settings = Settings(connect_timeout=2, total_timeout=5)
        out = {}
        with TestWeb(hosts=1) as web:
            start = web.url(0, "/start")
            web.site = Site({start: Page(status=302,
                                         redirect_to="http://169.254.169.254/latest/meta-data")})
            cases = {
                "internal_redirect_to_metadata": (Policy.INTERNAL, start),
                "internal_private": (Policy.INTERNAL, "http://10.0.0.1/"),
                "internal_link_local_v6": (Policy.INTERNAL, "http://[fe80::1]/"),
                "public_private": (Policy.PUBLIC, "http://192.168.1.1/"),
                "public_metadata": (Policy.PUBLIC, "http://169.254.169.254/"),
                "public_public": (Policy.PUBLIC, "http://93.184.216.34/"),
                "open_metadata": (Policy.OPEN, "http://169.254.169.254/"),
            }
            for name, (policy, url) in cases.items():
                async with make_client(settings, policy) as client:
                    result = await fetch(client, url, settings)
                    if result.redirect is not None:  # the next hop, as the frontier takes it
                        result = await fetch(client, result.redirect, settings)
                    out[name] = str(result.error)
        print(json.dumps(out))

    asyncio.run(main())
    """
)


def test_blocked_addresses_in_a_loopback_only_namespace() -> None:
    """Blocked addresses (redirect hops too) fail as blocked; allowed ones as unreachable."""
    errors = run_isolated(ISOLATED)
    blocked = {
        "internal_redirect_to_metadata": "blocked address: 169.254.169.254 is link-local",
        "internal_link_local_v6": "blocked address: fe80::1 is link-local",
        "public_private": "blocked address: 192.168.1.1 is private",
        "public_metadata": "blocked address: 169.254.169.254 is link-local",
    }
    for name, reason in blocked.items():
        assert errors[name] == reason, (name, errors[name])
    # allowed by the policy: the namespace (network unreachable), not the guard, stops these
    for name in ("internal_private", "public_public", "open_metadata"):
        assert errors[name] is not None and errors[name].startswith("connect: "), errors


# names with addresses of their own, in the namespace's /etc/hosts only (no DNS is asked)
MIXED_HOSTS = """\
127.0.0.1 localhost
127.0.0.2 mixed.test inside.test
93.184.216.34 mixed.test
fd00::5 inside.test
"""

MIXED = textwrap.dedent(
    """
    import asyncio, json
    from pathlib import Path
    from crawlfleet.shared.crawl import CrawlSpec
    from crawlfleet.shared.settings import Settings
    from tests.support.crawling import crawl_in_process, read_manifest
    from tests.support.testweb import Page, Site, TestWeb
    from crawlfleet.workers.dns import Lookups
    from crawlfleet.workers.guard import policy_for

    async def main(redis_url, data_dir):
        settings = Settings(redis_url=redis_url, data_dir=Path(data_dir), connect_timeout=2,
                            total_timeout=5, log_format="json")
        out = {}
        with TestWeb(hosts=1) as web:
            web.site = Site({web.url(0, "/"): Page()})
            for name in ("mixed", "inside"):
                seed = f"http://{name}.test:{web.port}/"
                lookups = Lookups(10.0)
                try:
                    policy = await policy_for([seed], False, lookups)
                finally:
                    lookups.close()
                out[name] = {"policy": policy.value}
                for private in (False, True):
                    spec = CrawlSpec(crawl_id=f"{name}-{private}", seeds=[seed], depth=0,
                                     obey_robots=False, retries=0, allow_private=private)
                    await crawl_in_process(settings, spec)
                    (record,) = read_manifest(settings.data_dir, spec.crawl_id)
                    out[name][f"allow_private={private}"] = [record["status"], record["error"]]
            out["requested"] = len(web.requested())
        print(json.dumps(out))

    asyncio.run(main(REDIS_URL, DATA_DIR))
    """
)


def test_seed_name_with_a_public_address_makes_a_public_crawl(settings: Settings) -> None:
    """A seed name that resolves to a loopback and a public address makes a public crawl:
    its loopback address is never connected to (the public one is unreachable here) unless
    --allow-private says so; a name with private addresses only makes an internal crawl."""
    given = f"REDIS_URL = {settings.redis_url!r}\nDATA_DIR = {str(settings.data_dir)!r}\n"
    out = run_isolated(given + MIXED, hosts=MIXED_HOSTS)
    mixed, inside = out["mixed"], out["inside"]
    assert mixed["policy"] == "public" and inside["policy"] == "internal"
    status, error = mixed["allow_private=False"]
    assert status is None and error.startswith("connect: "), error  # 93.184.216.34 only
    assert mixed["allow_private=True"] == [200, None]
    assert inside["allow_private=False"] == [200, None]
    assert inside["allow_private=True"] == [200, None]
    assert out["requested"] == 3  # the page, by each crawl allowed to reach it


UNSETTLED = """
import asyncio, json
from crawlfleet.workers.dns import Lookups
from crawlfleet.workers.guard import seed_policy

async def main():
    lookups = Lookups(5.0)
    out = {}
    try:
        for name, seeds in {
            "inside": ["http://inside.test/"],
            "half": ["http://inside.test/", "http://missing.test/"],
            "public": ["http://93.184.216.34/", "http://missing.test/"],
        }.items():
            policy, settled = await seed_policy(seeds, False, lookups)
            out[name] = [policy.value, settled]
    finally:
        lookups.close()
    print(json.dumps(out))

asyncio.run(main())
"""


def test_a_seed_that_does_not_resolve_leaves_the_policy_unsettled() -> None:
    """A seed whose name does not resolve (yet) beside private ones makes the crawl public for
    now but unsettled, so a worker asks again rather than block the crawl's own hosts for
    good; a public seed settles it whatever the others (a loopback-only namespace, names from
    its own /etc/hosts)."""
    out = run_isolated(UNSETTLED, hosts="127.0.0.1 localhost\n127.0.0.2 inside.test\n")
    assert out == {
        "inside": ["internal", True],
        "half": ["public", False],
        "public": ["public", True],
    }


class CountedLookups(Lookups):
    """The system's lookups, counted by name."""

    def __init__(self, timeout_s: float) -> None:
        super().__init__(timeout_s)
        self.asked: Counter[str] = Counter()

    async def getaddrinfo(self, host: str, port: int, family: int) -> list[AddrInfo]:
        self.asked[host] += 1
        return await super().getaddrinfo(host, port, family)


async def test_a_crawl_of_many_seeds_on_a_few_hosts_looks_each_host_up_once() -> None:
    """A crawl's seeds are often many URLs of a few hosts: the policy looks each name up once
    (addresses none), where every seed was looked up in turn before any job could start."""
    lookups = CountedLookups(10.0)
    seeds = [f"http://localhost:{8000 + i % 3}/p/{i}.html" for i in range(200)]
    seeds += [f"http://127.0.0.{2 + i % 50}/s/{i}.html" for i in range(200)]
    try:
        assert await seed_policy(seeds, False, lookups) == (Policy.INTERNAL, True)
    finally:
        lookups.close()
    assert lookups.asked == {"localhost": 1}


@pytest.mark.parametrize(("resolve_for_s", "policy", "asked"), [
    (0.0, (Policy.PUBLIC, False), 1),
    (30.0, (Policy.INTERNAL, True), 2),
])  # fmt: skip
async def test_a_seed_name_without_an_answer_is_asked_again_while_seed_resolve_s_lasts(
    resolve_for_s: float, policy: tuple[Policy, bool], asked: int
) -> None:
    """A seed's name whose first ask gets no answer in time is asked again (every 0.5 s) for
    ``Settings.seed_resolve_s``: within it a later answer settles the policy; with 0 it is
    asked once, and the crawl is public for now."""
    lookups = LateLookups("localhost", late=1)
    try:
        assert await seed_policy(["http://localhost/"], False, lookups, resolve_for_s) == policy
    finally:
        lookups.close()
    assert lookups.asked == asked
