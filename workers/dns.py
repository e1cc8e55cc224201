"""Name lookups: in threads of their own, each given up after a deadline.

The system resolver (``getaddrinfo``) blocks a thread until it has an answer or gives up by
its own rules (resolv.conf's timeout and attempts: 10 s or more per name server), and a
cancelled await does not stop that thread. asyncio runs lookups in its default executor, the
one every ``asyncio.to_thread`` shares (a handful of threads on a small machine): a few names
whose server never answers would hold all of it, and every other lookup and thread hand-off of
the worker would queue behind them. So lookups get a pool of their own, and each await of one
ends at its deadline (the fetch records ``dns timeout: ...``) while its thread runs out.
"""

from __future__ import annotations

import asyncio
import functools
import socket
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from crawlfleet.shared.errors import DnsTimeout

# lookups running at once per pool: those past their deadline keep a thread until the system
# resolver gives up, so there is room for many of them beside the lookups that answer
DNS_THREADS = 64

AddrInfo = tuple[Any, ...]


class Lookups:
    """``getaddrinfo`` in a pool of ``threads``, each await ended after ``timeout_s``."""

    def __init__(self, timeout_s: float, threads: int = DNS_THREADS) -> None:
        self.timeout_s = timeout_s
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="crawlfleet-dns")

    async def getaddrinfo(self, host: str, port: int, family: int) -> list[AddrInfo]:
        """The addresses of ``host`` (TCP); raises DnsTimeout past the deadline, OSError for
        what the resolver says (no such name, ...)."""
        loop = asyncio.get_running_loop()
        call = functools.partial(
            socket.getaddrinfo, host, port, family=family, type=socket.SOCK_STREAM
        )
        try:
            async with asyncio.timeout(self.timeout_s):
                return await loop.run_in_executor(self._pool, call)
        except TimeoutError:
            raise DnsTimeout(f"no answer for {host} in {self.timeout_s:g}s") from None

    def close(self) -> None:
        """Stop taking lookups; threads still waiting on the resolver end on their own."""
        self._pool.shutdown(wait=False, cancel_futures=True)
