"""Log lines: one JSON object per event, crawlfleet's and the libraries', at the chosen level."""

from __future__ import annotations

import json
import subprocess
import sys

_SCRIPT = """
import logging, structlog
from shared.logs import configure_logging
configure_logging("json", "warning")
log = structlog.get_logger()
with structlog.contextvars.bound_contextvars(crawl_id="c1", url="http://x/"):
    log.info("hidden")
    log.warning("page failed", status=500)
logging.getLogger("arq").warning("from %s", "arq")
logging.getLogger("arq").info("hidden too")
"""


def test_log_lines_are_json_filtered_by_level_with_job_context() -> None:
    """Events below the level are dropped; ours and the standard library's come out as JSON
    lines with time, level and the bound job context first."""
    done = subprocess.run(
        [sys.executable, "-c", _SCRIPT], capture_output=True, text=True, timeout=60, check=True
    )
    lines = [json.loads(line) for line in done.stderr.splitlines()]
    assert [line["event"] for line in lines] == ["page failed", "from arq"]
    ours = lines[0]
    assert list(ours)[:5] == ["timestamp", "level", "event", "crawl_id", "url"]
    assert ours["level"] == "warning" and ours["status"] == 500
    assert lines[1]["level"] == "warning" and "timestamp" in lines[1]
