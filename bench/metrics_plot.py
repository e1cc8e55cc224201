"""``python -m bench.metrics_plot [OUT.png]``: the workers' Prometheus metrics over one crawl,
plotted (the picture in the README's Metrics section).

A `crawlfleet run` of the synthetic web on loopback (4 hosts, 400 ms a response, depth 5) with
``--metrics-port``; both workers' ``/metrics`` are scraped every second, as Prometheus
would, and three panels of the Grafana dashboard are drawn from the samples with matplotlib:
pages per second by worker, fetch latency (p50 and p95 from the histogram), requests in
flight. matplotlib comes with the bench extra.
"""

from __future__ import annotations

import argparse
import itertools
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from bench.server import ServerProcess
from tests.support.synthetic import SiteConfig, SyntheticSite

SITE = SiteConfig(seed=5, hosts=4, pages_per_host=1000, links_per_page=12, page_bytes=8192,
                  latency_s=0.4, window=40)  # fmt: skip
DEPTH = 5
WORKERS = 2
SCRAPE_EVERY_S = 1.0
DEFAULT_OUT = Path(__file__).resolve().parent.parent / "docs" / "metrics.png"


@dataclass
class Sample:
    """One scrape of one worker: seconds since the start and the figures read."""

    at: float
    pages: float
    in_flight: float
    buckets: dict[float, float] = field(default_factory=dict)  # le -> cumulative count


def _free_port_pair() -> int:
    """A port N with N and N+1 free on loopback (run gives worker k port N+k-1)."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        try:
            with socket.socket() as s:
                s.bind(("127.0.0.1", port + 1))
            return port
        except OSError:
            continue
    raise RuntimeError("no two free ports next to each other")


def scrape(port: int, at: float) -> Sample | None:
    """One worker's figures, or None if it does not answer (yet, or any more)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as reply:
            text = reply.read().decode()
    except OSError:
        return None
    sample = Sample(at=at, pages=0.0, in_flight=0.0)
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == "crawlfleet_pages_total":
                sample.pages += s.value
            elif s.name == "crawlfleet_requests_in_flight":
                sample.in_flight = s.value
            elif s.name == "crawlfleet_fetch_duration_seconds_bucket":
                le = float(s.labels["le"])
                sample.buckets[le] = sample.buckets.get(le, 0.0) + s.value
    return sample


def quantile(q: float, before: dict[float, float], after: dict[float, float]) -> float | None:
    """``histogram_quantile`` over the increase of the buckets between two scrapes."""
    bounds = sorted(after)
    counts = [after[b] - before.get(b, 0.0) for b in bounds]
    total = counts[-1] if counts else 0.0
    if total <= 0:
        return None
    rank, lower, below = q * total, 0.0, 0.0
    for bound, count in zip(bounds, counts, strict=True):
        if count >= rank:
            if bound == float("inf"):
                return lower
            width = count - below
            return lower + (bound - lower) * ((rank - below) / width if width else 1.0)
        lower, below = bound, count
    return lower


def crawl_and_scrape(work: Path) -> dict[int, list[Sample]]:
    """Run the crawl, scraping each worker until the run ends; the samples per worker."""
    port = _free_port_pair()
    samples: dict[int, list[Sample]] = {k: [] for k in range(WORKERS)}
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    with ServerProcess.synthetic(SITE) as server:
        seeds = SyntheticSite(SITE, server.port).seeds()
        run = subprocess.Popen(
            [sys.executable, "-m", "crawlfleet.scheduler", "run", *seeds, "--depth", str(DEPTH),
             "--workers", str(WORKERS), "--metrics-port", str(port), "--metrics-host",
             "127.0.0.1", "--data-dir", str(work / "data")],
            env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        began = time.monotonic()
        try:
            while run.poll() is None and time.monotonic() - began < 300:
                at = time.monotonic() - began
                for k in range(WORKERS):
                    sample = scrape(port + k, at)
                    if sample is not None:
                        samples[k].append(sample)
                time.sleep(SCRAPE_EVERY_S)
        finally:
            if run.poll() is None:
                run.kill()
            run.wait()
    return samples


def plot(samples: dict[int, list[Sample]], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (rate, latency, flight) = plt.subplots(3, 1, figsize=(8, 7.5), sharex=True)
    for k, series in samples.items():
        pairs = list(itertools.pairwise(series))
        at = [b.at for _, b in pairs]
        rate.plot(at, [(b.pages - a.pages) / (b.at - a.at) for a, b in pairs],
                  label=f"worker {k + 1}")  # fmt: skip
        flight.plot([s.at for s in series], [s.in_flight for s in series], label=f"worker {k + 1}")
    merged = _merged(samples)
    pairs = list(itertools.pairwise(merged))
    for q, style in ((0.5, "-"), (0.95, "--")):
        points = [(b.at, quantile(q, a.buckets, b.buckets)) for a, b in pairs]
        xs = [at for at, v in points if v is not None]
        ys = [v * 1000 for _, v in points if v is not None]
        latency.plot(xs, ys, style, label=f"p{int(q * 100)}")
    rate.set_ylabel("pages/s")
    rate.set_title("crawlfleet_pages_total, rate by worker")
    latency.set_ylabel("ms")
    latency.set_title("crawlfleet_fetch_duration_seconds, both workers")
    flight.set_ylabel("requests")
    flight.set_title("crawlfleet_requests_in_flight")
    flight.set_xlabel("seconds since the run started")
    for axes in (rate, latency, flight):
        axes.legend(loc="upper right")
        axes.grid(alpha=0.3)
    fig.suptitle(
        f"crawlfleet run: {SITE.hosts} hosts, {int(SITE.latency_s * 1000)} ms a response, "
        f"depth {DEPTH}, {WORKERS} workers, scraped every {SCRAPE_EVERY_S} s"
    )
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=80)


def _merged(samples: dict[int, list[Sample]]) -> list[Sample]:
    """The workers' histograms summed per scrape round (the rounds they both answered)."""
    rounds = min(len(s) for s in samples.values())
    merged = []
    for i in range(rounds):
        parts = [samples[k][i] for k in samples]
        buckets: dict[float, float] = {}
        for part in parts:
            for le, n in part.buckets.items():
                buckets[le] = buckets.get(le, 0.0) + n
        merged.append(Sample(at=parts[0].at, pages=0.0, in_flight=0.0, buckets=buckets))
    return merged


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.metrics_plot", description=__doc__)
    parser.add_argument("out", nargs="?", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="crawlfleet-metrics-") as work:
        samples = crawl_and_scrape(Path(work))
    if any(len(s) < 3 for s in samples.values()):
        print("too few scrapes: the crawl ended too soon", file=sys.stderr)
        return 1
    plot(samples, args.out)
    print(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
