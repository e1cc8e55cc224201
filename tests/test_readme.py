"""The README cannot drift from the code: every command, option, setting and make target it
names exists."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer

from crawlfleet.scheduler.cli import app
from crawlfleet.shared.failures import FailureKind
from crawlfleet.shared.settings import Settings
from tests.support.testweb import Page, Site, TestWeb

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
# continued shell lines joined, a table cell's escaped pipes (`host\|domain`) kept in the cell
_TEXT = re.sub(r"\\\n\s*", " ", README).replace("\\|", "/")
# a command as the README shows it: after a `$ ` prompt, in backticks, or at the start of a
# code line; ends at the line's end, a closing backtick, a pipe or a shell operator
_COMMAND = re.compile(r"(?:^|\$ |`)crawlfleet((?: [^`|\n&;>]*)?)", re.MULTILINE)
_FLAG = re.compile(r"(?<![\w-])(--[a-z][a-z0-9-]*|-[a-zA-Z])\b")


def _cli() -> Any:
    """The CLI's command group (typer's own click, whose types are not public)."""
    return typer.main.get_command(app)


def _options(command: Any) -> set[str]:
    return {opt for p in command.params for opt in (*p.opts, *p.secondary_opts)} | {"--help"}


def _readme_commands() -> list[tuple[str, list[str]]]:
    """(subcommand, flags) of every crawlfleet command line the README shows."""
    group = _cli()
    found = []
    for match in _COMMAND.finditer(_TEXT):
        words = match.group(1).split()
        sub = next((w for w in words if w in group.commands), "")
        found.append((sub, _FLAG.findall(match.group(1))))
    return found


def test_the_readme_names_commands():
    """The scan below finds the README's commands (guards the test itself)."""
    subs = {sub for sub, _ in _readme_commands()}
    assert {"run", "seed", "worker", "status", "cancel"} <= subs


@pytest.mark.parametrize(("sub", "flags"), _readme_commands())
def test_every_command_in_the_readme_exists(sub: str, flags: list[str]):
    """Each `crawlfleet SUB --flag` of the README is a subcommand that takes those flags
    (options before the subcommand are the program's own)."""
    group = _cli()
    known = _options(group) | (_options(group.commands[sub]) if sub else set())
    assert set(flags) <= known, f"crawlfleet {sub}: {sorted(set(flags) - known)} unknown"


def test_every_option_in_the_options_table_exists():
    """The crawl options table's flags are options of `seed` or `run`."""
    group = _cli()
    known = _options(group.commands["seed"]) | _options(group.commands["run"])
    rows = [line for line in README.splitlines() if line.startswith("| `-")]
    assert rows, "no options table found"
    for row in rows:
        flags = set(_FLAG.findall(row.split("|")[1]))
        assert flags <= known, f"{sorted(flags - known)} in: {row[:80]}"


def test_every_setting_in_the_readme_exists():
    """Each CRAWLFLEET_* variable the README names is a setting."""
    named = set(re.findall(r"CRAWLFLEET_([A-Z][A-Z0-9_]*[A-Z0-9])", README))
    fields = {name.upper() for name in Settings.model_fields}
    assert named, "no settings found"
    assert named <= fields, sorted(named - fields)


def test_every_make_target_in_the_readme_exists():
    """Each `make TARGET` the README names is a target of the Makefile."""
    targets = set(re.findall(r"^([a-z][a-z0-9-]*):", (ROOT / "Makefile").read_text(), re.M))
    named = set(re.findall(r"\bmake ([a-z][a-z0-9-]*)", README))
    assert {"crawl", "test"} <= named
    assert named <= targets, sorted(named - targets)


def test_the_failure_kinds_table_is_the_enum():
    """The README's table of failure kinds lists every kind of ``shared.failures`` and no other,
    and marks as retried exactly the transient ones (an error status: some of its numbers)."""
    section = README.split("\n### Failure kinds\n", 1)[1].split("\n### ", 1)[0]
    rows = re.findall(r"^\| `([^`]+)` \| (.*) \|$", section, re.MULTILINE)
    assert [kind for kind, _ in rows] == [kind.value for kind in FailureKind]
    retried = {kind for kind, what in rows if "*retried*" in what}
    transient = {kind.value for kind in FailureKind if kind.transient}
    assert retried == transient | {FailureKind.HTTP_STATUS.value}


def _readme_jq_commands() -> list[str]:
    """The `$ jq ...` lines of the README's Logs section."""
    section = README.split("\n## Logs\n", 1)[1].split("\n## ", 1)[0]
    return [line[2:] for line in section.splitlines() if line.startswith("$ jq ")]


# a loopback port nothing listens on (the discard port)
REFUSED = "http://127.0.0.1:9/"


@pytest.mark.slow
def test_the_readme_log_queries_answer_their_questions(web: TestWeb, tmp_path: Path):
    """The README's jq queries, run on the logs of a real `crawlfleet run`: the failures of a
    crawl, the slowest pages first, the lines of one host."""
    if shutil.which("jq") is None:
        if os.environ.get("CI"):
            pytest.fail("jq is not installed: .ci/run installs it")
        pytest.skip("jq is not installed")
    root = web.url(0, "/")
    latencies = [0.01, 0.05, 0.1, 0.2, 0.3]
    pages = {root: Page(hrefs=[*(f"/p{i}" for i in range(len(latencies))), "/broken"])}
    pages |= {web.url(0, f"/p{i}"): Page(latency=s) for i, s in enumerate(latencies)}
    pages[web.url(0, "/broken")] = Page(status=500)
    web.site = Site(pages)
    data = tmp_path / "crawl-data"
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    done = subprocess.run(
        [sys.executable, "-m", "crawlfleet.scheduler", "run", root, REFUSED, "--depth", "1",
         "--retries", "0", "--crawl-id", "demo", "--data-dir", str(data)],
        env=env, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    failures, slowest, one_host = _readme_jq_commands()
    origin = root.rstrip("/")

    def answer(command: str) -> list[str]:
        command = re.sub(r"http://127\.0\.0\.2:\d+", origin, command)
        ran = subprocess.run(
            ["bash", "-c", command], cwd=tmp_path, capture_output=True, text=True, timeout=60
        )
        assert ran.returncode == 0, (command, ran.stderr)
        return ran.stdout.splitlines()

    failed = sorted(answer(failures))
    assert [json.loads(line)["url"] for line in failed] == [REFUSED, web.url(0, "/broken")]
    assert json.loads(failed[0])["reason"].startswith("robots.txt unreachable: connect")
    assert json.loads(failed[1])["status"] == 500
    durations = [int(line.split(" ms ")[0]) for line in answer(slowest)]
    assert len(durations) == 5 and durations == sorted(durations, reverse=True)
    assert durations[0] >= 300  # /p4 alone waits that long
    host_lines = [json.loads(line) for line in answer(one_host)]
    assert {line["url"] for line in host_lines} == set(pages)
