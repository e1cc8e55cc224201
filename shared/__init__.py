"""What the scheduler and the workers both use: settings, Redis keys and scripts, URLs, storage."""
