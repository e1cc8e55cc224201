"""``python -m crawlfleet.scheduler`` is the ``crawlfleet`` command."""

from crawlfleet.scheduler.cli import main

main()
