"""The network guard: which addresses a crawl may connect to, enforced at connection time.

A crawl of public sites must not be turned against the network it runs in: it may not fetch
loopback, private (RFC 1918, unique-local, shared 100.64/10), unspecified, multicast or reserved
addresses. A crawl whose seeds are all on loopback or private addresses (by address, or by
every address their names resolve to) is internal and may fetch those: one public address among
them makes the crawl public, so a seed name with both public and private DNS records cannot
open the private network. No crawl fetches link-local addresses (169.254/16, where cloud
metadata lives, and fe80::/10) unless it was seeded with ``--allow-private``, which allows
everything.

The check is made on the address the connection is actually opened to, in aiohttp's connector
(``workers.transport``): ``GuardedResolver`` resolves the host and hands the connector only the
addresses the policy allows (so the connector connects to checked addresses, never to a second
lookup of the name, and DNS rebinding cannot slip another address in), and ``guarded_socket``
checks the address of every socket as it is opened (IP literals skip the resolver). Every
redirect hop is a new request through the same connector, checked the same way.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable
from enum import Enum
from urllib.parse import urlsplit

from aiohappyeyeballs import AddrInfoType, SocketFactoryType
from aiohttp.abc import AbstractResolver, ResolveResult

from crawlfleet.shared.errors import BlockedAddress, DnsTimeout, GuardError
from crawlfleet.shared.failures import FailureKind
from crawlfleet.shared.settings import SEED_RESOLVE_S
from crawlfleet.workers.dns import Lookups

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_SHARED = ipaddress.ip_network("100.64.0.0/10")  # carrier-grade NAT: private in practice


class Policy(Enum):
    """What a crawl may connect to."""

    PUBLIC = "public"  # public addresses only
    INTERNAL = "internal"  # also loopback and private: the seeds are there
    OPEN = "open"  # everything (--allow-private)


def _literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def _unmapped(ip: IPAddress) -> IPAddress:
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def _kind(ip: IPAddress) -> str:
    """``public``, ``loopback``, ``private``, ``link-local`` or ``reserved``."""
    ip = _unmapped(ip)
    if ip.is_link_local:
        return "link-local"
    if ip.is_loopback:
        return "loopback"
    if ip.is_unspecified or ip.is_multicast or ip.is_reserved:
        return "reserved"
    if ip.is_private or (isinstance(ip, ipaddress.IPv4Address) and ip in _SHARED):
        return "private"
    return "public"


# how often a seed's name that does not resolve is asked again (for Settings.seed_resolve_s)
_RESOLVE_AGAIN_S = 0.5


async def policy_for(seeds: Iterable[str], allow_private: bool, lookups: Lookups) -> Policy:
    """The policy of a crawl from its seed URLs: internal if every address of every seed
    (its host, or what the host resolves to with ``lookups``) is loopback or private; open
    with ``allow_private``; else public."""
    return (await seed_policy(seeds, allow_private, lookups))[0]


async def seed_policy(
    seeds: Iterable[str],
    allow_private: bool,
    lookups: Lookups,
    resolve_for_s: float = SEED_RESOLVE_S,
) -> tuple[Policy, bool]:
    """``policy_for``'s policy, and whether it is settled: a seed that did not resolve (its
    name server slow or not ready yet) leaves an internal crawl public for now, to be asked
    again, where keeping that answer would block the crawl's own hosts for good. A seed's name
    that fails is asked again every 0.5 s for ``resolve_for_s`` (0: asked once)."""
    if allow_private:
        return Policy.OPEN, True
    # each host once, all at once: a crawl's seeds are often many URLs of a few hosts, and its
    # jobs wait for this (a name server that never answers costs the wait of one lookup)
    hosts = dict.fromkeys(urlsplit(seed).hostname or "" for seed in seeds)
    kinds: set[str] = set()
    unresolved = False
    asks = (_resolve_soon(host, lookups, resolve_for_s) for host in hosts)
    for addresses in await asyncio.gather(*asks):
        if addresses is None:
            unresolved = True  # decides nothing: if it resolves later, each connection is checked
        else:
            kinds.update(_kind(ip) for ip in addresses)
    private = kinds <= {"loopback", "private"}
    if kinds and private and not unresolved:
        return Policy.INTERNAL, True
    # a public address settles it; only unresolved seeds beside private ones leave it open
    return Policy.PUBLIC, not (unresolved and private)


async def _resolve_soon(host: str, lookups: Lookups, for_s: float) -> list[IPAddress] | None:
    """A seed host's addresses, asked again while its lookup fails for ``for_s``; None if it
    never resolved."""
    loop = asyncio.get_running_loop()
    until = loop.time() + for_s
    while True:
        try:
            return await _resolve(host, 80, lookups)
        except GuardError:
            if loop.time() + _RESOLVE_AGAIN_S > until:
                return None
        await asyncio.sleep(_RESOLVE_AGAIN_S)


def blocked_reason(ip: IPAddress, policy: Policy) -> str | None:
    """Why ``policy`` forbids connecting to ``ip`` (``10.0.0.1 is private``: the detail of a
    ``BlockedAddress``), or None if it may."""
    kind = _kind(ip)
    if policy is Policy.OPEN or kind == "public":
        return None
    if policy is Policy.INTERNAL and kind in ("loopback", "private"):
        return None
    return f"{ip} is {kind}"


class GuardedResolver(AbstractResolver):
    """aiohttp's resolver for one policy: the host's addresses that the policy allows, looked
    up with ``lookups`` (their own threads, a deadline each: ``workers.dns``)."""

    def __init__(self, policy: Policy, lookups: Lookups) -> None:
        self.policy = policy
        self.lookups = lookups

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        reason = f"{host} has no address"
        allowed: list[ResolveResult] = []
        for ip, info in await _resolve_infos(host, port, family, self.lookups):
            why = blocked_reason(ip, self.policy)
            if why is not None:
                reason = why
                continue
            allowed.append(info)
        if not allowed:
            raise BlockedAddress(reason)
        return allowed

    async def close(self) -> None:
        self.lookups.close()


def guarded_socket(policy: Policy) -> SocketFactoryType:
    """aiohttp's socket factory for one policy: refuses a socket to an address it forbids.

    Called with the address each connection is about to be opened to, resolved or literal."""

    def open_socket(addr_info: AddrInfoType) -> socket.socket:
        family, type_, proto, _, sockaddr = addr_info
        if family not in (socket.AF_INET, socket.AF_INET6):
            raise BlockedAddress("only TCP over IP is crawled")
        why = blocked_reason(ipaddress.ip_address(sockaddr[0]), policy)
        if why is not None:
            raise BlockedAddress(why)
        return socket.socket(family=family, type=type_, proto=proto)

    return open_socket


async def _resolve(host: str, port: int, lookups: Lookups) -> list[IPAddress]:
    return [ip for ip, _ in await _resolve_infos(host, port, socket.AF_UNSPEC, lookups)]


async def _resolve_infos(
    host: str, port: int, family: int, lookups: Lookups
) -> list[tuple[IPAddress, ResolveResult]]:
    """The host's addresses, each with what aiohttp's connector needs to connect to it."""
    literal = _literal(host)
    if literal is not None:
        kind = socket.AF_INET6 if literal.version == 6 else socket.AF_INET
        return [(literal, _result(host, str(literal), port, kind, 0))]
    loop = asyncio.get_running_loop()
    try:
        infos = await lookups.getaddrinfo(host, port, family)
    except DnsTimeout as exc:
        raise GuardError(exc.failure.kind, exc.failure.detail) from exc
    except OSError as exc:
        raise GuardError(FailureKind.DNS, str(exc)) from exc
    found: list[tuple[IPAddress, ResolveResult]] = []
    for af, _, proto, _, sockaddr in infos:
        address = str(sockaddr[0])
        if af == socket.AF_INET6 and len(sockaddr) >= 4 and sockaddr[3]:
            # a scoped (link-local) IPv6 address: getnameinfo gives it with its %zone
            address, _port = await loop.getnameinfo(
                sockaddr, socket.NI_NUMERICHOST | socket.NI_NUMERICSERV
            )
        elif af not in (socket.AF_INET, socket.AF_INET6):
            continue
        ip = ipaddress.ip_address(address)
        if all(ip != seen for seen, _ in found):
            found.append((ip, _result(host, address, port, af, proto)))
    return found


def _result(hostname: str, address: str, port: int, family: int, proto: int) -> ResolveResult:
    return ResolveResult(
        hostname=hostname,
        host=address,
        port=port,
        family=family,
        proto=proto,
        flags=socket.AI_NUMERICHOST | socket.AI_NUMERICSERV,
    )
