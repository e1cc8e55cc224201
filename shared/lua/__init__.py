"""The Lua scripts crawlfleet runs in Redis; loaded by :mod:`shared.scripts`."""
