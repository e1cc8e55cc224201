"""The scheduler side: the CLI, crawl control, progress, and running everything locally."""
