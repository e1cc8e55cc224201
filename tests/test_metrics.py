"""Prometheus metrics: a worker process serving them on its port counts what it crawled, a
worker serves none unless asked, `run` gives each of its workers a port of its own, and the
Grafana dashboard asks only for what workers export."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest
from prometheus_client.parser import text_string_to_metric_families

from crawlfleet.scheduler.control import seed_crawl
from crawlfleet.shared.connections import connected
from crawlfleet.shared.crawl import CrawlSpec, CrawlState
from crawlfleet.shared.settings import Settings
from crawlfleet.workers.metrics import WorkerMetrics
from tests.support.crawling import read_manifest, wait_done
from tests.support.promql import dashboard_queries, grouping_labels, metric_names
from tests.support.testweb import Page, Site, TestWeb, free_port

pytestmark = pytest.mark.slow

DEADLINE_S = 90.0


@dataclass(frozen=True)
class Scrape:
    """One scrape of /metrics: the text, and every sample by name and labels."""

    text: str
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float]

    def value(self, name: str, **labels: str) -> float | None:
        return self.samples.get((name, frozenset(labels.items())))

    def total(self, name: str) -> float:
        """The sum of a metric's samples over all its label sets."""
        return sum(v for (n, _), v in self.samples.items() if n == name)

    def labels_of(self, name: str) -> set[str]:
        return {k for (n, labels), _ in self.samples.items() if n == name for k, _ in labels}

    def families(self) -> set[str]:
        """Every sample name the exposition declares (``# TYPE``), with its type's suffixes."""
        names: set[str] = set()
        suffixes = {"counter": ["_total", "_created"], "histogram": ["_bucket", "_count",
                    "_sum", "_created"], "info": ["_info"]}  # fmt: skip
        for match in re.finditer(r"^# TYPE (\S+) (\S+)$", self.text, re.MULTILINE):
            name, kind = match.groups()
            names.add(name)
            names.update(name.removesuffix("_total") + s for s in suffixes.get(kind, []))
        return names


def scrape(port: int) -> Scrape:
    """GET /metrics of the worker on 127.0.0.1:``port``."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    samples = {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    return Scrape(text, samples)


def scrape_when(
    port: int, ready: Callable[[Scrape], bool], alive: Callable[[], bool] = lambda: True
) -> Scrape:
    """Scrape until ``ready`` holds (the server may not be up yet)."""
    deadline = time.monotonic() + DEADLINE_S
    last: Scrape | None = None
    while time.monotonic() < deadline:
        assert alive(), "the worker exited"
        try:
            last = scrape(port)
        except (urllib.error.URLError, ConnectionError):
            pass
        else:
            if ready(last):
                return last
        time.sleep(0.1)
    raise AssertionError(f"not ready in {DEADLINE_S:g}s; last scrape:\n{last and last.text}")


def free_ports(count: int) -> int:
    """The first of ``count`` consecutive ports free on 127.0.0.1 right now."""
    while True:
        first = free_port()
        try:
            for port in range(first + 1, first + count):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", port))
        except OSError:
            continue
        return first


@pytest.fixture
def slow_settings(settings: Settings) -> Settings:
    """The test settings with timeouts past a held page's longest hold."""
    return settings.model_copy(update={"total_timeout": 150.0, "read_timeout": 150.0})


def worker_process(settings: Settings, *args: str) -> subprocess.Popen[bytes]:
    """`crawlfleet worker ARGS` with ``settings`` in its environment."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        **settings.to_env(),
        "CRAWLFLEET_LOG_FILE": str(settings.data_dir / "w.log"),
    }
    return subprocess.Popen(
        [sys.executable, "-m", "crawlfleet.scheduler", "worker", *args],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


@pytest.fixture
def stop_at_end() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Processes that the test stops (SIGTERM, then SIGKILL) however it ends."""
    procs: list[subprocess.Popen[bytes]] = []
    yield procs
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()


@dataclass(frozen=True)
class MeteredCrawl:
    during: Scrape  # the slow page in flight, every other page closed
    after: Scrape  # the crawl done
    requests: list[str]  # what the test web was asked for
    bytes: int  # the crawl's byte counter
    records: list[dict[str, object]]


async def metered_crawl(
    web: TestWeb, settings: Settings, procs: list[subprocess.Popen[bytes]]
) -> MeteredCrawl:
    """Crawl a page linking to two pages, a 404, a refused address and a page held until
    the worker's metrics show it as the one page in flight, with a worker process serving
    its metrics on 127.0.0.1."""
    hold = threading.Event()
    u = lambda path: web.url(0, path)  # noqa: E731
    refused = f"http://127.0.0.1:{free_port()}/refused"
    web.site = Site(
        {
            u("/"): Page(hrefs=["/a", "/b", "/missing", "/slow", refused]),
            u("/a"): Page(),
            u("/b"): Page(),
            u("/slow"): Page(hold=hold),
        }
    )
    port = free_port()
    worker = worker_process(
        settings.model_copy(update={"worker_id": "metered"}),
        "--metrics-port", str(port), "--metrics-host", "127.0.0.1",
    )  # fmt: skip
    procs.append(worker)
    alive = lambda: worker.poll() is None  # noqa: E731
    spec = CrawlSpec(
        crawl_id="m", seeds=[u("/")], depth=1, scope="any", obey_robots=False, retries=0
    )
    try:
        scrape_when(port, lambda s: s.value("crawlfleet_worker_info", worker="metered") == 1.0,
                    alive)  # fmt: skip
        async with connected(settings.redis_url) as redis:
            await seed_crawl(redis, settings, spec)
        during = scrape_when(
            port,
            lambda s: (
                s.value("crawlfleet_requests_in_flight") == 1.0
                and s.value("crawlfleet_crawl_pending_urls", crawl="m") == 1.0
                and s.value("crawlfleet_queue_jobs") == 1.0
            ),
            alive,
        )
    finally:
        hold.set()
    status = await wait_done(settings, "m", timeout=DEADLINE_S)
    assert status.state is CrawlState.DONE
    after = scrape_when(
        port,
        lambda s: (
            s.value("crawlfleet_crawl_pending_urls", crawl="m") is None
            and s.value("crawlfleet_queue_jobs") == 0.0
        ),
        alive,
    )
    return MeteredCrawl(
        during=during,
        after=after,
        requests=web.requested(),
        bytes=status.counters.bytes,
        records=read_manifest(settings.data_dir, "m"),
    )


async def test_a_worker_counts_what_it_crawled(
    web: TestWeb, slow_settings: Settings, stop_at_end: list[subprocess.Popen[bytes]]
) -> None:
    """A worker serving its metrics counts pages by status class, failures by reason, body
    bytes and one latency per request; the in-flight gauge and the crawl's pending URLs follow
    the crawl, and both fall back when it ends."""
    crawl = await metered_crawl(web, slow_settings, stop_at_end)
    during, after = crawl.during, crawl.after
    assert during.value("crawlfleet_pages_total", crawl="m", status="2xx") == 3.0
    assert after.value("crawlfleet_pages_total", crawl="m", status="2xx") == 4.0
    assert after.value("crawlfleet_pages_total", crawl="m", status="4xx") == 1.0
    assert after.value("crawlfleet_pages_total", crawl="m", status="none") == 1.0
    assert after.total("crawlfleet_pages_total") == len(crawl.records) == 6
    assert after.value("crawlfleet_failures_total", crawl="m", reason="http 404") == 1.0
    assert after.value("crawlfleet_failures_total", crawl="m", reason="connect") == 1.0
    assert after.total("crawlfleet_failures_total") == 2.0
    assert after.value("crawlfleet_received_bytes_total", crawl="m") == crawl.bytes > 0
    assert crawl.bytes == sum(int(r["length"]) for r in crawl.records)  # type: ignore[call-overload]
    # every request the test web answered, and the one refused on its way
    assert len(crawl.requests) == 5
    assert after.value("crawlfleet_fetch_duration_seconds_count") == 6.0
    assert after.value("crawlfleet_fetch_duration_seconds_bucket", le="+Inf") == 6.0
    assert during.value("crawlfleet_fetch_duration_seconds_count") == 5.0
    assert after.value("crawlfleet_requests_in_flight") == 0.0
    assert after.value("crawlfleet_worker_info", worker="metered") == 1.0
    assert (after.value("process_cpu_seconds_total") or 0) > 0


async def test_the_dashboard_asks_only_for_what_workers_export(
    web: TestWeb, slow_settings: Settings, stop_at_end: list[subprocess.Popen[bytes]]
) -> None:
    """Every panel of the Grafana dashboard has a query, and each query names only metrics a
    live worker exports and groups only by labels they carry."""
    crawl = await metered_crawl(web, slow_settings, stop_at_end)
    exported = crawl.during.families()
    queries = dashboard_queries()
    assert len(queries) >= 6
    for panel, expr in queries:
        names = metric_names(expr)
        assert names, (panel, expr)
        assert names <= exported, (panel, names - exported)
        labels = set().union(*(crawl.during.labels_of(n) for n in names))
        # Prometheus adds instance and job to every series it scrapes
        assert grouping_labels(expr) <= labels | {"le", "instance", "job"}, (panel, expr)


def test_queries_are_read_for_every_name_and_label() -> None:
    """The dashboard test's PromQL reading finds each metric and label of a query, and no
    function, keyword or label value."""
    expr = (
        'sum by (worker) (rate(process_cpu_seconds_total{crawl=~"$crawl"}[$__rate_interval]) '
        "* on (instance, job) group_left (worker) crawlfleet_worker_info) > bool 0"
    )
    assert metric_names(expr) == {"process_cpu_seconds_total", "crawlfleet_worker_info"}
    assert grouping_labels(expr) == {"worker", "instance", "job", "crawl"}


def test_no_metrics_unless_asked(
    settings: Settings, stop_at_end: list[subprocess.Popen[bytes]]
) -> None:
    """A worker started without a metrics port listens on no TCP port at all."""
    worker = worker_process(settings)
    stop_at_end.append(worker)
    log = settings.data_dir / "w.log"
    deadline = time.monotonic() + DEADLINE_S
    while '"worker started"' not in (log.read_text() if log.exists() else ""):
        assert worker.poll() is None and time.monotonic() < deadline, worker.stderr
        time.sleep(0.05)
    listening = [c for c in psutil.Process(worker.pid).net_connections(kind="inet")
                 if c.status == psutil.CONN_LISTEN]  # fmt: skip
    assert listening == []
    assert '"metrics"' not in log.read_text()


def test_a_taken_metrics_port_is_one_error_line(settings: Settings) -> None:
    """A worker whose metrics port is taken says so in one line and does not start: exit 1,
    from `crawlfleet worker` and from the process `run` starts."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {**os.environ, **settings.to_env(), "CRAWLFLEET_METRICS_HOST": "127.0.0.1"}
        for command, code in (
            (["-m", "crawlfleet.scheduler", "worker", "--metrics-port", str(port)], 1),
            (["-m", "crawlfleet.workers"], 1),
        ):
            env["CRAWLFLEET_METRICS_PORT"] = str(port)
            done = subprocess.run(
                [sys.executable, *command], env=env, capture_output=True, text=True, timeout=60
            )
            lines = done.stderr.strip().splitlines()
            assert done.returncode == code and len(lines) == 1, done.stderr
            assert (
                lines[0]
                == f"error: cannot serve metrics on 127.0.0.1:{port}: Address already in use"
            )


def test_each_worker_process_has_a_registry_of_its_own() -> None:
    """Two WorkerMetrics in one process count apart (a test may hold several)."""
    first, second = WorkerMetrics("one"), WorkerMetrics("two")
    first.in_flight.inc()
    assert first.registry.get_sample_value("crawlfleet_requests_in_flight") == 1.0
    assert second.registry.get_sample_value("crawlfleet_requests_in_flight") == 0.0


def run_process(*args: str) -> subprocess.Popen[bytes]:
    """`crawlfleet run ARGS` with its own Redis, its held pages given time."""
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    env |= {"CRAWLFLEET_TOTAL_TIMEOUT": "150", "CRAWLFLEET_READ_TIMEOUT": "150"}
    return subprocess.Popen(
        [sys.executable, "-m", "crawlfleet.scheduler", "run", *args],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def test_run_gives_each_worker_a_metrics_port(
    web: TestWeb, tmp_path: Path, stop_at_end: list[subprocess.Popen[bytes]]
) -> None:
    """`run --metrics-port N` serves worker k's metrics on port N+k-1 and says so; their
    latencies count every request, robots.txt included."""
    hold = threading.Event()
    u = lambda path: web.url(0, path)  # noqa: E731
    web.site = Site({u("/"): Page(hrefs=["/a", "/slow"]), u("/a"): Page(),
                     u("/slow"): Page(hold=hold)})  # fmt: skip
    port = free_ports(2)
    run = run_process(
        u("/"), "--depth", "1", "--workers", "2", "--data-dir", str(tmp_path / "data"),
        "--metrics-port", str(port), "--metrics-host", "127.0.0.1",
    )  # fmt: skip
    stop_at_end.append(run)
    alive = lambda: run.poll() is None  # noqa: E731
    try:
        for index in (1, 2):
            worker = f"local-{index}"
            found = scrape_when(port + index - 1, lambda s: s.total("crawlfleet_worker_info") == 1,
                                alive)  # fmt: skip
            assert found.value("crawlfleet_worker_info", worker=worker) == 1, found.text
        deadline = time.monotonic() + DEADLINE_S
        while True:
            # the slow page in flight, every other request answered and timed
            scrapes = [scrape(port), scrape(port + 1)]
            asked = web.requested()
            in_flight = sum(s.total("crawlfleet_requests_in_flight") for s in scrapes)
            timed = sum(s.total("crawlfleet_fetch_duration_seconds_count") for s in scrapes)
            if u("/slow") in asked and in_flight == 1 and timed == len(asked) - 1:
                break
            assert alive() and time.monotonic() < deadline, (asked, in_flight, timed)
            time.sleep(0.1)
    finally:
        hold.set()
    assert u("/robots.txt") in asked
    _, err = run.communicate(timeout=DEADLINE_S)
    assert run.returncode == 0, err.decode()
    assert f"metrics on 127.0.0.1:{port}-{port + 1}" in err.decode()


def test_run_checks_its_metrics_ports_first(tmp_path: Path) -> None:
    """`run` whose workers' metrics ports are not all free says which in one line and
    starts no worker."""
    port = free_ports(2)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port + 1))
        taken.listen()
        run = run_process(
            "http://127.0.0.2:9/", "--workers", "2", "--data-dir", str(tmp_path),
            "--metrics-port", str(port), "--metrics-host", "127.0.0.1",
        )  # fmt: skip
        _, err = run.communicate(timeout=DEADLINE_S)
    lines = err.decode().strip().splitlines()
    assert run.returncode == 1 and len(lines) == 1, err.decode()
    assert (
        lines[0] == f"error: cannot serve metrics on 127.0.0.1:{port + 1}: Address already in use"
    )
    # the log files were checked for writing; no worker wrote to one
    assert all(log.stat().st_size == 0 for log in (tmp_path / "logs").iterdir())
    last = run_process("http://127.0.0.2:9/", "--workers", "2", "--data-dir", str(tmp_path),
                       "--metrics-port", "65535")  # fmt: skip
    _, err = last.communicate(timeout=DEADLINE_S)
    assert last.returncode == 2
    assert err.decode().splitlines() == ["error: --metrics-port 65535 leaves no port for worker 2"]
