"""Job payloads in arq's format, serialized with msgpack (never pickle).

Page jobs are written to Redis by our Lua scripts rather than by ``ArqRedis.enqueue_job`` so that
dedupe, enqueue and counters happen in one round trip; this module builds the exact bytes arq's
worker expects to read.
"""

from __future__ import annotations

import time
from typing import Any

import msgpack

CRAWL_PAGE = "crawl_page"
FINALIZE_CRAWL = "finalize_crawl"


def _default(obj: object) -> str:
    # arq serializes a failed job's exception as its result: keep its text, not the object
    return repr(obj)


def serialize(data: dict[str, Any]) -> bytes:
    """arq ``job_serializer``: msgpack, anything unknown turned into its repr."""
    return msgpack.packb(data, default=_default, use_bin_type=True)


def deserialize(raw: bytes) -> dict[str, Any]:
    """arq ``job_deserializer``: msgpack only, so nothing in Redis can run code here."""
    data = msgpack.unpackb(raw, raw=False, strict_map_key=False)
    if not isinstance(data, dict):
        raise ValueError("job payload is not a map")
    return data


def now_ms() -> int:
    """Wall-clock milliseconds, the unit of arq's queue scores."""
    return int(time.time() * 1000)


def job_payload(function: str, args: tuple[Any, ...], enqueue_ms: int) -> bytes:
    """The bytes arq stores under ``arq:job:<id>`` for ``function(*args)``."""
    return serialize({"t": None, "f": function, "a": list(args), "k": {}, "et": enqueue_ms})


def page_job_id(crawl_id: str, fingerprint: str, depth: int) -> str:
    """One job per (crawl, URL, depth): a re-run of the same job keeps its id."""
    return f"{crawl_id}:{fingerprint}:{depth}"


def finalize_job_id(crawl_id: str) -> str:
    """The one job that closes a crawl."""
    return f"{crawl_id}:finalize"
