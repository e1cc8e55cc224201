"""Name lookups for tests: the system's, but a name server that is slow to answer at first."""

from __future__ import annotations

from crawlfleet.shared.errors import DnsTimeout
from crawlfleet.workers.dns import AddrInfo, Lookups


class LateLookups(Lookups):
    """The system's lookups, but the first ``late`` asks for ``name`` get no answer within
    their deadline (a name server just started, as a compose network's may be): they fail
    as ``Lookups`` fails an ask its deadline ended, without the wait."""

    def __init__(self, name: str, late: int, timeout_s: float = 10.0) -> None:
        super().__init__(timeout_s)
        self.name = name
        self.late = late
        self.asked = 0  # asks for the name, late ones included

    async def getaddrinfo(self, host: str, port: int, family: int) -> list[AddrInfo]:
        if host == self.name:
            self.asked += 1
            if self.asked <= self.late:
                raise DnsTimeout(f"no answer for {host} in {self.timeout_s:g}s")
        return await super().getaddrinfo(host, port, family)
