"""The crawlfleet command line, run as a real process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

import pytest

from crawlfleet.shared.settings import Settings
from tests.support.synthetic import shortest_depths
from tests.support.testweb import Page, Site, TestWeb, free_port, make_site

COMMANDS = [
    "seed", "worker", "status", "cancel", "pause", "resume", "forget", "run",
    "pages", "cat", "export",
]  # fmt: skip


def cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "crawlfleet.scheduler", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "CRAWLFLEET_LOG_FORMAT": "json", **(env or {})},
        stdin=subprocess.DEVNULL,
    )


def assert_one_line_error(
    result: subprocess.CompletedProcess[str], *words: str, code: int = 2
) -> None:
    """One `error:` line naming ``words``; exit 2 for a usage error, 1 for a failure."""
    assert result.returncode == code, result
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error:") and "Traceback" not in result.stderr
    for word in words:
        assert word in lines[0], lines[0]


def test_help_lists_every_command() -> None:
    """`crawlfleet --help` lists the commands; each has its own help with an example, plain
    text that fits 80 columns: no boxes, no cut words, no markup, no option types."""
    top = cli("--help", env={"COLUMNS": "80"})
    assert top.returncode == 0
    for command in COMMANDS:
        assert command in top.stdout
        sub = cli(command, "--help", env={"COLUMNS": "80"})
        assert sub.returncode == 0 and "Example" in sub.stdout, command
        for text in (top.stdout, sub.stdout):
            assert max(len(line) for line in text.splitlines()) <= 80
            for junk in ("╭", "…", "[b]", "<int range>", "<float range>", "<path>", "<bool>"):
                assert junk not in text, (command, junk)


def test_version() -> None:
    """`crawlfleet --version` prints the installed version."""
    result = cli("--version")
    assert (
        result.returncode == 0 and result.stdout == f"crawlfleet {metadata.version('crawlfleet')}\n"
    )


@pytest.mark.parametrize("url", ["not a url", "ftp://example.org/", "mailto:x@example.org"])
def test_invalid_url_is_one_line_exit_2(url: str, redis_url: str) -> None:
    """An invalid seed URL gives one clear line and exit code 2."""
    assert_one_line_error(cli("--redis-url", redis_url, "seed", url), "not an absolute http(s) URL")


@pytest.mark.parametrize("command", [["seed", "http://example.org/"], ["status"], ["cancel", "x"]])
def test_unreachable_redis_is_one_line_exit_1(command: list[str]) -> None:
    """No Redis at the URL: one line naming it, exit code 1 (a failure, not a usage error),
    no traceback."""
    url = f"redis://127.0.0.1:{free_port()}/0"
    assert_one_line_error(cli("--redis-url", url, *command), "cannot reach Redis", url, code=1)


INVALID_REDIS_URLS = pytest.mark.parametrize(
    ("url", "why"),
    [
        ("redis://:s3cret@localhost:notaport/0", "Port could not be cast to integer"),
        ("http://localhost:6379/0", "must specify one of the following schemes"),
    ],
)


@pytest.mark.parametrize("command", [["worker"], ["status"], ["run", "http://127.0.0.1:9/"]])
@INVALID_REDIS_URLS
def test_an_invalid_redis_url_is_one_line_exit_2(command: list[str], url: str, why: str) -> None:
    """A Redis URL that cannot name a server stops a command at once (a worker would wait
    for it forever), in one line without the password."""
    result = cli("--redis-url", url, *command)
    assert_one_line_error(result, "invalid setting redis_url: not a Redis URL", why)
    assert "s3cret" not in result.stderr


@INVALID_REDIS_URLS
def test_a_worker_process_with_an_invalid_redis_url_exits_1(url: str, why: str) -> None:
    """A worker process (as run and compose start them) says why in one line and exits."""
    worker = subprocess.run(
        [sys.executable, "-m", "crawlfleet.workers"],
        env={**os.environ, "REDIS_URL": url},
        capture_output=True,
        text=True,
        timeout=60,
    )
    lines = worker.stderr.splitlines()
    assert worker.returncode == 1 and len(lines) == 1, worker.stderr
    assert lines[0].startswith("error: invalid setting redis_url: not a Redis URL: ")
    assert why in lines[0] and "s3cret" not in lines[0]


def test_redis_password_is_not_printed() -> None:
    """A password in the Redis URL never appears in an error."""
    url = f"redis://:s3cret@127.0.0.1:{free_port()}/0"
    result = cli("--redis-url", url, "status")
    assert result.returncode == 1 and "s3cret" not in result.stderr


@pytest.mark.parametrize("command", [["status", "nope"], ["cancel", "nope"]])
def test_unknown_crawl_is_one_line_exit_2(command: list[str], redis_url: str) -> None:
    """An unknown crawl id gives one clear line and exit code 2."""
    assert_one_line_error(cli("--redis-url", redis_url, *command), "no crawl with id 'nope'")


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["seed", "http://e.org/", "--scope", "planet"], ["invalid scope"]),
        (["seed", "http://e.org/", "--crawl-id", "../x"], ["invalid crawl id"]),
        (["status", "a/b"], ["invalid crawl id"]),
        (["seed", "http://e.org/", "--deny", "(unclosed"], ["invalid regular expression"]),
        (["seed", "http://e.org/", "--content-type", "foo/bar"], ["unknown content type"]),
        (["run", "http://e.org/", "--content-type", "html"], ["unknown content type 'html'"]),
        (["seed", "http://e.org/", "--max-sitemap-urls", "5"], ["give --sitemaps too"]),
    ],
)
def test_bad_options_are_one_line_exit_2(args: list[str], words: list[str], redis_url: str) -> None:
    """Bad option values give one clear line and exit code 2."""
    assert_one_line_error(cli("--redis-url", redis_url, *args), *words)


def test_seed_status_cancel(redis_url: str) -> None:
    """seed prints the id and stores its options (--no-adaptive too); status shows it running
    with its counters; cancel drops its queue."""
    seeded = cli("--redis-url", redis_url, "seed", "http://127.0.0.2:9/a", "http://127.0.0.2:9/b",
                 "--crawl-id", "cli-1", "--depth", "3", "--content-type", "text/html",
                 "--per-host-delay", "0.5", "--ignore-robots", "--deny", "x$",
                 "--no-adaptive")  # fmt: skip
    assert seeded.returncode == 0 and seeded.stdout.strip() == "cli-1"
    status = cli("--redis-url", redis_url, "status", "cli-1", "--json")
    data = json.loads(status.stdout)
    assert data["state"] == "running" and data["spec"]["depth"] == 3
    assert data["spec"]["content_types"] == ["text/html"] and data["spec"]["deny"] == ["x$"]
    assert data["spec"]["per_host_delay"] == 0.5 and data["spec"]["obey_robots"] is False
    assert data["spec"]["adaptive"] is False
    assert data["counters"]["pending"] == 2
    table = cli("--redis-url", redis_url, "status")
    assert "cli-1" in table.stdout and "running" in table.stdout
    cancelled = cli("--redis-url", redis_url, "cancel", "cli-1")
    # a host with a delay has one job queued at a time: the other URL waits in its backlog
    assert cancelled.returncode == 0 and "dropped 1 queued" in cancelled.stdout
    data = json.loads(cli("--redis-url", redis_url, "status", "cli-1", "--json").stdout)
    assert data["state"] == "cancelled" and data["counters"]["pending"] == 0


def test_seeding_a_crawl_id_again_with_other_options_is_one_line(redis_url: str) -> None:
    """A second seed of a running crawl id with other options is one error line naming them,
    exit 2; with the same options it adds its seeds."""
    first = ["--redis-url", redis_url, "seed", "http://127.0.0.2:9/a", "--crawl-id", "twice"]
    assert cli(*first, "--depth", "3").returncode == 0
    other = cli(*first[:-3], "http://127.0.0.2:9/b", "--crawl-id", "twice", "--depth", "4")
    assert_one_line_error(other, "crawl 'twice' was seeded with other options", "depth 3, not 4")
    same = cli(*first[:-3], "http://127.0.0.2:9/b", "--crawl-id", "twice", "--depth", "3")
    assert same.returncode == 0 and "added 1 seed(s) to running crawl twice" in same.stderr
    data = json.loads(cli("--redis-url", redis_url, "status", "twice", "--json").stdout)
    assert data["spec"]["depth"] == 3 and data["counters"]["seen"] == 2


def test_seed_stores_sitemaps_and_compares_it_as_the_other_options(redis_url: str) -> None:
    """seed --sitemaps stores it and its cap with the crawl (every worker reads them there),
    and the crawl's /sitemap.xml is queued; seeding it again without them is refused."""
    first = ["--redis-url", redis_url, "seed", "http://127.0.0.2:9/a", "--crawl-id", "maps",
             "--ignore-robots"]  # fmt: skip
    assert cli(*first, "--sitemaps", "--max-sitemap-urls", "7").returncode == 0
    data = json.loads(cli("--redis-url", redis_url, "status", "maps", "--json").stdout)
    assert data["spec"]["sitemaps"] is True and data["spec"]["max_sitemap_urls"] == 7
    assert data["counters"]["pending"] == 2  # the seed and its origin's /sitemap.xml
    again = cli(*first)
    assert_one_line_error(again, "max_sitemap_urls 7, not 100000", "sitemaps true, not false")


def test_a_crawl_no_worker_serves_is_shown_stalled(redis_url: str) -> None:
    """A running crawl that closes no page for ``stall_after_s`` is shown as stalled, in the
    table and in the JSON; one that has not waited that long is not."""
    seeded = cli("--redis-url", redis_url, "seed", "http://127.0.0.2:9/", "--crawl-id", "idle")
    assert seeded.returncode == 0
    patient = cli("--redis-url", redis_url, "status", "idle", "--json",
                  env={"CRAWLFLEET_STALL_AFTER_S": "3600"})  # fmt: skip
    assert json.loads(patient.stdout)["stalled_s"] is None
    deadline = time.monotonic() + 60
    while True:
        quick = {"CRAWLFLEET_STALL_AFTER_S": "0.5"}
        data = json.loads(
            cli("--redis-url", redis_url, "status", "idle", "--json", env=quick).stdout
        )
        if data["stalled_s"] is not None:
            break
        assert time.monotonic() < deadline, data
    table = cli("--redis-url", redis_url, "status", env={**quick, "COLUMNS": "200"})
    assert "running, stalled" in table.stdout


def test_an_unreadable_crawl_is_one_line_and_the_others_are_listed(redis_url: str) -> None:
    """A crawl whose spec in Redis cannot be read (another version's, or edited by hand):
    ``status`` lists every other crawl and says which one it could not read, in one line."""
    import redis as sync_redis

    for crawl_id in ("good", "bad"):
        seeded = cli("--redis-url", redis_url, "seed", "http://127.0.0.2:9/", "--crawl-id",
                     crawl_id)  # fmt: skip
        assert seeded.returncode == 0
    with sync_redis.Redis.from_url(redis_url) as r:
        r.hset("cf:bad:meta", "spec", '{"crawl_id": "bad", "seeds": 7}')
    listed = cli("--redis-url", redis_url, "status")
    assert listed.returncode == 1 and "good" in listed.stdout and "bad" not in listed.stdout
    (line,) = listed.stderr.strip().splitlines()
    assert line.startswith("error: crawl 'bad' cannot be read from Redis:") and "seeds" in line
    one = cli("--redis-url", redis_url, "status", "bad", "--json")
    assert one.returncode == 1 and one.stdout == "" and len(one.stderr.strip().splitlines()) == 1


def test_seed_wait_without_a_worker_says_how_to_start_one(redis_url: str) -> None:
    """`seed --wait` on a queue no worker serves says so within seconds, and waits on."""
    seeder = subprocess.Popen(
        [sys.executable, "-m", "crawlfleet.scheduler", "--redis-url", redis_url, "seed",
         "http://127.0.0.1:9/", "--crawl-id", "unserved", "--wait"],
        env={**os.environ, "CRAWLFLEET_QUEUE_NAME": "crawlfleet:unserved"},
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert seeder.stderr is not None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = seeder.stderr.readline()
            if "no worker serves" in line:
                break
            assert line, "seed --wait ended without the hint"
        else:
            raise AssertionError("no hint within 60 s")
        assert line.startswith("no worker serves queue crawlfleet:unserved yet")
        assert "crawlfleet worker" in line and seeder.poll() is None
    finally:
        seeder.kill()
        seeder.communicate()


def test_worker_and_seed_wait_then_sigterm(web: TestWeb, settings: Settings) -> None:
    """A worker process crawls what `seed --wait` queued, logs JSON lines, exits 0 on SIGTERM."""
    web.site = make_site(web.port, pages_per_host=10)
    seed_url = web.url(0, "/p/0.html")
    env = {
        "REDIS_URL": settings.redis_url,
        "CRAWLFLEET_DATA_DIR": str(settings.data_dir),
        "CRAWLFLEET_WORKER_ID": "cli-worker",
    }
    worker = subprocess.Popen(
        [sys.executable, "-m", "crawlfleet.scheduler", "worker", "--concurrency", "4"],
        env={**os.environ, "CRAWLFLEET_LOG_FORMAT": "json", **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        check_env = {**env, "CRAWLFLEET_WORKER_ID": "someone-else"}
        assert cli("worker", "--check", env=check_env).returncode == 1
        # the seeder's data directory is not the worker's: it prints where the worker wrote
        seeder_env = {**env, "CRAWLFLEET_DATA_DIR": "elsewhere"}
        seeded = cli(
            "seed", seed_url, "--depth", "2", "--crawl-id", "waited", "--wait", env=seeder_env
        )
        assert cli("worker", "--check", env=env).returncode == 0  # the running worker's own key
        assert seeded.returncode == 0, seeded.stderr
        assert seeded.stdout.startswith("waited\n")
        assert "crawl waited done" in seeded.stdout
        assert f"manifest  {settings.data_dir / 'waited' / 'manifest.jsonl'}\n" in seeded.stdout
        assert "elsewhere" not in seeded.stdout
        assert "no worker serves" not in seeded.stderr
    finally:
        time.sleep(0.2)
        worker.send_signal(signal.SIGTERM)
        _, stderr = worker.communicate(timeout=30)
    assert worker.returncode == 0, stderr
    manifest = settings.data_dir / "waited" / "manifest.jsonl"
    urls = {json.loads(line)["url"] for line in manifest.read_text().splitlines()}
    assert urls == set(shortest_depths(web.site, [seed_url], 2, only_seed_hosts=True))
    events = [json.loads(line) for line in stderr.splitlines()]
    pages = [e for e in events if e["event"] == "page fetched"]
    assert len(pages) == len(urls)
    for field in (
        "crawl_id",
        "url",
        "depth",
        "status",
        "bytes",
        "duration_ms",
        "worker",
        "timestamp",
    ):
        assert all(field in e for e in pages), field
    assert {e["worker"] for e in pages} == {"cli-worker"}
    assert events[-1]["event"] == "worker stopped"


def test_a_worker_whose_log_cannot_be_written_says_so_and_crawls_on(
    web: TestWeb, settings: Settings
) -> None:
    """A worker logging to a full device crawls the whole site and says once on stderr why
    its log is empty; it still stops cleanly."""
    web.site = make_site(web.port, pages_per_host=10)
    seed_url = web.url(0, "/p/0.html")
    env = {
        "REDIS_URL": settings.redis_url,
        "CRAWLFLEET_DATA_DIR": str(settings.data_dir),
        "CRAWLFLEET_LOG_FILE": "/dev/full",
    }
    worker = subprocess.Popen(
        [sys.executable, "-m", "crawlfleet.workers"],
        env={**os.environ, "CRAWLFLEET_LOG_FORMAT": "json", **env},
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        seeded = cli("seed", seed_url, "--crawl-id", "unlogged", "--wait", env=env)
        assert seeded.returncode == 0, seeded.stderr
    finally:
        worker.send_signal(signal.SIGTERM)
        _, stderr = worker.communicate(timeout=30)
    assert worker.returncode == 0, stderr
    assert stderr.splitlines() == [
        "crawlfleet: cannot write log to /dev/full (No space left on device); its lines are dropped"
    ]
    manifest = settings.data_dir / "unlogged" / "manifest.jsonl"
    assert len(manifest.read_text().splitlines()) == len(
        shortest_depths(web.site, [seed_url], 2, only_seed_hosts=True)
    )


def test_a_crawl_that_fetched_nothing_says_why_and_exits_1(tmp_path: Path) -> None:
    """A seed nothing answers on: the summary counts the failures by reason, and the run
    exits 1 with the seed's own error."""
    seed = f"http://127.0.0.1:{free_port()}/"
    result = cli(
        "run", seed, "--depth", "0", "--retries", "0", "--ignore-robots",
        "--data-dir", str(tmp_path), "--crawl-id", "nothing",
    )  # fmt: skip
    assert result.returncode == 1, result
    assert "  pages     0 fetched, 1 failed, 0 B\n  errors    1 connect\n" in result.stdout
    said = result.stderr.splitlines()[-2:]
    assert said[0] == "error: no page could be fetched", result.stderr
    assert said[1].startswith(f"  {seed}: connect: ") and "Traceback" not in result.stderr


def test_a_crawl_whose_folder_takes_no_file_fails_with_the_reason(
    web: TestWeb, tmp_path: Path, redis_url: str
) -> None:
    """A crawl folder that cannot be made (a file in its place) fails the crawl before any
    request: `run` ends with the reason and exit 1, and `status` shows it."""
    web.site = make_site(web.port, pages_per_host=10)
    (tmp_path / "blocked").write_text("a file where the crawl folder should be")
    run = cli("run", web.url(0, "/p/0.html"), "--data-dir", str(tmp_path), "--crawl-id",
              "blocked", env={"REDIS_URL": redis_url})  # fmt: skip
    assert run.returncode == 1, run
    assert run.stdout.startswith("crawl blocked failed in ")
    reason = f"storage: {tmp_path / 'blocked'} cannot take files: Not a directory"
    assert run.stderr.splitlines()[-1] == f"error: {reason}", run.stderr
    assert web.requested() == []
    status = json.loads(cli("--redis-url", redis_url, "status", "blocked", "--json").stdout)
    assert status["state"] == "failed" and status["reason"] == reason
    table = cli("--redis-url", redis_url, "status").stdout
    assert table.endswith(f"\nblocked failed: {reason}\n"), table


def test_a_log_file_that_cannot_be_opened_is_one_line(tmp_path: Path, redis_url: str) -> None:
    """`worker` with an unopenable log file, and `run` whose logs folder is a file, stop
    before they start with the reason in one line."""
    (tmp_path / "logs").write_text("a file where the logs folder should be")
    log_file = str(tmp_path / "logs" / "w.log")
    env = {"REDIS_URL": redis_url, "CRAWLFLEET_LOG_FILE": log_file}
    assert_one_line_error(cli("worker", env=env), log_file, "Not a directory", code=1)
    run = cli("run", "http://127.0.0.1:9/", "--data-dir", str(tmp_path))
    assert_one_line_error(run, "cannot write worker log", "Not a directory", code=1)


def test_run_with_embedded_redis(web: TestWeb, tmp_path: Path) -> None:
    """`run` with no REDIS_URL starts its own Redis and workers, crawls, and stops them;
    `--extractor fast` reaches the workers."""
    web.site = make_site(web.port, pages_per_host=10)
    seed_url = web.url(1, "/p/0.html")
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    data = tmp_path / "out"
    result = subprocess.run(
        [sys.executable, "-m", "crawlfleet.scheduler", "run", seed_url, "--depth", "2",
         "--workers", "2", "--data-dir", str(data), "--crawl-id", "local", "--extractor", "fast"],
        env=env, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "crawl local done" in result.stdout
    manifest = data / "local" / "manifest.jsonl"
    assert str(manifest) in result.stdout
    urls = {json.loads(line)["url"] for line in manifest.read_text().splitlines()}
    assert urls == set(shortest_depths(web.site, [seed_url], 2, only_seed_hosts=True))
    assert (data / ".redis" / "appendonly.aof").exists()
    assert sorted(p.name for p in (data / "logs").iterdir()) == ["worker-1.log", "worker-2.log"]
    # a worker still starting when so small a crawl ends (a loaded machine) is stopped before
    # it logs a line: each that did start says fast, and one at least did
    started = [
        json.loads(line)
        for log in (data / "logs").iterdir()
        for line in log.read_text().splitlines()
        if "worker started" in line
    ]
    assert started and all(line["extractor"] == "fast" for line in started), started
    # nothing it started is left running
    leftover = subprocess.run(["pgrep", "-f", f"unixsocket.*{data}"], capture_output=True)
    assert leftover.returncode == 1


def test_run_with_sitemaps_says_what_they_gave(web: TestWeb, tmp_path: Path) -> None:
    """`run --sitemaps` crawls what the seed's /sitemap.xml lists and its summary says so."""
    root = web.url(0, "/")
    listed = [web.url(0, f"/listed/{i}") for i in range(3)]
    body = "".join(f"<url><loc>{u}</loc></url>" for u in listed)
    sitemap = Page(content_type="application/xml", body=f"<urlset>{body}</urlset>".encode())
    web.site = Site(
        {root: Page(), **{u: Page() for u in listed}, web.url(0, "/sitemap.xml"): sitemap}
    )
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    result = subprocess.run(
        [sys.executable, "-m", "crawlfleet.scheduler", "run", root, "--sitemaps", "--workers", "1",
         "--data-dir", str(tmp_path / "out"), "--crawl-id", "maps"],
        env=env, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "pages     4 fetched, 0 failed" in result.stdout
    assert "sitemaps  1 read, 0 skipped, 3 URLs taken" in result.stdout
