"""The network guard: blocked addresses are refused at connection time, by their address."""

from __future__ import annotations

import ipaddress
import textwrap

import pytest

from shared.settings import Settings
from tests.support.netns import run_isolated
from tests.support.testweb import Page, Site, TestWeb
from workers.dns import Lookups
from workers.fetch import fetch, make_client
from workers.guard import Policy, blocked_reason, policy_for


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
            assert reason == f"blocked address: {ip} is {kind}"
    assert blocked_reason(ip, Policy.OPEN) is None


async def test_policy_from_seeds() -> None:
    """Seeds on (or resolving to) loopback or private addresses make an internal crawl."""
    lookups = Lookups(10.0)
    try:
        assert await policy_for(["https://93.184.216.34/"], False, lookups) is Policy.PUBLIC
        assert await policy_for(["http://127.0.0.2:8000/"], False, lookups) is Policy.INTERNAL
        # /etc/hosts
        assert await policy_for(["http://localhost/"], False, lookups) is Policy.INTERNAL
        assert (
            await policy_for(["http://[fd00::5]/", "https://93.184.216.34/"], False, lookups)
            is Policy.INTERNAL
        )
        assert await policy_for(["https://93.184.216.34/"], True, lookups) is Policy.OPEN
    finally:
        lookups.close()


async def test_public_crawl_cannot_reach_loopback(web: TestWeb, settings: Settings) -> None:
    """A public crawl's fetch of a loopback address or of localhost is refused, unsent."""
    url = web.url(0, "/secret")
    web.site = Site({url: Page()})
    async with make_client(settings, Policy.PUBLIC) as client:
        by_ip = await fetch(client, url, settings)
        by_name = await fetch(client, url.replace("127.0.0.2", "localhost"), settings)
    assert by_ip.error == "blocked address: 127.0.0.2 is loopback"
    assert by_name.error is not None and by_name.error.startswith("blocked address: ")
    assert web.requested() == []
    async with make_client(settings, Policy.INTERNAL) as client:
        assert (await fetch(client, url, settings)).status == 200


ISOLATED = textwrap.dedent(
    """
    import asyncio, json
    from shared.settings import Settings
    from tests.support.testweb import Page, Site, TestWeb
    from workers.fetch import fetch, make_client
    from workers.guard import Policy

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
                    out[name] = result.error
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
