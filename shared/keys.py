"""Every Redis key crawlfleet reads or writes is named here.

Per crawl ``C``:

- ``cf:crawls``          sorted set: crawl id -> creation time (ms), the index of all crawls
- ``cf:C:meta``          hash: ``spec`` (JSON), ``state``, ``created_at``, ``finished_at``,
                         ``reason`` (of a failed crawl), and
                         what the Lua scripts read of the spec: ``host_limit``,
                         ``host_delay_ms``, ``robots`` (1 or 0), ``max_pages``, ``depth``,
                         ``host_pages`` (the per-host page budget), ``adaptive`` (1 or 0),
                         ``sitemap_urls`` and ``sitemap_files`` (the caps of a crawl that
                         reads sitemaps), ``lastmods`` (1 once the crawl keeps a sitemap
                         lastmod: its page jobs look theirs up)
- ``cf:C:stats``         hash of counters: ``fetched``, ``failed``, ``bytes``, ``queued`` (URLs
                         admitted), ``seen``, ``pending`` (backlog entries and jobs: 0 means the
                         crawl is complete), ``progress_at`` (ms: when a job of the crawl last
                         closed), ``capped`` (links not fetched for a page cap),
                         ``hosts_dropped`` (hosts ``busiest`` let go to make room for another),
                         ``sitemaps``, ``sitemaps_skipped`` (sitemap files read, not read),
                         ``sitemap_urls`` (page URLs taken from sitemaps),
                         and of a crawl --since another ``new``, ``changed``, ``unchanged``,
                         ``gone`` (``page_done.lua``), ``unreached`` (``finish.lua``)
- ``cf:C:seen:XYZ``      4,096 hashes, one per first 3 hex digits XYZ of a URL fingerprint:
                         the fingerprint's other digits -> 2 * shortest depth seen, + 1 once
                         the page has been fetched (so a re-fetch at a better depth counts
                         once); small hashes keep Redis's compact encoding (``seen.lua``)
- ``cf:C:lastmod:XYZ``   of a crawl --since another that reads sitemaps: 4,096 hashes, bucketed
                         as the seen URLs are, the fingerprint's other digits -> the latest
                         ``<lastmod>`` its sitemaps gave the URL (Unix seconds, rounded up),
                         for each URL at depth 0 that one gave (``sitemap_done.lua``), read by
                         its page job's claim (``claim.lua``); dropped when the crawl ends
- ``cf:C:hosts``         set of the hosts where the crawl has a backlog
- ``cf:C:origins``       set of the origins whose robots.txt the crawl has asked for
- ``cf:C:sitemaps``      set of the sitemap URLs the crawl has admitted (each read once)
- ``cf:C:reasons``       hash: failure reason or error status -> pages
- ``cf:C:busiest``       sorted set: host -> pages done (fetched or failed), for the
                         ``BUSIEST_HOSTS`` busiest hosts at most (``page_done.lua``)
- ``cf:C:robots:O``      robots.txt of origin ``O`` (``scheme://netloc``) as this crawl saw it

Per host ``H`` (the frontier, ``shared/lua/frontier.lua``); every key of a host carries the hash
tag ``{H}``, so a Redis Cluster keeps a host's keys together:

- ``cf:{H}:slots``       sorted set: job id -> lease end (ms): the jobs queued or running on
                         the host, shared by every crawl, so per-host limits hold fleet-wide
- ``cf:{H}:state``       hash: ``next`` (earliest start of the next job promoted, ms),
                         ``ahead`` (``start id`` of the job queued and not started of a
                         host with a delay between request starts), ``crawls`` (how many
                         crawls the host's queues list), what adaptive politeness learnt of
                         the host (written only once it is slow or timed out): ``pace`` (ms
                         between request starts), ``cap`` (its slots while cut, 0: none),
                         ``strikes`` (timeouts in a row), ``struck`` (ms, the last one); and
                         per crawl ``C``: ``C:robots`` (the robots.txt job its backlog waits
                         for), ``C:delay`` (robots.txt Crawl-delay, ms), ``C:pages`` (pages
                         promoted, for the budget), ``C:gave_up`` (1: the crawl gave the host
                         up as unresponsive)
- ``cf:{H}:queues``      sorted set: crawl id -> its turn: the crawls with a backlog on the
                         host, the least recently served first
- ``cf:{H}:C:backlog``   list: the crawl's URLs waiting for a slot of the host
                         (``depth hops retried not_before url [parent]``, ``R retried
                         not_before origin`` for a robots.txt to fetch first, or ``S retried
                         not_before level discover url`` for a sitemap)
- ``<queue>:workers``    sorted set: each worker's health key -> when it last said it serves
                         the queue (workers count each other: ``workers/arq_worker.py``)

arq's own keys (``arq:job:<id>``, ``arq:in-progress:<id>``) and the queue
(``Settings.queue_name``, whose score of a claimed job also counts its tries: ``claim.lua``)
are shared by all crawls; job ids start with the crawl id: page jobs
are ``C:<fingerprint>:<depth>``, robots.txt jobs ``C:robots:<fingerprint of the origin>``,
sitemap jobs ``C:sitemap:<fingerprint>``.
"""

from __future__ import annotations

from dataclasses import dataclass

from arq.constants import abort_jobs_ss, in_progress_key_prefix, job_key_prefix, retry_key_prefix

PREFIX = "cf"
# must match seen.lua: 3 hex digits = 4,096 buckets, each below Redis's compact-hash limit
# (hash-max-ziplist-entries, raised to 1024 where crawlfleet starts Redis) up to ~4M URLs
SEEN_BUCKET_DIGITS = 3
CRAWLS_INDEX = f"{PREFIX}:crawls"
# must match page_done.lua: the hosts a crawl's busiest-hosts count holds at most
BUSIEST_HOSTS = 32
JOB_KEY_PREFIX = job_key_prefix
IN_PROGRESS_KEY_PREFIX = in_progress_key_prefix
RETRY_KEY_PREFIX = retry_key_prefix
RESULT_KEY_PATTERN = "arq:result:*"
ABORT_JOBS = abort_jobs_ss


class _Named:
    """A key of a scope named after the attribute that holds it: ``meta = _Named()`` in
    ``CrawlKeys`` is ``cf:C:meta``."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, scope: CrawlKeys | HostKeys, owner: type | None = None) -> str:
        return scope.key(self.name)


@dataclass(frozen=True, slots=True)
class CrawlKeys:
    """The key names of one crawl."""

    crawl_id: str

    meta = _Named()
    stats = _Named()
    reasons = _Named()
    busiest = _Named()
    hosts = _Named()
    origins = _Named()
    sitemaps = _Named()

    def key(self, name: str) -> str:
        return f"{PREFIX}:{self.crawl_id}:{name}"

    @property
    def seen(self) -> str:
        """The prefix of the seen buckets (``seen.lua`` appends the bucket)."""
        return self.key("seen:")

    def seen_bucket(self, fingerprint: str) -> str:
        """The hash holding ``fingerprint``'s shortest depth."""
        return self.seen + fingerprint[:SEEN_BUCKET_DIGITS]

    @property
    def lastmods(self) -> str:
        """The prefix of the sitemap lastmod buckets (``seen.lua`` appends the bucket)."""
        return self.key("lastmod:")

    def lastmod_bucket(self, fingerprint: str) -> str:
        """The hash holding ``fingerprint``'s sitemap lastmod."""
        return self.lastmods + fingerprint[:SEEN_BUCKET_DIGITS]

    def robots(self, origin: str) -> str:
        return self.key(f"robots:{origin}")


@dataclass(frozen=True, slots=True)
class HostKeys:
    """The key names of one host's frontier (``host`` as ``frontier_host`` gives it)."""

    host: str

    def key(self, name: str) -> str:
        """A key of the host: every one carries the ``{host}`` hash tag."""
        return f"{PREFIX}:{{{self.host}}}:{name}"

    slots = _Named()
    state = _Named()
    queues = _Named()

    def backlog(self, crawl_id: str) -> str:
        return self.key(f"{crawl_id}:backlog")


def frontier_host(canonical_url: str) -> str:
    """The host part of a canonical URL as the frontier keys it: the netloc less its port
    (an IPv6 literal keeps its brackets), as ``frontier.lua`` derives it."""
    netloc = canonical_url.split("://", 1)[1].split("/", 1)[0]
    if netloc.startswith("["):
        return netloc[: netloc.index("]") + 1]
    return netloc.split(":", 1)[0]


HEALTH_CHECK_INTERVAL_S = 30


def worker_health_key(queue_name: str, worker_id: str) -> str:
    """One worker's own arq health key (arq's default is shared by every worker on a queue);
    it lives ``HEALTH_CHECK_INTERVAL_S + 1`` seconds after each refresh."""
    return f"{queue_name}:health-check:{worker_id}"


def fleet_key(queue_name: str) -> str:
    """Sorted set of the workers serving a queue: health key -> when it last said so (ms)."""
    return f"{queue_name}:workers"


def seen_field(fingerprint: str) -> str:
    """The field of ``fingerprint`` in its seen bucket."""
    return fingerprint[SEEN_BUCKET_DIGITS:]


def robots_job_id(crawl_id: str, origin_fingerprint: str) -> str:
    """The job that fetches an origin's robots.txt for a crawl."""
    return f"{crawl_id}:robots:{origin_fingerprint}"


def sitemap_job_id(crawl_id: str, fingerprint: str) -> str:
    """The job that fetches one sitemap for a crawl."""
    return f"{crawl_id}:sitemap:{fingerprint}"


def job_key(job_id: str) -> str:
    """arq's key holding the serialized job."""
    return JOB_KEY_PREFIX + job_id
