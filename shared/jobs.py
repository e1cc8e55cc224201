"""Job payloads in arq's format, serialized with msgpack (never pickle).

Jobs are written to Redis by our Lua scripts (``shared/lua/frontier.lua``) rather than by
``ArqRedis.enqueue_job``, so that dedupe, promotion and counters happen in one round trip; this
module reads them, and builds the same map in Python (the tests compare the two).
"""

from __future__ import annotations

import time
from typing import Any

import msgpack

# the job functions' names, as shared/lua/frontier.lua writes them into payloads
CRAWL_PAGE = "crawl_page"
FETCH_ROBOTS = "fetch_robots"
FETCH_SITEMAP = "fetch_sitemap"
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


def crawl_of_job(job_id: str) -> str:
    """The crawl a job id belongs to (crawl ids never contain ``:``)."""
    return job_id.partition(":")[0]


# A queued page job is mostly its payload, and a frontier holds millions of them, so the page
# job's arguments are (url, depth, parent): the crawl id is in the job id already, and a parent
# on the same origin as the page is kept as its path only.


def page_job_args(url: str, depth: int, parent: str | None) -> tuple[str, int, str | None]:
    """The arguments of a ``crawl_page`` job."""
    if parent is not None:
        origin = _origin(url)
        if parent.startswith(origin) and parent[len(origin) : len(origin) + 1] == "/":
            parent = parent[len(origin) :]
    return (url, depth, parent)


def parent_url(url: str, parent: str | None) -> str | None:
    """The parent URL that :func:`page_job_args` packed for ``url``."""
    if parent is not None and parent.startswith("/"):
        return _origin(url) + parent
    return parent


def _origin(url: str) -> str:
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{rest.split('/', 1)[0]}"


def finalize_job_id(crawl_id: str) -> str:
    """The one job that closes a crawl."""
    return f"{crawl_id}:finalize"
