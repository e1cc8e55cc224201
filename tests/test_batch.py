"""Script calls of one loop turn go to Redis in one pipeline, each answered as if alone."""

from __future__ import annotations

import asyncio
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from crawlfleet.shared.batch import ScriptBatcher

# returns its key's new count, or fails when asked to
_COUNT = """
if ARGV[1] == 'fail' then
  return redis.error_reply('asked to fail')
end
return redis.call('INCR', KEYS[1])
"""


def _counting_pipelines(redis: Redis) -> list[int]:
    """Note how many pipelines ``redis`` opens (the real ones still run)."""
    opened: list[int] = []
    real = redis.pipeline

    def pipeline(*args: Any, **kwargs: Any) -> Any:
        opened.append(1)
        return real(*args, **kwargs)

    redis.pipeline = pipeline  # type: ignore[method-assign]
    return opened


async def test_calls_of_one_turn_share_one_round_trip_in_order(redis: Redis) -> None:
    """50 calls made together: one pipeline, every caller gets its own reply, in call order;
    a call that fails fails alone."""
    script = redis.register_script(_COUNT)
    batch = ScriptBatcher(redis)
    opened = _counting_pipelines(redis)
    asks = ["fail" if i == 7 else "ok" for i in range(50)]
    replies = await asyncio.gather(
        *(batch(script, ["n"], [ask]) for ask in asks), return_exceptions=True
    )
    assert len(opened) == 1
    assert isinstance(replies[7], ResponseError) and "asked to fail" in str(replies[7])
    assert [r for i, r in enumerate(replies) if i != 7] == list(range(1, 50))
    assert await batch(script, ["n"], ["ok"]) == 50  # alone: no pipeline
    assert len(opened) == 1


async def test_batched_calls_survive_redis_forgetting_its_scripts(redis: Redis) -> None:
    """After SCRIPT FLUSH (what a restarted Redis knows), batched calls load the script again."""
    script = redis.register_script(_COUNT)
    batch = ScriptBatcher(redis)
    assert await asyncio.gather(*(batch(script, ["m"], ["ok"]) for _ in range(3))) == [1, 2, 3]
    await redis.script_flush()
    assert await asyncio.gather(*(batch(script, ["m"], ["ok"]) for _ in range(3))) == [4, 5, 6]


async def test_a_cancelled_caller_leaves_the_others_answered(redis: Redis) -> None:
    """A caller cancelled while its batch is on the way does not disturb the rest."""
    script = redis.register_script(_COUNT)
    batch = ScriptBatcher(redis)
    calls = [asyncio.create_task(batch(script, ["k"], ["ok"])) for _ in range(5)]
    await asyncio.sleep(0)
    calls[2].cancel()
    done = await asyncio.gather(*calls, return_exceptions=True)
    assert isinstance(done[2], asyncio.CancelledError)
    assert [r for i, r in enumerate(done) if i != 2] == [1, 2, 4, 5]
    assert int(await redis.get("k") or 0) == 5  # its script still ran: it was sent


async def test_a_lost_connection_fails_every_call_of_the_batch() -> None:
    """When Redis cannot be reached, every call of the batch raises the connection error."""
    lost = Redis(unix_socket_path="/nonexistent/redis.sock")
    script = lost.register_script(_COUNT)
    batch = ScriptBatcher(lost)
    replies = await asyncio.gather(
        *(batch(script, ["x"], ["ok"]) for _ in range(3)), return_exceptions=True
    )
    assert all(
        isinstance(r, ConnectionError | OSError) or "Error" in type(r).__name__ for r in replies
    )
    await lost.aclose()
