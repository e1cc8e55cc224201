"""Lua script calls made in the same turn of the event loop, sent to Redis together.

A worker's pages close in bursts: the pages whose responses came in together close together
(and robots.txt jobs close beside them). Each call on its own is a round trip: a write,
a wake-up of Redis and a read, and redis-py's work around them. Calls queued in the same turn
of the loop go out in one pipeline instead (not a transaction: each script is atomic on its
own, and their order is kept), so a burst of n pages costs one round trip, not n.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from redis.asyncio import Redis
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError


class _Call:
    __slots__ = ("args", "keys", "reply", "script")

    def __init__(
        self,
        script: AsyncScript,
        keys: Sequence[Any],
        args: Sequence[Any],
        reply: asyncio.Future[Any],
    ) -> None:
        self.script = script
        self.keys = keys
        self.args = args
        self.reply = reply

    def answer(self, reply: Any) -> None:
        if self.reply.done():  # its caller was cancelled meanwhile
            return
        if isinstance(reply, BaseException):
            self.reply.set_exception(reply)
        else:
            self.reply.set_result(reply)


class ScriptBatcher:
    """Runs script calls on ``redis``, those of one loop turn in one pipeline."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._queued: list[_Call] = []
        self._sending: set[asyncio.Task[None]] = set()

    async def __call__(self, script: AsyncScript, keys: Sequence[Any], args: Sequence[Any]) -> Any:
        """The script's reply, as ``await script(keys=keys, args=args)`` would give it."""
        loop = asyncio.get_running_loop()
        call = _Call(script, keys, args, loop.create_future())
        if not self._queued:
            # the task's first step runs in the loop's next turn, after this turn's calls
            task = loop.create_task(self._send_queued())
            self._sending.add(task)  # a reference, so the task is not collected mid-way
            task.add_done_callback(self._sending.discard)
        self._queued.append(call)
        return await call.reply

    async def _send_queued(self) -> None:
        calls, self._queued = self._queued, []
        try:
            if len(calls) == 1:
                calls[0].answer(await self._alone(calls[0]))
                return
            async with self._redis.pipeline(transaction=False) as pipe:
                for call in calls:
                    pipe.evalsha(call.script.sha, len(call.keys), *call.keys, *call.args)
                replies = await pipe.execute(raise_on_error=False)
            for call, reply in zip(calls, replies, strict=True):
                if isinstance(reply, NoScriptError):
                    # Redis lost its scripts (a restart without them): the script loads itself
                    reply = await self._alone(call)
                call.answer(reply)
        except asyncio.CancelledError:
            for call in calls:
                call.reply.cancel()
            raise
        except Exception as exc:  # the connection failed: every call still waiting fails alike
            for call in calls:
                call.answer(exc)

    @staticmethod
    async def _alone(call: _Call) -> Any:
        """The reply to one call on its own, or the error it raised."""
        try:
            return await call.script(keys=call.keys, args=call.args)
        except Exception as exc:
            return exc
