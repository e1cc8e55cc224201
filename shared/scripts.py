"""Loads the Lua scripts in ``shared/lua/`` and binds them to a Redis client.

``admit.lua`` is a shared fragment: it is prepended to the scripts that queue pages.
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
    "host_acquire",
    "host_hold",
)
_NEEDS_ADMIT = {"seed", "page_done"}


def script_source(name: str) -> str:
    """The full Lua source of script ``name`` as sent to Redis."""
    lua = files("shared.lua")
    body = lua.joinpath(f"{name}.lua").read_text(encoding="utf-8")
    if name in _NEEDS_ADMIT:
        body = lua.joinpath("admit.lua").read_text(encoding="utf-8") + "\n" + body
    return body


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
    host_acquire: AsyncScript
    host_hold: AsyncScript

    @classmethod
    def register(cls, redis: Redis) -> Scripts:
        """Register every script on ``redis``."""
        return cls(**{name: redis.register_script(script_source(name)) for name in SCRIPTS})
