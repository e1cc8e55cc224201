"""The synthetic server's own ceiling: how many requests a second it answers, and at what CPU.

Load comes from :mod:`bench.load` (Python, keep-alive, raw sockets) in ``clients`` processes of
``connections`` connections each, cycling over the URLs a crawl fetches, bounded in requests and
seconds; ``wrk`` is used as well when it is installed. On a 2-core machine the Python clients
are themselves CPU-bound, so the measured rate is a lower bound of the server's; the server's
CPU per request gives its ceiling on one core (``1 / cpu_per_request``), which is what a crawl
competes with.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench.measure import CpuMeter


@dataclass
class Ceiling:
    what: str
    requests: int = 0
    seconds: float = 0.0
    errors: int = 0
    server_cpu_s: float = 0.0
    wrk_requests_per_s: float | None = None
    error: str | None = None

    @property
    def requests_per_s(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def server_us_per_request(self) -> float:
        return self.server_cpu_s * 1e6 / self.requests if self.requests else 0.0

    @property
    def one_core_ceiling(self) -> float:
        cpu = self.server_cpu_s / self.requests if self.requests else 0.0
        return 1 / cpu if cpu else 0.0

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.update(
            requests_per_s=round(self.requests_per_s),
            server_us_per_request=round(self.server_us_per_request, 1),
            one_core_ceiling_requests_per_s=round(self.one_core_ceiling),
        )
        return data

    def line(self) -> str:
        wrk = f", wrk {self.wrk_requests_per_s:,.0f} req/s" if self.wrk_requests_per_s else ""
        return (
            f"{self.what}: {self.requests_per_s:,.0f} req/s measured with {self.requests:,} "
            f"requests{wrk}; server CPU {self.server_us_per_request:.0f} us/request, "
            f"so about {self.one_core_ceiling:,.0f} req/s on one core"
        )


def _load(
    urls_file: Path, clients: int, connections: int, requests: int, seconds: float
) -> dict[str, float]:
    cmd = [
        sys.executable, "-m", "bench.load", str(urls_file),
        "--connections", str(connections),
        "--requests", str(requests),
        "--seconds", str(seconds),
    ]  # fmt: skip
    procs = [
        subprocess.Popen(cmd, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
        for _ in range(clients)
    ]
    totals = {"requests": 0.0, "errors": 0.0, "seconds": 0.0}
    try:
        for proc in procs:
            out, _ = proc.communicate(timeout=seconds + 30)
            data = json.loads(out.strip().splitlines()[-1])
            totals["requests"] += data["requests"]
            totals["errors"] += data["errors"]
            totals["seconds"] = max(totals["seconds"], data["seconds"])
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return totals


def _wrk(url: str, seconds: float, connections: int) -> float | None:
    wrk = shutil.which("wrk")
    if wrk is None:
        return None
    done = subprocess.run(
        [wrk, "-t2", f"-c{connections}", f"-d{max(1, int(seconds))}s", url],
        capture_output=True,
        text=True,
        timeout=seconds + 30,
    )
    match = re.search(r"Requests/sec:\s+([\d.]+)", done.stdout)
    return float(match.group(1)) if match else None


def measure_ceiling(
    what: str,
    server_pid: int,
    urls: list[str],
    requests: int,
    seconds: float,
    clients: int = 2,
    connections: int = 32,
) -> Ceiling:
    """Warm the server up on ``urls``, then load it with at most ``requests`` in ``seconds``."""
    result = Ceiling(what=what)
    with tempfile.TemporaryDirectory(prefix="bench-load-") as tmp:
        urls_file = Path(tmp) / "urls.txt"
        urls_file.write_text("\n".join(urls))
        try:
            _load(urls_file, 1, 8, len(urls), seconds)  # renders and caches every page once
            meter = CpuMeter([server_pid]).start()
            totals = _load(urls_file, clients, connections, requests // clients, seconds)
            result.server_cpu_s = meter.stop()
            result.requests = int(totals["requests"])
            result.errors = int(totals["errors"])
            result.seconds = totals["seconds"]
            result.wrk_requests_per_s = _wrk(urls[0], min(seconds, 5), connections)
        except (subprocess.SubprocessError, OSError, ValueError, KeyError) as exc:
            result.error = f"{type(exc).__name__}: {exc}"
    return result
