"""The network guard: which addresses a crawl may connect to, enforced at connection time.

A crawl of public sites must not be turned against the network it runs in: it may not fetch
loopback, private (RFC 1918, unique-local, shared 100.64/10), unspecified, multicast or reserved
addresses. A crawl whose seeds are on loopback or private addresses (by address, or by what
their name resolves to) is internal and may fetch those. No crawl fetches link-local addresses
(169.254/16, where cloud metadata lives, and fe80::/10) unless it was seeded with
``--allow-private``, which allows everything.

The check is made on the address the connection is actually opened to: the guarded network
backend resolves the host itself, checks every address, and connects to the checked address, so
DNS rebinding cannot slip another address in, and every redirect hop is checked the same way.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable
from enum import Enum
from typing import Any
from urllib.parse import urlsplit

import httpcore

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_SHARED = ipaddress.ip_network("100.64.0.0/10")  # carrier-grade NAT: private in practice
BLOCKED_PREFIX = "blocked address"


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


async def policy_for(seeds: Iterable[str], allow_private: bool) -> Policy:
    """The policy of a crawl from its seed URLs: internal if a seed's host is, or resolves
    to, a loopback or private address; open with ``allow_private``."""
    if allow_private:
        return Policy.OPEN
    for seed in seeds:
        host = urlsplit(seed).hostname or ""
        try:
            addresses = await _resolve(host, 80)
        except httpcore.ConnectError:
            continue  # a seed that does not resolve makes nothing internal
        if any(_kind(ip) in ("loopback", "private") for ip in addresses):
            return Policy.INTERNAL
    return Policy.PUBLIC


def blocked_reason(ip: IPAddress, policy: Policy) -> str | None:
    """Why ``policy`` forbids connecting to ``ip``, or None if it may."""
    kind = _kind(ip)
    if policy is Policy.OPEN or kind == "public":
        return None
    if policy is Policy.INTERNAL and kind in ("loopback", "private"):
        return None
    return f"{BLOCKED_PREFIX}: {ip} is {kind}"


class BlockedAddress(httpcore.ConnectError):
    """Every address of the host is forbidden by the crawl's policy (httpx: ConnectError)."""


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network backend, resolving and checking each connection's address first."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        addresses = await _resolve(host, port)
        reason = f"{BLOCKED_PREFIX}: {host} has no address"
        for ip in addresses:
            why = blocked_reason(ip, self.policy)
            if why is not None:
                reason = why
                continue
            # connect to the address just checked, not to the name: no second lookup
            return await self._inner.connect_tcp(
                str(ip), port, timeout, local_address, socket_options
            )
        raise BlockedAddress(reason)

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise BlockedAddress(f"{BLOCKED_PREFIX}: unix sockets are not crawled")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


async def _resolve(host: str, port: int) -> list[IPAddress]:
    literal = _literal(host)
    if literal is not None:
        return [literal]
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise httpcore.ConnectError(f"dns: {exc}") from exc
    addresses: list[IPAddress] = []
    for *_, sockaddr in infos:
        ip = ipaddress.ip_address(sockaddr[0])
        if ip not in addresses:
            addresses.append(ip)
    return addresses
