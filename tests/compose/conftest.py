"""The compose e2e tests run only when asked: ``pytest tests/compose --run-compose``.

They build the image and run Redis, several workers and a test web in containers, which takes
minutes: ``make test`` (plain ``pytest``) collects and skips them.
"""

from __future__ import annotations

from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
SKIP_REASON = "compose e2e: run with --run-compose / make compose-e2e"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--run-compose",
        action="store_true",
        default=False,
        help="run the docker compose end-to-end tests in tests/compose (slow; needs docker "
        "compose with an engine, or the podman container sandbox)",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # the option is registered only when this conftest is loaded at startup (tests/compose given
    # on the command line); a plain `pytest` loads it later and never has it
    if config.getoption("--run-compose", default=False):
        return
    skip = pytest.mark.skip(reason=SKIP_REASON)
    for item in items:
        if item.path.is_relative_to(HERE):
            item.add_marker(skip)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    from tests.compose.stack import COMMAND_LOG

    if COMMAND_LOG:
        terminalreporter.section("compose e2e: commands and durations")
        for line in COMMAND_LOG:
            terminalreporter.write_line(line)
