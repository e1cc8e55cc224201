"""docker-compose.yml end to end: build, Redis + 3 workers + a test web, crawls, scaling to 5.

Runs only with ``--run-compose`` (``make compose-e2e``). One compose project (a unique ``-p``)
serves the whole module and is removed with its volumes at the end, whatever happens.
"""

from __future__ import annotations

import json
import secrets
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.compose import testsite
from tests.compose.stack import Stack, find_compose_tool

# requests in flight per worker: small, so that a crawl needs every worker (a worker holds twice
# as many page jobs: at 1, the 3 workers' 6 are fewer than the test host's 8 slots, where at 2
# two workers could hold all 8 and leave the third nothing)
CONCURRENCY = 1
SMALL_DEPTH = 3
SLOW_DEPTH = 5
SITE = testsite.build_site()

pytestmark = pytest.mark.timeout(1200)


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    """The built image running as redis, 3 workers and testweb; ``down -v`` afterwards."""
    tool = find_compose_tool()
    if tool is None:
        pytest.skip(
            "compose e2e: no compose tool (neither `docker compose` with a running engine "
            "nor ../shared/tools/container-sandbox)"
        )
    s = Stack(tool, project=f"cfe2e{secrets.token_hex(4)}", concurrency=CONCURRENCY)
    try:
        s.compose("build", timeout=900)
        s.compose("up", "-d", "--scale", "worker=3", timeout=600)
        s.wait_healthy("testweb", 1)
        s.wait_healthy("worker", 3)
        yield s
    finally:
        s.down()


def _events(stack: Stack) -> list[dict[str, Any]]:
    """Every worker log line, each of which must be a JSON object with an event."""
    events = []
    lines = stack.logs("worker")
    for i, line in enumerate(lines):
        try:
            event = json.loads(line)
        except ValueError:
            context = "\n".join(lines[max(0, i - 3) : i + 40])
            pytest.fail(f"a worker log line is not JSON: {line!r}; around it:\n{context}")
        assert isinstance(event, dict) and "event" in event, f"not a log event: {line!r}"
        events.append(event)
    return events


def _page_events(stack: Stack, crawl_id: str) -> list[dict[str, Any]]:
    return [
        e
        for e in _events(stack)
        if e.get("crawl_id") == crawl_id and e["event"] in ("page fetched", "page failed")
    ]


def _check_stored_exactly_once(
    stack: Stack, crawl_id: str, expected: dict[str, int], workers: set[str]
) -> list[dict[str, Any]]:
    """The manifest holds each expected URL once at its shortest depth, and the volume holds
    the workers' record logs and one body per URL that is not a redirect; returns the
    records."""
    mark = "=== files ==="
    out = stack.shell(
        'cd "/data/$1" && cat manifest.jsonl && echo "$2" && find pages records -type f',
        crawl_id,
        mark,
    )
    manifest, _, files = out.partition(mark + "\n")
    records = [json.loads(line) for line in manifest.splitlines() if line.strip()]
    urls = [r["url"] for r in records]
    duplicates = sorted({u for u in urls if urls.count(u) > 1})
    assert not duplicates, f"URLs in the manifest more than once: {duplicates}"
    got = {r["url"]: r["depth"] for r in records}
    missing = sorted(set(expected) - set(got))
    extra = sorted(set(got) - set(expected))
    stored = [(r["url"], r["depth"], r["status"], r["error"], r["worker"]) for r in records]
    assert not missing and not extra, f"missing {missing}, not expected {extra}; got {stored}"
    wrong_depth = {u: (got[u], d) for u, d in expected.items() if got[u] != d}
    assert not wrong_depth, f"(recorded, shortest) depths differ: {wrong_depth}"
    for r in records:
        page = SITE[r["url"]]
        assert (r["status"], r["final_url"]) == (page.status, r["url"]), r
        assert r["redirect"] == page.redirect_to, r  # a redirect's target: a URL of its own
        assert r["worker"] in workers, r
    on_disk = [f for f in files.splitlines() if f.strip()]
    bodies = sorted(f for f in on_disk if f.startswith("pages/"))
    paths = sorted(r["path"] for r in records if r["path"] is not None)  # none for a redirect
    assert bodies == paths, "bodies on the volume != manifest paths"
    logs = [f for f in on_disk if f.startswith("records/")]
    # the metadata records: a log per worker process that stored a page, nothing else
    assert logs and all(f.endswith(".jsonl.gz") for f in logs), logs
    assert len(logs) + len(bodies) == len(on_disk), on_disk
    return records


def _pages_counted(stack: Stack, container: str, crawl_id: str) -> float:
    """The pages of a crawl that a worker replica's /metrics counts, read on the host port
    its container port 9108 is published on."""
    published = stack.engine("port", container, "9108").stdout.split()
    assert published, f"{container}: metrics port 9108 not published"
    port = published[0].rsplit(":", 1)[1]
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as response:
        text = response.read().decode()
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "crawlfleet_pages_total" and sample.labels["crawl"] == crawl_id
    )


def _wait_done(stack: Stack, crawl_id: str, timeout: float = 600) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        status = stack.status(crawl_id)
        if status["state"] != "running":
            return status
        assert time.monotonic() < deadline, f"crawl still running after {timeout}s: {status}"
        time.sleep(2)


def test_up_starts_redis_workers_and_testweb_but_not_the_cli(stack: Stack) -> None:
    """`up` runs Redis (AOF on, no host port) and healthy non-root workers, never the CLI."""
    assert stack.containers("scheduler") == []
    (redis,) = stack.containers("redis")
    assert stack.engine("port", redis).stdout.strip() == "", "Redis is published on the host"
    aof = stack.compose("exec", "-T", "redis", "redis-cli", "config", "get", "appendonly")
    assert aof.stdout.split() == ["appendonly", "yes"]
    workers = stack.wait_healthy("worker", 3)
    hostnames = {stack.hostname(w) for w in workers}
    assert len(hostnames) == 3
    started = [e for e in _events(stack) if e["event"] == "worker started"]
    # each replica runs under its own hostname as worker id, with the concurrency from the env
    assert {e["worker"] for e in started} == hostnames
    assert {e["concurrency"] for e in started} == {CONCURRENCY}
    # the CLI's user may write to the data volume
    out = stack.shell("id -u; touch /data/.probe && rm /data/.probe && echo writable")
    assert out.split() == ["10001", "writable"]


def test_seed_wait_crawls_the_exact_page_set_over_three_workers(stack: Stack) -> None:
    """`run --rm scheduler seed --wait`: manifest == BFS page set, JSON logs, 3 workers busy."""
    section = testsite.SECTIONS["small"]
    expected = testsite.expected_depths(SITE, section.seed, SMALL_DEPTH)
    assert 30 <= len(expected) < len([u for u in SITE if f"/{section.name}/" in u])
    crawl_id = f"e2e-small-{secrets.token_hex(3)}"
    workers = {stack.hostname(w) for w in stack.containers("worker")}

    seeded = stack.cli(
        "seed", section.seed, "--depth", str(SMALL_DEPTH), "--crawl-id", crawl_id, "--wait"
    )
    lines = seeded.stdout.splitlines()
    assert crawl_id in lines, seeded.stdout
    assert f"crawl {crawl_id} done" in lines, seeded.stdout
    assert f"  manifest  /data/{crawl_id}/manifest.jsonl" in lines, seeded.stdout

    records = _check_stored_exactly_once(stack, crawl_id, expected, workers)
    assert len({r["worker"] for r in records}) == 3
    pages = _page_events(stack, crawl_id)
    assert {e["url"] for e in pages} == set(expected)
    assert {e["worker"] for e in pages} == workers, "not every worker fetched pages"
    # each replica counts the pages it closed, and serves them on a host port of its own
    counted = {w: _pages_counted(stack, w, crawl_id) for w in stack.containers("worker")}
    assert all(counted.values()) and sum(counted.values()) == len(pages), counted


def test_scaling_from_three_to_five_workers_mid_crawl_stores_every_page_once(
    stack: Stack,
) -> None:
    """`up -d --scale worker=5` during a slow crawl: 5 workers fetch, each page stored once."""
    section = testsite.SECTIONS["slow"]
    expected = testsite.expected_depths(SITE, section.seed, SLOW_DEPTH)
    crawl_id = f"e2e-scale-{secrets.token_hex(3)}"
    first = {stack.hostname(w) for w in stack.wait_healthy("worker", 3)}

    # new containers joining the network can disturb connections for a few seconds (podman
    # rewrites its firewall rules): more retries than the default keep that from failing a page.
    # The section is one host, at its default 8 slots for 5 x 2 fetch turns: the workers share
    # its jobs (a drained queue is looked at on each worker's beat), newcomers included. Its
    # pages take 1.5 s, which adaptive politeness would answer with one request every 3 s:
    # this test is of scaling, so the host keeps its 8 slots (--no-adaptive)
    seeded = stack.cli(
        "seed", section.seed, "--depth", str(SLOW_DEPTH), "--crawl-id", crawl_id,
        "--retries", "5", "--no-adaptive",
    )  # fmt: skip
    assert crawl_id in seeded.stdout.splitlines(), seeded.stdout
    deadline = time.monotonic() + 60
    while stack.status(crawl_id)["counters"]["fetched"] == 0:
        assert time.monotonic() < deadline, "the crawl did not start"
        time.sleep(1)

    stack.compose("up", "-d", "--scale", "worker=5", timeout=600)
    status = stack.status(crawl_id)
    assert status["state"] == "running", (
        "the crawl was over before the new workers started: make the slow section slower"
    )
    workers = {stack.hostname(w) for w in stack.wait_healthy("worker", 5)}
    assert first < workers, "scaling up replaced running workers"

    status = _wait_done(stack, crawl_id)
    assert status["state"] == "done", status
    records = _check_stored_exactly_once(stack, crawl_id, expected, workers)
    counters = status["counters"]
    assert counters["fetched"] + counters["failed"] == len(expected), counters
    assert len(records) == len(expected)
    pages = _page_events(stack, crawl_id)
    assert {e["url"] for e in pages} == set(expected)
    assert {e["worker"] for e in pages} == workers, "not all 5 workers fetched pages"
