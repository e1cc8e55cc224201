"""Loads the Lua scripts in ``shared/lua/`` and binds them to a Redis client.

``seen.lua``, ``admit.lua`` and ``slot.lua`` are shared fragments, prepended to the scripts
that use them.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib.resources import files

from redis.asyncio import Redis
from redis.commands.core import AsyncScript

SCRIPTS = (
    "claim",
    "seed",
    "start",
    "page_done",
    "finish",
    "cancel",
    "pause",
    "resume",
    "sweep",
    "host_acquire",
    "host_hold",
)
_FRAGMENTS = {
    "seed": ("seen", "admit"),
    "page_done": ("seen", "admit"),
    "start": ("seen", "slot"),
    "host_acquire": ("slot",),
}


def script_source(name: str) -> str:
    """The full Lua source of script ``name`` as sent to Redis."""
    lua = files("shared.lua")
    parts = [*_FRAGMENTS.get(name, ()), name]
    return "\n".join(lua.joinpath(f"{part}.lua").read_text(encoding="utf-8") for part in parts)


@dataclass(frozen=True)
class Scripts:
    """The scripts, registered on one client (EVALSHA, falling back to EVAL once)."""

    claim: AsyncScript
    seed: AsyncScript
    start: AsyncScript
    page_done: AsyncScript
    finish: AsyncScript
    cancel: AsyncScript
    pause: AsyncScript
    resume: AsyncScript
    sweep: AsyncScript
    host_acquire: AsyncScript
    host_hold: AsyncScript

    @classmethod
    def register(cls, redis: Redis) -> Scripts:
        """Register every script on ``redis``."""
        return cls(**{name: redis.register_script(script_source(name)) for name in SCRIPTS})
