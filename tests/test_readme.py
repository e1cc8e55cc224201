"""The README cannot drift from the code: every command, option, setting and make target it
names exists."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import typer

from scheduler.cli import app
from shared.settings import Settings

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
