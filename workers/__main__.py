"""``python -m crawlfleet.workers``: one worker process configured from the environment (as
``run`` and ``crawlfleet worker`` start it)."""

from __future__ import annotations

import sys

from pydantic import ValidationError

from crawlfleet.shared.errors import CrawlfleetError
from crawlfleet.shared.logs import configure_logging
from crawlfleet.shared.settings import Settings, setting_error
from crawlfleet.workers.worker import run_worker


def main() -> None:
    """Run a worker with settings from ``CRAWLFLEET_*`` and ``REDIS_URL``."""
    try:
        settings = Settings()
    except ValidationError as exc:
        sys.exit(f"error: {setting_error(exc)}")
    try:
        configure_logging(settings.log_format, settings.log_level, settings.log_file)
    except CrawlfleetError as exc:
        sys.exit(f"error: {exc}")
    try:
        run_worker(settings)
    except CrawlfleetError as exc:
        sys.exit(f"error: {exc}")


if __name__ == "__main__":
    main()
