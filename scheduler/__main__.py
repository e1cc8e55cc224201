"""``python -m scheduler`` is the ``crawlfleet`` command."""

from scheduler.cli import main

main()
